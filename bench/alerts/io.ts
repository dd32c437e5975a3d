import http from 'node:http';
import type { Socket } from 'node:net';
import { freePort } from '../../scripts/stack/services.js';
import { startReceiver } from '../../test/support/sse.js';

/**
 * The outside of bench:alerts: a Server-Sent Events client that stamps each event's arrival,
 * and 100 webhook receivers on loopback, some of them dead (nothing listening: connection
 * refused; or accepting and never answering: hanging).
 */

export interface StampedEvent {
  id: string;
  at: number;
  data: { action: string; alert: { id: string; type: string; evidence: Array<{ sent_at?: string }> } };
}

/** An SSE client (as test/support/sse.ts openStream) that records when each event arrived. */
export async function openStampedStream(url: string, token: string) {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: controller.signal });
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  const events: StampedEvent[] = [];
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        const at = Date.now();
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (id && data) events.push({ id, at, data: JSON.parse(data) });
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return {
    events,
    async close() {
      controller.abort();
      await pump;
    },
  };
}

export type ReceiverKind = 'healthy' | 'refused' | 'hanging';

export interface BenchReceiver {
  kind: ReceiverKind;
  url: string;
  secret: string;
  /** healthy ones: what arrived (test/support/sse.ts startReceiver records arrival time and signature check) */
  received: Awaited<ReturnType<typeof startReceiver>>['received'];
  /** hanging ones: requests accepted and left unanswered */
  hung: () => number;
  close(): Promise<void>;
}

async function hangingReceiver(): Promise<{ url: string; hung: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let hung = 0;
  const server = http.createServer(() => void hung++); // never answers
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    hung: () => hung,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** `count` receivers: the last `refused` + `hanging` of them dead. */
export async function startReceivers(count: number, refused: number, hanging: number): Promise<BenchReceiver[]> {
  const out: BenchReceiver[] = [];
  for (let i = 0; i < count; i++) {
    const secret = `bench-secret-${String(i).padStart(4, '0')}-${Math.random().toString(36).slice(2)}`;
    const kind: ReceiverKind = i < count - refused - hanging ? 'healthy' : i < count - hanging ? 'refused' : 'hanging';
    if (kind === 'healthy') {
      const r = await startReceiver(secret);
      out.push({ kind, url: r.url, secret, received: r.received, hung: () => 0, close: r.close });
    } else if (kind === 'refused') {
      out.push({ kind, url: `http://127.0.0.1:${await freePort()}/hook`, secret, received: [], hung: () => 0, close: async () => undefined });
    } else {
      const h = await hangingReceiver();
      out.push({ kind, url: h.url, secret, received: [], hung: h.hung, close: h.close });
    }
  }
  return out;
}

/** Registers a receiver as a supervisor's webhook through the API (POST /v1/webhooks). */
export async function registerWebhook(apiBase: string, token: string, r: BenchReceiver): Promise<void> {
  const res = await fetch(`${apiBase}/v1/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: r.url, secret: r.secret }),
  });
  if (res.status !== 201) throw new Error(`POST /v1/webhooks for ${r.url}: ${res.status} ${await res.text()}`);
}
