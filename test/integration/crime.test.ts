import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { authHeader, createTestDatabase, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { haversineM } from '../../crime/rules.js';

/**
 * Crime matching end to end (contract §8): trails arrive over MQTT, a batch is uploaded as CSV,
 * the worker matches it, a crime analyst reads and reviews, a confirmed match reaches the
 * subject's manager as a crime_proximity alert.
 */

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;

type Who = [Parameters<typeof authHeader>[0], string?];
const CA: Who = ['crime_analyst', 'ca-1'];
const SUP: Who = ['supervisor', 'sup-1'];
const OM: Who = ['offender_manager', 'om-1'];

async function api(method: 'GET' | 'POST', url: string, payload?: unknown, who: Who = ['admin'], headers: Record<string, string> = {}) {
  return svc.app.inject({ method, url, headers: { ...(await authHeader(...who)), ...headers }, ...(payload !== undefined ? { payload: payload as object } : {}) });
}

// the crime scene, and points at known distances north of it (1° of latitude ≈ 111,195 m on the contract's sphere)
const C = { lat: 52.95, lon: -1.15 };
const north = (m: number) => ({ lat: C.lat + m / 111_194.93, lon: C.lon });
const NOW = Math.floor(Date.now() / 60_000) * 60_000;
const T0 = NOW - 3 * 3_600_000; // trails start
const compact = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(0, 14);

async function subject(id: string, device: string, managers = ['om-1']) {
  expect((await api('POST', '/v1/devices', { id: device, kind: 'gps' })).statusCode).toBe(201);
  expect((await api('POST', '/v1/subjects', { id, display_name: `Person ${id}`, cohort: 'fixed', rag: 'red', offender_manager_ids: managers })).statusCode).toBe(201);
  expect((await api('POST', `/v1/subjects/${id}/assignments`, { device_id: device, start: new Date(T0 - 60_000).toISOString() })).statusCode).toBe(201);
}

/** Fixes every 5 minutes from T0 to NOW − 1 minute at one place. */
async function publishStill(device: string, at: { lat: number; lon: number }, accuracy: number) {
  const fixes = [];
  for (let t = T0; t <= NOW - 60_000; t += 300_000) fixes.push({ ts: new Date(t).toISOString(), ...at, accuracy_m: accuracy });
  await pub.publishAsync(`tags/v1/${device}/gps`, JSON.stringify(fixes), { qos: 1 });
  return fixes.length;
}

const W1 = { from: NOW - 100 * 60_000, to: NOW - 70 * 60_000 };
const row = (ref: string, w: { from: number; to: number }, at: { lat: number; lon: number }, text = 'rear door forced') =>
  `NOTTINGHAMSHIRE,BIAD,,NOT20261201,${ref},${compact(w.from)},${compact(w.to)},,,${at.lat.toFixed(7)},${at.lon.toFixed(7)},WGS84,${text}`;

let batchId: string;
let firstRun: string;
const crimeIds: Record<string, string> = {};

beforeAll(async () => {
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, MQTT_URL: broker.url }), { ingest: true, worker: true });
  pub = await mqtt.connectAsync(broker.url, { clientId: 'crime-test-publisher' });
  await subject('K-S1', 'K-D1'); // at the scene: placed
  await subject('K-S2', 'K-D2', ['om-2']); // 150 m away, error circle of 60 m reaching in: possible
  await subject('K-S3', 'K-D3'); // 5 km away: ruled out
  await subject('K-S4', 'K-D4'); // fitted, no fixes: no data
  let n = 0;
  n += await publishStill('K-D1', C, 10);
  n += await publishStill('K-D2', north(150), 60);
  n += await publishStill('K-D3', north(5000), 10);
  await waitFor(async () => (await db.pool.query(`SELECT count(*)::int n FROM readings WHERE stream = 'gps'`)).rows[0].n === n, 'fixes stored');
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
});

async function runDone(runId: string) {
  return waitFor(async () => {
    const b = (await api('GET', `/v1/crime-batches/${batchId}`, undefined, CA)).json();
    const run = b.runs.find((r: { id: string }) => String(r.id) === String(runId));
    return run?.status === 'done' ? { batch: b, run } : null;
  }, `run ${runId} done`);
}

describe('a crime batch through matching, checks and review', () => {
  it('takes the CSV, reports the bad row, and matches the good rows on the worker', async () => {
    const csv = [
      row('CR/1', W1, C),
      row('CR/2', W1, north(20), 'second crime with the same window start'),
      row('CR/3', W1, { lat: 53.8, lon: -1.55 }, '=cmd|" /C calc"!A0'),
      row('CR/4', { from: NOW - 3_600_000, to: NOW + 3_600_000 }, C),
    ].join('\n');
    const r = await api('POST', '/v1/crime-batches', csv, CA, { 'content-type': 'text/csv' });
    expect(r.statusCode, r.body).toBe(201);
    const body = r.json();
    expect(body).toMatchObject({ police_batch_id: 'NOT20261201', accepted: 3, rejected: 1, errors: [{ row: 4, reason: 'the window ends in the future' }] });
    batchId = String(body.id);
    firstRun = String(body.run_id);
    const { batch, run } = await runDone(firstRun);
    expect(run).toMatchObject({ crimes_done: 3, crimes_total: 3, params: { radius_m: 100, speed_mps: 20, max_gap_s: 3600 } });
    expect(run.params_version).toMatch(/^[0-9a-f]{16}$/);
    expect(new Date(run.readings_received_max).getTime()).toBeGreaterThan(NOW - 600_000);
    for (const c of batch.crime_ids) crimeIds[c.crime_ref] = c.id;
    expect(Object.keys(crimeIds).sort()).toEqual(['CR/1', 'CR/2', 'CR/3']);
  });

  it('answers a crime with its placed and possible subjects only, with deciding fixes and distances', async () => {
    const r = await api('GET', `/v1/crimes/${crimeIds['CR/1']}`, undefined, CA);
    expect(r.statusCode).toBe(200);
    const subjects = r.json().subjects;
    expect(subjects.map((s: { subject_id: string; category: string }) => [s.subject_id, s.category])).toEqual([
      ['K-S1', 'placed'],
      ['K-S2', 'possible'],
    ]);
    expect(subjects[0]).toMatchObject({ display_name: 'Person K-S1', review: 'pending' });
    expect(subjects[0].deciding.length).toBe(7); // fixes every 5 min in a 30 min window, ends included
    expect(subjects[1].deciding[0]).toMatchObject({ device_id: 'K-D2', reason: 'overlaps', accuracy_m: 60 });
    expect(subjects[1].deciding[0].distance_m).toBeCloseTo(150, 0);
    expect(JSON.stringify(r.json())).not.toContain('K-S3');
    expect((await api('GET', `/v1/crimes/${crimeIds['CR/3']}`, undefined, CA)).json().subjects).toEqual([]);
    expect((await api('GET', `/v1/crimes/${crimeIds['CR/1']}`, undefined, OM)).statusCode).toBe(403);
    expect((await api('GET', '/v1/crimes/999999', undefined, CA)).statusCode).toBe(404);
  });

  it('checks one subject for all four categories, with a required reason, coordinates only when placed or possible', async () => {
    const url = (s: string, reason?: string) => `/v1/crimes/${crimeIds['CR/1']}/subjects/${s}${reason ? `?reason=${encodeURIComponent(reason)}` : ''}`;
    const noReason = await api('GET', url('K-S3'), undefined, CA);
    expect(noReason.statusCode).toBe(400);
    expect(noReason.headers['content-type']).toContain('application/problem+json');
    const placed = (await api('GET', url('K-S1', 'defence request 17'), undefined, CA)).json();
    expect(placed).toMatchObject({ category: 'placed', display_name: 'Person K-S1' });
    expect(placed.deciding[0]).toHaveProperty('lat');
    const out = await api('GET', url('K-S3', 'rule-out for a suspect'), undefined, CA);
    expect(out.json()).toMatchObject({ category: 'ruled_out', coverage: { covered: true, before: true, after: true } });
    expect(out.json()).not.toHaveProperty('deciding');
    expect(out.body).not.toMatch(/"lat"|"lon"/);
    const none = (await api('GET', url('K-S4', 'rule-out for a suspect'), undefined, SUP)).json();
    expect(none).toMatchObject({ category: 'no_data', coverage: { covered: false, fixes_in_window: 0 } });
    expect((await api('GET', url('NOBODY', 'x-ray'), undefined, CA)).statusCode).toBe(404);
    expect((await api('GET', `/v1/crimes/999999/subjects/K-S1?reason=abc`, undefined, CA)).statusCode).toBe(404);
  });

  it('lets supervisors (not crime analysts) list every check with its reason', async () => {
    const r = await api('GET', '/v1/crime-checks?limit=2', undefined, SUP);
    expect(r.statusCode).toBe(200);
    const page1 = r.json();
    expect(page1.items).toHaveLength(2);
    const page2 = (await api('GET', `/v1/crime-checks?limit=2&before=${page1.next_before}`, undefined, SUP)).json();
    const all = [...page1.items, ...page2.items];
    expect(all.map((c: { subject_id: string; reason: string; category: string; actor: string }) => [c.subject_id, c.reason, c.category, c.actor])).toEqual([
      ['K-S4', 'rule-out for a suspect', 'no_data', 'sup-1'],
      ['K-S3', 'rule-out for a suspect', 'ruled_out', 'ca-1'],
      ['K-S1', 'defence request 17', 'placed', 'ca-1'],
    ]);
    expect(all[0].crime_ref).toBe('CR/1');
    expect((await api('GET', '/v1/crime-checks', undefined, CA)).statusCode).toBe(403);
  });

  it('raises one crime_proximity alert per confirmed match, to the subject’s managers, in the same transaction as the review', async () => {
    const m1 = (await api('GET', `/v1/crimes/${crimeIds['CR/1']}`, undefined, CA)).json().subjects[0];
    const m2 = (await api('GET', `/v1/crimes/${crimeIds['CR/2']}`, undefined, CA)).json().subjects.find((s: { subject_id: string }) => s.subject_id === 'K-S1');
    const noNote = await api('POST', `/v1/crime-matches/${m1.match_id}/review`, { decision: 'confirmed' }, CA);
    expect(noNote.statusCode).toBe(400);
    const r1 = await api('POST', `/v1/crime-matches/${m1.match_id}/review`, { decision: 'confirmed', note: 'seen on CCTV too' }, CA);
    expect(r1.statusCode, r1.body).toBe(200);
    expect(r1.json()).toMatchObject({ review: 'confirmed', reviewed_by: 'ca-1', alert_id: expect.any(String) });
    expect((await api('POST', `/v1/crime-matches/${m1.match_id}/review`, { decision: 'rejected', note: 'again' }, CA)).statusCode).toBe(409);
    // the second crime has the same window start: still its own alert
    const r2 = await api('POST', `/v1/crime-matches/${m2.match_id}/review`, { decision: 'confirmed', note: 'same night' }, CA);
    expect(r2.statusCode, r2.body).toBe(200);
    const alerts = (await api('GET', '/v1/alerts?type=crime_proximity', undefined, OM)).json().items;
    expect(alerts).toHaveLength(2);
    expect(alerts.map((a: { id: string }) => a.id).sort()).toEqual([r1.json().alert_id, r2.json().alert_id].sort());
    const a1 = alerts.find((a: { id: string }) => a.id === r1.json().alert_id);
    expect(a1).toMatchObject({ severity: 'medium', subject_id: 'K-S1', status: 'open', started_at: new Date(W1.from).toISOString() });
    expect(a1.evidence[0]).toMatchObject({ kind: 'crime', crime_ref: 'CR/1', crime_type: 'BIAD', window: { from: new Date(W1.from).toISOString(), to: new Date(W1.to).toISOString() } });
    expect(a1.evidence.slice(1).every((f: { kind: string; distance_m: number }) => f.kind === 'fix' && f.distance_m <= 100)).toBe(true);
    // delivered like every alert: a raised event on the feed
    const raised = await db.pool.query(`SELECT count(*)::int n FROM alert_events WHERE alert_id = ANY($1::uuid[]) AND action = 'raised'`, [[r1.json().alert_id, r2.json().alert_id]]);
    expect(raised.rows[0].n).toBe(2);
    // K-S2's manager is om-2: om-1 does not see it, and a rejected match raises nothing
    const m3 = (await api('GET', `/v1/crimes/${crimeIds['CR/1']}`, undefined, CA)).json().subjects[1];
    expect((await api('POST', `/v1/crime-matches/${m3.match_id}/review`, { decision: 'rejected', note: 'error circle only' }, CA)).json().alert_id).toBeNull();
    expect((await db.pool.query(`SELECT count(*)::int n FROM alerts WHERE subject_id = 'K-S2'`)).rows[0].n).toBe(0);
    expect((await api('POST', '/v1/crime-matches/999999/review', { decision: 'confirmed', note: 'x' }, CA)).statusCode).toBe(404);
  });

  it('re-runs with other parameters and keeps both results', async () => {
    const bad = await api('POST', `/v1/crime-batches/${batchId}/rerun`, { params: { radius_m: -5 } }, CA);
    expect(bad.statusCode).toBe(400);
    const r = await api('POST', `/v1/crime-batches/${batchId}/rerun`, { params: { radius_m: 300 } }, CA);
    expect(r.statusCode).toBe(202);
    const second = String(r.json().run_id);
    const { batch } = await runDone(second);
    expect(batch.runs.map((x: { params: { radius_m: number } }) => x.params.radius_m)).toEqual([100, 300]);
    const latest = (await api('GET', `/v1/crimes/${crimeIds['CR/1']}`, undefined, CA)).json();
    expect(latest.run.id).toBe(second);
    expect(latest.subjects.map((s: { subject_id: string; category: string }) => [s.subject_id, s.category])).toEqual([
      ['K-S1', 'placed'],
      ['K-S2', 'placed'],
    ]);
    const old = (await api('GET', `/v1/crimes/${crimeIds['CR/1']}?run_id=${firstRun}`, undefined, CA)).json();
    expect(old.subjects.map((s: { category: string; review: string }) => [s.category, s.review])).toEqual([
      ['placed', 'confirmed'],
      ['possible', 'rejected'],
    ]);
  });

  it('exports the results as CSV with formula text escaped', async () => {
    // a crime with formula text that matches someone: put it at K-S1's place
    const csv = row('CR/9', W1, C, '=cmd|" /C calc"!A0').replace('NOT20261201', 'NOT20261202');
    const up = await api('POST', '/v1/crime-batches', csv, CA, { 'content-type': 'text/csv' });
    expect(up.statusCode).toBe(201);
    const id = String(up.json().id);
    await waitFor(async () => (await api('GET', `/v1/crime-batches/${id}`, undefined, CA)).json().runs[0].status === 'done', 'export batch done');
    const r = await api('GET', `/v1/crime-batches/${id}/results.csv`, undefined, CA);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/csv');
    expect(r.body).toContain(`"'=cmd|"" /C calc""!A0"`);
    expect(r.body).not.toMatch(/(^|,)=cmd/m);
    expect(r.body).toContain('K-S1');
    expect((await api('GET', `/v1/crime-batches/${id}/results.csv`, undefined, SUP)).statusCode).toBe(403);
  });

  it('audits every upload, read, check, review and export with the crime reference', async () => {
    const a = await db.pool.query(`SELECT action, actor, subject_id, detail FROM audit_log WHERE action LIKE 'crime.%' ORDER BY id`);
    const actions = new Set(a.rows.map((x) => x.action));
    for (const act of ['crime.batch.upload', 'crime.batch.read', 'crime.read', 'crime.check', 'crime.checks.read', 'crime.match.review', 'crime.batch.rerun', 'crime.results.export']) expect(actions, act).toContain(act);
    expect(a.rows.find((x) => x.action === 'crime.batch.upload').detail.crime_refs).toEqual(['CR/1', 'CR/2', 'CR/3']);
    expect(a.rows.filter((x) => x.action === 'crime.check').map((x) => [x.subject_id, x.detail.crime_ref, x.detail.reason])).toContainEqual(['K-S3', 'CR/1', 'rule-out for a suspect']);
    expect(a.rows.filter((x) => x.action === 'crime.read' && x.subject_id === 'K-S1').every((x) => typeof x.detail.crime_ref === 'string')).toBe(true);
    expect(a.rows.find((x) => x.action === 'crime.match.review').detail.crime_ref).toBe('CR/1');
  });
});

describe('bad batches', () => {
  const counts = async () => (await db.pool.query(`SELECT (SELECT count(*) FROM crime_batches)::int b, (SELECT count(*) FROM crimes)::int c, (SELECT count(*) FROM crime_runs)::int r`)).rows[0];
  const good = row('CR/X', W1, C).replace('NOT20261201', 'NOT20261203');

  it.each([
    ['not UTF-8', Buffer.from([0x4e, 0x4f, 0x54, 0xff, 0xfe, 0x2c, 0x0a]), 400, /not UTF-8/],
    ['only a header row', Buffer.from('force,type,unused,batch,ref,from,to,easting,northing,lat,lon,datum,text\n'), 422, /no row of the batch is valid/],
    ['a row of 200 columns only', Buffer.from(good + ',x'.repeat(187) + '\n'), 422, /no row/],
    ['NUL bytes', Buffer.from(good.replace('rear', 'r\u0000ear')), 400, /NUL/],
    ['an empty file', Buffer.from(''), 400, /no rows/],
  ])('refuses %s with a problem and stores nothing', async (_n, payload, status, detail) => {
    const before = await counts();
    const r = await svc.app.inject({ method: 'POST', url: '/v1/crime-batches', headers: { ...(await authHeader(...CA)), 'content-type': 'text/csv' }, payload });
    expect(r.statusCode, r.body).toBe(status);
    expect(r.headers['content-type']).toContain('application/problem+json');
    expect(r.json().detail).toMatch(detail);
    expect(await counts()).toEqual(before);
  });

  it('names the row and reason of a 200-column row and a header among good rows', async () => {
    const header = 'force,type,unused,batch,ref,from,to,easting,northing,lat,lon,datum,text';
    const r = await api('POST', '/v1/crime-batches', [header, good, good.replace('CR/X', 'CR/Y') + ',x'.repeat(187)].join('\n'), CA, { 'content-type': 'text/csv' });
    expect(r.statusCode).toBe(201);
    expect(r.json().errors).toEqual([
      { row: 1, reason: 'a header row: the format has none' },
      { row: 3, reason: '200 columns, expected 13' },
    ]);
  });

  it('refuses a police batch id seen before (409) and a 50 MiB file (413), leaving nothing', async () => {
    const before = await counts();
    const again = await api('POST', '/v1/crime-batches', good, CA, { 'content-type': 'text/csv' });
    expect(again.statusCode).toBe(409);
    expect(again.json().detail).toMatch(/NOT20261203 was uploaded before/);
    const big = Buffer.alloc(50 * 1024 * 1024, 'a');
    const r = await svc.app.inject({ method: 'POST', url: '/v1/crime-batches', headers: { ...(await authHeader(...CA)), 'content-type': 'text/csv' }, payload: big });
    expect(r.statusCode).toBe(413);
    expect(r.headers['content-type']).toContain('application/problem+json');
    expect(await counts()).toEqual(before);
  });

  it('accepts JSON rows, coordinates in the sea included, and refuses an unknown content type', async () => {
    const sea = { force: 'NORFOLK', crime_type: 'TFMV', batch_id: 'NOR20261201', crime_ref: 'SEA/1', from: compact(W1.from), to: compact(W1.to), lat: 53.2, lon: 2.0, datum: 'WGS84', free_text: 'on a boat' };
    const r = await api('POST', '/v1/crime-batches', { rows: [sea, { ...sea, crime_ref: 'SEA/2', easting: 700000, northing: 1, lat: undefined, lon: undefined, datum: 'OSGB36' }] }, CA);
    expect(r.statusCode, r.body).toBe(201);
    expect(r.json()).toMatchObject({ accepted: 1, errors: [{ row: 2, reason: 'easting or northing out of range (0..600000, 0..1300000)' }] });
    const x = await api('POST', '/v1/crime-batches', '<xml/>', CA, { 'content-type': 'application/xml' });
    expect(x.statusCode).toBe(415);
    expect((await api('POST', '/v1/crime-batches', { rows: [] }, CA)).statusCode).toBe(400);
    expect((await api('POST', '/v1/crime-batches', { rows: [sea] }, SUP)).statusCode).toBe(403);
  });
});

it('places the test subjects where the test says (distance check of the set-up)', () => {
  expect(haversineM(C.lat, C.lon, north(150).lat, north(150).lon)).toBeCloseTo(150, 0);
});

it('documents every crime route in the OpenAPI document: operationId, summary, tags, 4xx problems, both batch media types', async () => {
  const doc = (await svc.app.inject({ method: 'GET', url: '/docs/json' })).json();
  const ops = Object.entries(doc.paths as Record<string, Record<string, { operationId?: string; summary?: string; tags?: string[]; responses?: Record<string, unknown>; requestBody?: { content: Record<string, unknown> } }>>)
    .filter(([path]) => path.startsWith('/v1/crime'))
    .flatMap(([path, methods]) => Object.entries(methods).map(([m, op]) => ({ at: `${m} ${path}`, ...op })));
  expect(ops).toHaveLength(8);
  for (const op of ops) {
    expect(op.operationId, op.at).toMatch(/^[a-zA-Z]+$/);
    expect(op.summary, op.at).toBeTruthy();
    expect(op.tags, op.at).toEqual(['crime']);
    expect(Object.keys(op.responses ?? {}).filter((c) => c.startsWith('4')).length, op.at).toBeGreaterThanOrEqual(3);
  }
  expect(new Set(ops.map((o) => o.operationId)).size).toBe(8);
  const upload = ops.find((o) => o.at === 'post /v1/crime-batches')!;
  expect(Object.keys(upload.requestBody!.content).sort()).toEqual(['application/json', 'text/csv']);
});
