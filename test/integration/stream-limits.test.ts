import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, stack, startTestService, testConfig, token, waitFor, type TestService } from '../support/env.js';
import { openStream } from '../support/sse.js';
import { mintDevToken } from '../../platform/http/dev-tokens.js';
import { withTransaction } from '../../platform/db.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';

// The live stream's limits (issue 9, finding 10) on a real listening server: small limits so
// the tests reach them quickly.
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let base: string;
const url = () => `${base}/v1/alerts/stream`;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig({ DATABASE_URL: db.url, SSE_MAX_PER_USER: '2', SSE_MAX_TOTAL: '3', SSE_REPLAY_MAX: '5', SSE_MAX_BUFFER_BYTES: '1048576' });
  svc = await startTestService(config, { feed: true });
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ('L-S1', 'Person L-S1', 'free', 'red', '{om-1}')`);
});

afterAll(async () => {
  await svc?.stop();
  await db?.drop();
});

/** A new alert of L-S1 (a raised event), returning its id. */
async function newAlert(type: 'case_tamper' | 'strap_tamper' | 'low_battery' | 'no_signal' | 'no_gps_fix' = 'case_tamper'): Promise<string> {
  const r = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type, subjectId: 'L-S1', deviceId: null, zoneId: null, startedAt: new Date(), late: false, evidence: [] }));
  if (r.outcome !== 'raised') throw new Error(`not raised: ${r.outcome}`);
  return r.alert.id;
}

/** Adds `n` history events to an alert (at `at`), returning their feed ids in order. */
async function addEvents(alertId: string, n: number, at = new Date(), note = 'n'): Promise<string[]> {
  const r = await db.pool.query<{ id: string }>(
    `INSERT INTO alert_events (alert_id, at, actor, action, note) SELECT $1, $2, 'system', 'recurred', $4 || g FROM generate_series(1, $3) g RETURNING id::text`,
    [alertId, at, n, note],
  );
  return r.rows.map((x) => x.id).sort((a, b) => Number(BigInt(a) - BigInt(b)));
}

async function metric(name: string, labels = ''): Promise<number> {
  const text = await svc.rt.metrics.registry.metrics();
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ''} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

describe('live stream limits', () => {
  it('caps streams per user (429 with Retry-After) and in total, and frees a place when a stream closes', async () => {
    const om1 = await token('offender_manager', 'om-1');
    const a = await openStream(url(), om1);
    const b = await openStream(url(), om1);
    expect([a.status, b.status]).toEqual([200, 200]);
    const third = await fetch(url(), { headers: { authorization: `Bearer ${om1}` } });
    expect(third.status).toBe(429);
    expect(third.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await third.json()).detail).toMatch(/at most 2 live streams per user/);
    const other = await openStream(url(), await token('supervisor', 'sup-1'));
    expect(other.status).toBe(200); // another user has places of their own
    const full = await fetch(url(), { headers: { authorization: `Bearer ${await token('supervisor', 'sup-2')}` } });
    expect(full.status).toBe(429);
    expect((await full.json()).detail).toMatch(/the server's 3 live streams are in use/);
    await a.close();
    const again = await waitFor(async () => {
      const s = await openStream(url(), om1);
      if (s.status === 200) return s;
      await s.close();
      return null;
    }, 'a place after closing a stream');
    await Promise.all([b.close(), other.close(), again.close()]);
    await waitFor(async () => (await metric('tagwatch_sse_streams')) === 0, 'every stream released');
  });

  it('drops a client that stops reading, while another client receives every event', async () => {
    const alertId = await newAlert('strap_tamper');
    const before = await metric('tagwatch_sse_closed_total', 'reason="slow_client"');
    const reader = await openStream(url(), await token('offender_manager', 'om-1'));
    // a client that reads the headers and then nothing more
    const stuckToken = await token('supervisor', 'sup-1');
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get(url(), { headers: { authorization: `Bearer ${stuckToken}` } }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    res.pause();
    let closed = false;
    res.socket.on('close', () => (closed = true));
    // 16 batches of 30 events of about 50 KB (1.5 MB a batch, 24 MB in all: far more than the
    // socket buffers hold); the reading client has each batch before the next is written
    const ids: string[] = [];
    for (let i = 0; i < 16; i++) {
      const batch = await addEvents(alertId, 30, new Date(), 'x'.repeat(50_000));
      ids.push(...batch);
      await waitFor(() => reader.events.filter((e) => batch.includes(e.data.id)).length === batch.length, `batch ${i} at the reading client`, 30_000);
    }
    expect(reader.events.filter((e) => ids.includes(e.data.id)).length).toBe(ids.length);
    await waitFor(async () => (await metric('tagwatch_sse_closed_total', 'reason="slow_client"')) === (Number.isNaN(before) ? 0 : before) + 1, 'the stuck client dropped', 30_000);
    // the stuck client, reading again, finds its stream ended before the last event
    let received = '';
    res.on('data', (c: Buffer) => (received += c.toString()));
    res.resume();
    await waitFor(() => closed, 'the stuck client’s connection closed', 30_000);
    expect(received.includes(`"id":"${ids[ids.length - 1]}"`)).toBe(false);
    expect(reader.ended).toBe(false);
    await reader.close();
  });

  it('replays at most SSE_REPLAY_MAX events and 24 hours, and says the replay was truncated', async () => {
    const om1 = await token('offender_manager', 'om-1');
    const alertId = await newAlert('low_battery');
    const old = await addEvents(alertId, 2, new Date(Date.now() - 25 * 3600_000), 'old');
    const recent = await addEvents(alertId, 3);
    // resuming from before two events older than 24 hours: they are left out, and it says so
    const s1 = await openStream(url(), om1, String(BigInt(old[0]!) - 1n));
    expect(s1.status).toBe(200);
    await waitFor(() => s1.events.filter((e) => recent.includes(e.data.id)).length === 3, 'the recent events').catch((err: Error) => {
      throw new Error(`${err.message}: got ${JSON.stringify(s1.events.map((e) => e.data.id))}, notices ${JSON.stringify(s1.notices)}, expected ${JSON.stringify(recent)}`);
    });
    expect(s1.events.some((e) => old.includes(e.data.id))).toBe(false);
    expect(s1.notices.map((n) => n.event)).toEqual(['truncated']);
    expect(s1.notices[0]!.data).toMatchObject({ reason: expect.stringMatching(/24 hours/) });
    await s1.close();
    // Last-Event-ID: 0 replays only the last 5 events, after a notice
    const more = await addEvents(alertId, 9);
    const all = [...recent, ...more];
    const s2 = await openStream(url(), om1, '0');
    const last5 = all.slice(-5);
    await waitFor(() => s2.events.filter((e) => last5.includes(e.data.id)).length === 5, 'the last 5 events');
    expect(s2.events.map((e) => e.data.id)).toEqual(last5);
    expect(s2.notices.map((n) => n.event)).toEqual(['truncated']);
    expect(s2.notices[0]!.data).toMatchObject({ replayed_after: String(BigInt(last5[0]!) - 1n) });
    // the notice carries the resume point: reconnecting from it is not truncated again
    expect(s2.notices[0]!.id).toBe(String(BigInt(last5[0]!) - 1n));
    await s2.close();
    // a resume within the limits replays everything after it, with no notice
    const s3 = await openStream(url(), om1, all[all.length - 4]);
    await waitFor(() => s3.events.length === 3, 'three events');
    expect(s3.events.map((e) => e.data.id)).toEqual(all.slice(-3));
    expect(s3.notices).toEqual([]);
    await s3.close();
  });

  it('closes the stream when the token expires', async () => {
    const short = await mintDevToken(stack().JWT_SECRET, 'om-1', 'offender_manager', { ttlSeconds: 2 });
    const s = await openStream(url(), short);
    expect(s.status).toBe(200);
    await waitFor(() => s.ended, 'the stream ended at the token’s expiry', 6000);
    expect(s.notices.map((n) => n.event)).toEqual(['expired']);
    expect(await metric('tagwatch_sse_closed_total', 'reason="token_expired"')).toBe(1);
  });
});
