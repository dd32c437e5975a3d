import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import type { createBatcher } from './batcher.js';
import { createMqttSession, type MqttSession } from './mqtt-session.js';
import { MAX_PAYLOAD_BYTES, parseMessage } from './telemetry.js';

export interface ConsumerOptions {
  /** the brokers (MQTT_URL): `connections` sessions subscribe to each */
  urls: string[];
  /** PEM CA trusted for an mqtts:// broker (MQTT_CA_FILE) */
  ca?: Buffer;
  username?: string;
  password?: string;
  /** connections in the shared subscription group from this process */
  connections: number;
  /** most unacknowledged messages per connection (MQTT 5 Receive Maximum) */
  inflight: number;
  /** readings held (parsed, not yet committed) above which intake pauses */
  maxPending: number;
  /** bytes of payload held (received, not yet committed) above which intake pauses; default: no byte bound */
  maxPendingBytes?: number;
  /** stable per process: session `tagwatch-ingest-{instance}-{n}` persists across restarts */
  instance: string;
  shareGroup: string;
  /**
   * `shared` (default): `connections` sessions per broker in the shared subscription group, for
   * several ingest processes. `exclusive`: one session per broker with an ordinary subscription,
   * for a single ingest process: Mosquitto keeps it, and queues for it, across its own restart
   * (it does not keep shared subscriptions; docs/operations.md, "What Mosquitto keeps").
   */
  subscription?: 'shared' | 'exclusive';
  retentionDays: number;
  batcher: ReturnType<typeof createBatcher>;
  logger: Logger;
  /** counts the messages taken (tagwatch_ingest_messages_total) */
  metrics?: Pick<Metrics, 'ingestMessages'>;
  now?: () => number;
  keepalive?: number;
}

export const TELEMETRY_FILTER = 'tags/v1/+/+';
/** seconds a broker keeps an ingest session (and its QoS 1 messages) while the process is away */
const SESSION_EXPIRY_S = 30 * 86_400;
/**
 * Largest MQTT packet ingest accepts (MQTT 5 Maximum Packet Size, bytes): the contract's 256 KiB
 * payload plus room for the fixed header, topic (`tags/v1/{id ≤ 64}/{stream}`) and properties.
 * The broker does not send a larger one (MQTT 5 §3.1.2.11.4); the broker's own limit
 * (`max_packet_size`, `message_size_limit`) stops it at the device.
 */
export const MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024;
/** bytes a message is counted for beyond its payload (topic, parsed objects), so tiny messages count too */
const MESSAGE_OVERHEAD_BYTES = 512;

/**
 * The MQTT side of ingest: a few persistent MQTT 5 sessions (QoS 1) in one shared subscription
 * group, each with up to `inflight` messages unacknowledged (see mqtt-session.ts). Every message
 * goes to the batcher, which groups the messages of all connections into shared writes; a
 * message's PUBACK is sent (in receipt order on its connection) only after its batch committed.
 * Memory is bounded three ways: the broker sends at most connections × inflight unacknowledged
 * messages of at most MAX_PACKET_BYTES each, and when the readings held reach `maxPending` or
 * the payload bytes held reach `maxPendingBytes` (a slow or stopped database, large
 * store-and-forward batches, large messages) the consumer stops reading its sockets until both
 * fall to half. Heap use is a small multiple of the bytes held (the parsed readings and their
 * COPY text).
 */
export function createIngestConsumer(opts: ConsumerOptions) {
  const now = opts.now ?? Date.now;
  const exclusive = opts.subscription === 'exclusive';
  const shared = `$share/${opts.shareGroup}/${TELEMETRY_FILTER}`;
  // a session keeps its subscriptions: the filter of the other mode is dropped after subscribing
  const [filter, drop] = exclusive ? [TELEMETRY_FILTER, shared] : [shared, TELEMETRY_FILTER];
  // each exclusive session receives every message: one per broker
  const connections = exclusive ? 1 : opts.connections;
  const sessions: MqttSession[] = [];
  let held = 0;
  /** payload bytes (plus a per-message overhead) of the messages held */
  let heldBytes = 0;
  const maxBytes = opts.maxPendingBytes ?? Number.POSITIVE_INFINITY;
  let throttled = false;
  let intakeStopped = false;

  function applyIntake(): void {
    const over = held >= opts.maxPending || heldBytes >= maxBytes;
    const shouldPause = intakeStopped || over;
    const shouldResume = !intakeStopped && held <= opts.maxPending / 2 && heldBytes <= maxBytes / 2;
    if (!throttled && shouldPause) {
      throttled = true;
      if (!intakeStopped) opts.logger.info({ held, heldBytes }, 'ingest intake paused: too many readings or bytes awaiting commit');
      for (const s of sessions) s.pause();
    } else if (throttled && shouldResume) {
      throttled = false;
      for (const s of sessions) s.resume();
    }
  }

  function onMessage(topic: string, payload: Buffer, ack: () => void): void {
    opts.metrics?.ingestMessages.inc();
    const parsed = parseMessage(topic, payload, now(), opts.retentionDays);
    const weight = Math.max(1, parsed.readings.length);
    const bytes = payload.length + MESSAGE_OVERHEAD_BYTES;
    held += weight;
    heldBytes += bytes;
    opts.batcher.add({
      topic,
      readings: parsed.readings,
      rejections: parsed.rejections,
      done: () => {
        held -= weight;
        heldBytes -= bytes;
        ack();
        if (throttled) applyIntake();
      },
    });
    if (!throttled && (held >= opts.maxPending || heldBytes >= maxBytes)) applyIntake();
  }

  async function start(): Promise<void> {
    // the same client ids on every broker: a broker's sessions are its own, and the first
    // broker's keep the names (and queued messages) they had before a list was configured
    for (const [b, url] of opts.urls.entries()) for (let i = 0; i < connections; i++) {
      const client = opts.urls.length > 1 ? `${b}.${i}` : i;
      sessions.push(
        createMqttSession({
          url,
          clientId: `tagwatch-ingest-${opts.instance}-${i}`,
          ca: opts.ca,
          username: opts.username,
          password: opts.password,
          filter,
          drop,
          receiveMaximum: opts.inflight,
          maximumPacketSize: MAX_PACKET_BYTES,
          keepalive: opts.keepalive ?? 30,
          sessionExpiry: SESSION_EXPIRY_S,
          onMessage: (m) => onMessage(m.topic, m.payload, m.ack),
          onState: (up) => {
            if (!up) opts.logger.warn({ client }, 'mqtt ingest connection lost; reconnecting');
          },
          onError: (err, fatal) => (fatal ? opts.logger.error : opts.logger.warn).call(opts.logger, { err: err.message, client }, 'mqtt ingest connection error'),
        }),
      );
    }
    try {
      await Promise.all(sessions.map((s) => s.start()));
    } catch (err) {
      await stop();
      throw err;
    }
    opts.logger.info({ brokers: opts.urls.length, connections, inflight: opts.inflight, topic: filter }, 'ingest subscribed');
  }

  /** Stops intake: the sockets are no longer read, so the broker keeps what it has not delivered. */
  function pause(): void {
    intakeStopped = true;
    applyIntake();
  }

  /** Closes the sessions: unacknowledged messages stay in them for the next start. */
  async function stop(): Promise<void> {
    await Promise.all(sessions.map((s) => s.stop()));
  }

  return {
    start,
    pause,
    stop,
    /** every connection up */
    get connected() {
      return sessions.length > 0 && sessions.every((s) => s.up);
    },
    /** readings parsed and not yet committed */
    get held() {
      return held;
    },
    /** payload bytes (plus per-message overhead) received and not yet committed */
    get heldBytes() {
      return heldBytes;
    },
  };
}
