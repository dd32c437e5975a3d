import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SseEvent {
  id: string;
  data: { id: string; action: string; note?: string | null; alert: { id: string; type: string; subject_id: string; status: string } };
}

/** A stream event other than an alert (`event: truncated`, `event: expired`, …). */
export interface SseNotice {
  event: string;
  id: string | undefined;
  data: Record<string, unknown>;
}

/** A real SSE client over HTTP: collects events until closed. `token` is a bearer token, or a console session's `{ cookie }` header. */
export async function openStream(url: string, token: string | { cookie: string }, lastEventId?: string) {
  const controller = new AbortController();
  const auth: Record<string, string> = typeof token === 'string' ? { authorization: `Bearer ${token}` } : { cookie: token.cookie };
  const res = await fetch(url, {
    headers: { ...auth, accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  const notices: SseNotice[] = [];
  let heartbeats = 0;
  let ended = false;
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(': heartbeat')) heartbeats++;
          const id = /^id: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          if (event !== 'alert' && data) notices.push({ event, id, data: JSON.parse(data) });
          else if (id && data) events.push({ id, data: JSON.parse(data) });
        }
      }
    } catch {
      /* aborted */
    } finally {
      ended = true;
    }
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    notices,
    /** whether the server ended the stream (or it was closed) */
    get ended() {
      return ended;
    },
    get heartbeats() {
      return heartbeats;
    },
    async close() {
      controller.abort();
      await pump;
    },
  };
}

export interface Received {
  body: string;
  json: { delivery_id: string; event: string; alert: { id: string; type: string } };
  signature: string | undefined;
  delivery: string | undefined;
  validSignature: boolean;
  at: number;
}

/** A real HTTP webhook receiver on loopback that checks signatures; `status` sets its answer. */
export async function startReceiver(secret: string) {
  const received: Received[] = [];
  let status = 200;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const signature = req.headers['x-tagwatch-signature'] as string | undefined;
      const expected = `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
      received.push({ body, json: JSON.parse(body), signature, delivery: req.headers['x-tagwatch-delivery'] as string | undefined, validSignature: signature === expected, at: Date.now() });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    setStatus(s: number) {
      status = s;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
