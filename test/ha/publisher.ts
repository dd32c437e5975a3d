import mqtt, { type MqttClient } from 'mqtt';

/**
 * A tag publishing one status reading every `everyMs` (QoS 1) with device times one second
 * apart from `base`: it knows every reading the broker acknowledged (PUBACK), the ground truth
 * the failover tests compare the database with.
 */
export async function startPublisher(url: string, device: string, base: number, everyMs = 20) {
  const client: MqttClient = await mqtt.connectAsync(url, { clientId: `${device}-pub`, reconnectPeriod: 500, protocolVersion: 5 });
  const acked = new Set<number>();
  let seq = 0;
  let failed = 0;
  let running = true;
  const inFlight = new Set<Promise<void>>();
  const loop = (async () => {
    while (running) {
      const n = seq++;
      const p = client
        .publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts: new Date(base + n * 1000).toISOString(), battery_pct: 50 + (n % 50) }), { qos: 1 })
        .then(() => void acked.add(n), () => void failed++)
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  })();
  return {
    acked,
    /** device time of reading `n` (ms) */
    tsOf: (n: number) => base + n * 1000,
    get sent() {
      return seq;
    },
    get failed() {
      return failed;
    },
    async stop() {
      running = false;
      await loop;
      await Promise.all(inFlight);
      await client.endAsync();
    },
  };
}
