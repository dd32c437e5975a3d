import { startReceiver } from '../../test/support/sse.js';

/**
 * The outside of the fault suite: an SSE client that reconnects (with Last-Event-ID) whenever
 * its stream ends, as a browser's EventSource does, and a webhook receiver. Both record the
 * alert ids of `raised` events; duplicates are counted, not dropped, so the suite can say
 * that every delivery is deduplicable (by event id, by X-Tagwatch-Delivery).
 */
export function reconnectingStream(url: string, token: string) {
  const raised = new Map<string, number>();
  let lastId: string | null = null;
  let reconnects = 0;
  let stopped = false;
  let controller = new AbortController();
  const loop = (async () => {
    while (!stopped) {
      try {
        const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'text/event-stream' };
        if (lastId) headers['last-event-id'] = lastId;
        const res = await fetch(url, { headers, signal: controller.signal });
        if (res.status !== 200 || !res.body) throw new Error(`status ${res.status}`);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const id = /^id: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (id) lastId = id;
            if (!data) continue;
            const ev = JSON.parse(data) as { action?: string; alert?: { id: string } };
            if (ev.action === 'raised' && ev.alert) raised.set(ev.alert.id, (raised.get(ev.alert.id) ?? 0) + 1);
          }
        }
      } catch {
        /* the API went away, or we stopped */
      }
      if (stopped) break;
      reconnects++;
      controller = new AbortController();
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    raised,
    reconnects: () => reconnects,
    async close() {
      stopped = true;
      controller.abort();
      await loop;
    },
  };
}

export async function webhookReceiver(secret: string) {
  const r = await startReceiver(secret);
  const raised = () => {
    const m = new Map<string, number>();
    for (const x of r.received) {
      const j = x.json as { event?: string; action?: string; alert?: { id: string } };
      if ((j.event ?? j.action) === 'raised' && j.alert) m.set(j.alert.id, (m.get(j.alert.id) ?? 0) + 1);
    }
    return m;
  };
  return { url: r.url, secret, raised, badSignatures: () => r.received.filter((x) => !x.validSignature).length, close: r.close };
}
