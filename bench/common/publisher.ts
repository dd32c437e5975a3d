import mqtt, { type MqttClient } from 'mqtt';
import { benchMessage, messagePayload, type LoadShape } from './data.js';

/**
 * Simulated devices, run as a child process of the bench (`fork`) so their CPU is measured
 * apart from ingest's and the bench's own. Protocol over IPC: parent sends `job`, child answers
 * `ready` once connected (and, unpaced, with every payload built), parent sends `go`, child
 * answers `done` when the broker has acknowledged (PUBACK) every message.
 */

export interface PublishJob {
  url: string;
  connections: number;
  /** most unacknowledged QoS 1 publishes per connection */
  window: number;
  shape: LoadShape;
  messages: number;
  /** payload is an array (store-and-forward batch) rather than one reading object */
  asBatch: boolean;
  /** messages per second, or null to publish as fast as the window allows */
  ratePerSec: number | null;
  /** put the publish time in each reading as `sent_at` */
  stampSentAt: boolean;
  clientPrefix: string;
}

export type PublisherReport =
  | { type: 'ready' }
  | { type: 'done'; firstPublishAt: number; lastAckAt: number; messages: number; maxLagMs: number }
  | { type: 'error'; message: string };

type ParentMessage = { type: 'job'; job: PublishJob } | { type: 'go' };

function send(r: PublisherReport): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(r, undefined, {}, () => resolve()) : resolve()));
}

async function connectAll(job: PublishJob): Promise<MqttClient[]> {
  const clients = Array.from({ length: job.connections }, (_, i) =>
    mqtt.connect(job.url, { clientId: `${job.clientPrefix}-${i}`, clean: true, reconnectPeriod: 0, connectTimeout: 10_000, keepalive: 60 }),
  );
  await Promise.all(
    clients.map(
      (c) =>
        new Promise<void>((resolve, reject) => {
          c.once('connect', () => resolve());
          c.once('error', reject);
        }),
    ),
  );
  for (const c of clients) c.on('error', (err) => void send({ type: 'error', message: `publisher connection: ${err.message}` }));
  return clients;
}

async function run(job: PublishJob, go: Promise<void>): Promise<void> {
  const clients = await connectAll(job);
  const inflight = new Array<number>(clients.length).fill(0);
  // Unpaced runs publish prebuilt payloads, so building JSON is not part of what is measured.
  const prebuilt = job.ratePerSec === null
    ? Array.from({ length: job.messages }, (_, m) => {
        const msg = benchMessage(job.shape, m);
        return { topic: msg.topic, payload: Buffer.from(messagePayload(msg, job.asBatch)) };
      })
    : null;
  await send({ type: 'ready' });
  await go;

  let next = 0;
  let acked = 0;
  let cursor = 0;
  let maxLagMs = 0;
  let firstPublishAt = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));

  const publishOne = (): boolean => {
    for (let tries = 0; tries < clients.length; tries++) {
      const i = cursor;
      cursor = (cursor + 1) % clients.length;
      if (inflight[i]! >= job.window) continue;
      const m = next++;
      let topic: string;
      let payload: Buffer | string;
      if (prebuilt) ({ topic, payload } = prebuilt[m]!);
      else {
        const msg = benchMessage(job.shape, m, job.stampSentAt ? new Date().toISOString() : undefined);
        topic = msg.topic;
        payload = messagePayload(msg, job.asBatch);
      }
      if (m === 0) firstPublishAt = Date.now();
      inflight[i]!++;
      clients[i]!.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) return void send({ type: 'error', message: `publish failed: ${err.message}` });
        inflight[i]!--;
        acked++;
        if (acked === job.messages) finish();
        else if (job.ratePerSec === null) pump();
      });
      return true;
    }
    return false;
  };
  const pump = () => {
    while (next < job.messages && publishOne());
  };

  if (job.ratePerSec === null) pump();
  else {
    const rate = job.ratePerSec;
    const t0 = Date.now();
    const timer = setInterval(() => {
      const due = Math.min(job.messages, Math.floor(((Date.now() - t0) * rate) / 1000) + 1);
      while (next < due && publishOne());
      maxLagMs = Math.max(maxLagMs, ((due - next) * 1000) / rate);
      if (next >= job.messages) clearInterval(timer);
    }, 2);
  }
  await finished;
  const lastAckAt = Date.now();
  await Promise.all(clients.map((c) => c.endAsync().catch(() => undefined)));
  await send({ type: 'done', firstPublishAt, lastAckAt, messages: job.messages, maxLagMs });
}

let goSignal: () => void = () => {};
const go = new Promise<void>((r) => (goSignal = r));
process.on('message', (msg: ParentMessage) => {
  if (msg.type === 'go') goSignal();
  else if (msg.type === 'job') {
    // After `done` the process stays until the parent stops it, so its CPU time stays readable.
    run(msg.job, go).catch(async (err: Error) => {
      await send({ type: 'error', message: err.message });
      process.exit(1);
    });
  }
});
process.on('disconnect', () => process.exit(0));
