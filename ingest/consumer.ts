import type { Logger } from '../platform/logger.js';
import type { createBatcher } from './batcher.js';
import { createMqttSession, type MqttSession } from './mqtt-session.js';
import { parseMessage } from './telemetry.js';

export interface ConsumerOptions {
  url: string;
  username?: string;
  password?: string;
  /** connections in the shared subscription group from this process */
  connections: number;
  /** most unacknowledged messages per connection (MQTT 5 Receive Maximum) */
  inflight: number;
  /** readings held (parsed, not yet committed) above which intake pauses */
  maxPending: number;
  /** stable per process: session `tagwatch-ingest-{instance}-{n}` persists across restarts */
  instance: string;
  shareGroup: string;
  retentionDays: number;
  batcher: ReturnType<typeof createBatcher>;
  logger: Logger;
  now?: () => number;
  keepalive?: number;
}

export const TELEMETRY_FILTER = 'tags/v1/+/+';
/** seconds a broker keeps an ingest session (and its QoS 1 messages) while the process is away */
const SESSION_EXPIRY_S = 30 * 86_400;

/**
 * The MQTT side of ingest: a few persistent MQTT 5 sessions (QoS 1) in one shared subscription
 * group, each with up to `inflight` messages unacknowledged (see mqtt-session.ts). Every message
 * goes to the batcher, which groups the messages of all connections into shared writes; a
 * message's PUBACK is sent (in receipt order on its connection) only after its batch committed.
 * Memory is bounded twice: the broker sends at most connections × inflight unacknowledged
 * messages, and when the readings held reach `maxPending` (a slow or stopped database, large
 * store-and-forward batches) the consumer stops reading its sockets until they fall to half.
 */
export function createIngestConsumer(opts: ConsumerOptions) {
  const now = opts.now ?? Date.now;
  const filter = `$share/${opts.shareGroup}/${TELEMETRY_FILTER}`;
  const sessions: MqttSession[] = [];
  let connectedCount = 0;
  let held = 0;
  let throttled = false;
  let intakeStopped = false;

  function applyIntake(): void {
    const shouldPause = intakeStopped || held >= opts.maxPending;
    const shouldResume = !intakeStopped && held <= opts.maxPending / 2;
    if (!throttled && shouldPause) {
      throttled = true;
      if (!intakeStopped) opts.logger.info({ held }, 'ingest intake paused: too many readings awaiting commit');
      for (const s of sessions) s.pause();
    } else if (throttled && shouldResume) {
      throttled = false;
      for (const s of sessions) s.resume();
    }
  }

  function onMessage(topic: string, payload: Buffer, ack: () => void): void {
    const parsed = parseMessage(topic, payload, now(), opts.retentionDays);
    const weight = Math.max(1, parsed.readings.length);
    held += weight;
    opts.batcher.add({
      topic,
      readings: parsed.readings,
      rejections: parsed.rejections,
      done: () => {
        held -= weight;
        ack();
        if (throttled) applyIntake();
      },
    });
    if (!throttled && held >= opts.maxPending) applyIntake();
  }

  async function start(): Promise<void> {
    for (let i = 0; i < opts.connections; i++) {
      sessions.push(
        createMqttSession({
          url: opts.url,
          clientId: `tagwatch-ingest-${opts.instance}-${i}`,
          username: opts.username,
          password: opts.password,
          filter,
          receiveMaximum: opts.inflight,
          keepalive: opts.keepalive ?? 30,
          sessionExpiry: SESSION_EXPIRY_S,
          onMessage: (m) => onMessage(m.topic, m.payload, m.ack),
          onState: (up) => {
            connectedCount += up ? 1 : -1;
            if (!up) opts.logger.warn({ client: i }, 'mqtt ingest connection lost; reconnecting');
          },
          onError: (err, fatal) => (fatal ? opts.logger.error : opts.logger.warn).call(opts.logger, { err: err.message, client: i }, 'mqtt ingest connection error'),
        }),
      );
    }
    try {
      await Promise.all(sessions.map((s) => s.start()));
    } catch (err) {
      await stop();
      throw err;
    }
    opts.logger.info({ connections: opts.connections, inflight: opts.inflight, topic: filter }, 'ingest subscribed');
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
    get connectedCount() {
      return connectedCount;
    },
    /** readings parsed and not yet committed */
    get held() {
      return held;
    },
  };
}
