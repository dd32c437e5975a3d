import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { ROOT } from '../../scripts/stack.js';
import { freePort } from '../../scripts/stack/services.js';
import { createTestDatabase, stack, startTestBroker, token, waitFor } from '../support/env.js';
import { tagwatchClient } from '../../client/index.js';

/**
 * Issue 10 "one artifact, tested": the tarball `npm pack` makes (its `files` list is what ships)
 * is installed with --omit=dev into an empty directory and `tagwatch all` runs from it, compiled
 * JavaScript on plain node, against the test stack: ready, a reading stored, an alert raised.
 */

let work: string;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let service: ChildProcess | null = null;
let log = '';
let apiUrl = '';

function npm(args: string[], cwd: string): string {
  // npm of the node running this test (PATH first), quiet, from the local cache when it can
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8', timeout: 240_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.status !== 0) throw new Error(`npm ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tagwatch-pack-'));
  npm(['pack', '--pack-destination', work], ROOT); // prepack builds dist/
  const tarball = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error(`npm pack left no tarball in ${work}`);
  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{ "private": true }\n');
  npm(['install', '--omit=dev', '--prefer-offline', join(work, tarball)], app);

  db = await createTestDatabase();
  broker = await startTestBroker({ dynsec: true });
  const port = await freePort();
  apiUrl = `http://127.0.0.1:${port}`;
  const bin = join(app, 'node_modules', '.bin', 'tagwatch');
  service = spawn(bin, ['all'], {
    cwd: app,
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      DATABASE_URL: db.url,
      REDIS_URL: stack().REDIS_URL,
      MQTT_URL: broker.url,
      ...broker.credentials,
      JWT_SECRET: stack().JWT_SECRET,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      QUEUE_PREFIX: `p${randomBytes(5).toString('hex')}`,
      INGEST_INSTANCE: `p${randomBytes(5).toString('hex')}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  service.stdout!.on('data', (d: Buffer) => (log += d.toString()));
  service.stderr!.on('data', (d: Buffer) => (log += d.toString()));
}, 300_000);

afterAll(async () => {
  if (service && service.exitCode === null) {
    const exited = new Promise((r) => service!.once('exit', r));
    service.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    if (service.exitCode === null) service.kill('SIGKILL');
  }
  broker?.stop();
  await db?.drop();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('the packed artifact', () => {
  it('ships compiled JavaScript and no development tools', () => {
    const pkg = join(work, 'app', 'node_modules', 'tagwatch');
    expect(existsSync(join(pkg, 'dist', 'app', 'main.js'))).toBe(true);
    expect(existsSync(join(pkg, 'npm-shrinkwrap.json'))).toBe(true);
    expect(existsSync(join(pkg, 'src'))).toBe(false);
    for (const dev of ['tsx', 'typescript', 'vitest']) expect(existsSync(join(work, 'app', 'node_modules', dev)), dev).toBe(false);
  });

  it('runs `tagwatch all`: ready, stores a reading, raises an alert', async () => {
    await waitFor(async () => {
      if (service?.exitCode !== null) throw new Error(`tagwatch exited (${service?.exitCode}): ${log}`);
      return (await fetch(`${apiUrl}/readyz`)).status === 200;
    }, `/readyz from the packed service (log: ${log})`, 60_000, 200);

    // through the typed client (client/), as an outside team would
    const api = tagwatchClient(apiUrl, await token('admin'));
    const device = await api.POST('/v1/devices', { body: { id: 'PKG-D1', kind: 'combined' } });
    expect(device.response.status, JSON.stringify(device.error)).toBe(201);
    const subject = await api.POST('/v1/subjects', { body: { id: 'PKG-S1', display_name: 'Packed Person', cohort: 'flex', rag: 'red', offender_manager_ids: ['om-1'] } });
    expect(subject.response.status, JSON.stringify(subject.error)).toBe(201);
    const fitted = await api.POST('/v1/subjects/{id}/assignments', { params: { path: { id: 'PKG-S1' } }, body: { device_id: 'PKG-D1', start: new Date(Date.now() - 3600_000).toISOString() } });
    expect(fitted.response.status, JSON.stringify(fitted.error)).toBe(201);
    const unknown = await api.GET('/v1/devices/{id}', { params: { path: { id: 'NOPE-1' } } });
    expect(unknown.response.status).toBe(404);
    expect(unknown.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(unknown.error).toMatchObject({ status: 404, title: 'Not Found' });

    // the device itself, with the password registration gave it (the broker admits nobody else)
    const tag = await mqtt.connectAsync(broker.url, { clientId: 'PKG-D1', username: 'PKG-D1', password: device.data!.mqtt_password, reconnectPeriod: 0 });
    await tag.publishAsync('tags/v1/PKG-D1/status', JSON.stringify({ ts: new Date(Date.now() - 60_000).toISOString(), battery_pct: 80, strap: 'open', event: 'strap_tamper' }), { qos: 1 });
    await tag.endAsync();

    await waitFor(async () => (await db.pool.query(`SELECT 1 FROM readings WHERE device_id = 'PKG-D1' AND stream = 'status'`)).rowCount, 'the reading stored', 30_000);
    const alert = await waitFor(
      async () => (await db.pool.query(`SELECT type, subject_id FROM alerts WHERE device_id = 'PKG-D1'`)).rows[0],
      'the alert raised',
      30_000,
    );
    expect(alert).toEqual({ type: 'strap_tamper', subject_id: 'PKG-S1' });
  }, 120_000);

  it('serves the console from the packed artifact: its templates and the GOV.UK assets ship', async () => {
    await waitFor(async () => (await fetch(`${apiUrl}/readyz`)).status === 200, 'the packed service ready', 60_000, 200);
    const page = await fetch(`${apiUrl}/console/sign-in`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Sign in to the electronic monitoring console');
    const css = await fetch(`${apiUrl}/console/assets/govuk-frontend.min.css`);
    expect(css.status).toBe(200);
    expect((await fetch(`${apiUrl}/console/assets/console.js`)).status).toBe(200);
  });
});
