import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../src/logger.js';
import type { createBatcher } from './batcher.js';
import { parseMessage } from './telemetry.js';

export interface ConsumerOptions {
  url: string;
  username?: string;
  password?: string;
  /** connections in the shared subscription group from this process */
  connections: number;
  /** stable per process: session `tagwatch-ingest-{instance}-{n}` persists across restarts */
  instance: string;
  shareGroup: string;
  retentionDays: number;
  batcher: ReturnType<typeof createBatcher>;
  logger: Logger;
  now?: () => number;
}

export const TELEMETRY_FILTER = 'tags/v1/+/+';

/**
 * The MQTT side of ingest: several persistent-session connections (clean: false, QoS 1) in one
 * shared subscription group. MQTT.js sends a message's PUBACK when `handleMessage` calls back and
 * hands a connection its next message only then; we call back after the batch holding the
 * message is committed, so each connection has one message awaiting commit and the batcher
 * groups the connections' messages into one write.
 */
export function createIngestConsumer(opts: ConsumerOptions) {
  const clients: MqttClient[] = [];
  const now = opts.now ?? Date.now;
  const topic = `$share/${opts.shareGroup}/${TELEMETRY_FILTER}`;
  let connectedCount = 0;

  function handle(packet: mqtt.IPublishPacket, callback: (err?: Error) => void): void {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const parsed = parseMessage(packet.topic, payload, now(), opts.retentionDays);
    opts.batcher.add({ topic: packet.topic, readings: parsed.readings, rejections: parsed.rejections, done: () => callback() });
  }

  async function start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let i = 0; i < opts.connections; i++) {
      const client = mqtt.connect(opts.url, {
        clientId: `tagwatch-ingest-${opts.instance}-${i}`,
        clean: false,
        username: opts.username,
        password: opts.password,
        reconnectPeriod: 1000,
        connectTimeout: 10_000,
        keepalive: 30,
        resubscribe: true,
      });
      client.handleMessage = handle;
      client.on('connect', () => connectedCount++);
      client.on('close', () => (connectedCount = Math.max(0, connectedCount - 1)));
      client.on('error', (err) => opts.logger.warn({ err: err.message, client: i }, 'mqtt ingest connection error'));
      clients.push(client);
      ready.push(
        new Promise<void>((resolve, reject) => {
          client.once('connect', () => {
            client.subscribe(topic, { qos: 1 }, (err) => (err ? reject(err) : resolve()));
          });
        }),
      );
    }
    await Promise.all(ready);
    opts.logger.info({ connections: opts.connections, topic }, 'ingest subscribed');
  }

  /** Stops intake: unacknowledged messages stay in the broker's sessions for the next start. */
  async function stop(): Promise<void> {
    await Promise.all(clients.map((c) => c.endAsync(false).catch(() => undefined)));
  }

  return {
    start,
    stop,
    /** every connection up */
    get connected() {
      return clients.length > 0 && clients.every((c) => c.connected);
    },
    get connectedCount() {
      return connectedCount;
    },
  };
}
