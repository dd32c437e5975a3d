import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import mqtt from 'mqtt';
import YAML from 'yaml';
import { Ajv } from 'ajv';
import { ROOT } from '../../scripts/stack.js';
import { ConfigSchema, loadConfig } from '../../platform/config.js';
import { migrate, pendingMigrations } from '../../platform/db.js';
import { stack, startTestBroker } from '../support/env.js';

/**
 * docker-compose.yml, without a Docker engine: valid against the Compose Specification's JSON
 * schema (vendored, test/fixtures/compose-spec), every service given the settings it needs,
 * ports on loopback by default, and its set-up steps (database roles, broker accounts) run
 * against the local stack so that they are known to work.
 */

type Service = { image?: string; build?: unknown; environment?: Record<string, string>; ports?: string[]; command?: string[]; entrypoint?: string[] };
const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
const compose = YAML.parse(text, { merge: true }) as { services: Record<string, Service> };
const tagwatchServices = Object.entries(compose.services).filter(([, s]) => s.image === 'tagwatch:local');

/** Compose interpolation with sample values for the operator's variables (${X:?msg}, ${X:-default}, ${X}, $$). */
const SAMPLE: Record<string, string> = {
  POSTGRES_PASSWORD: 'pg-secret',
  TAGWATCH_OWNER_PASSWORD: 'owner-secret',
  TAGWATCH_APP_PASSWORD: 'app-secret',
  MQTT_ADMIN_PASSWORD: 'admin-secret',
  MQTT_INGEST_PASSWORD: 'ingest-secret',
  JWT_JWKS_URL: 'https://idp.example/.well-known/jwks.json',
  JWT_ISSUER: 'https://idp.example/',
  SECRETS_KEY: 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=',
};
function interpolate(v: string, vars: Record<string, string> = SAMPLE): string {
  return v
    .replace(/\$\{([A-Z_]+)(?::([?-])([^}]*))?\}/g, (_m, name: string, op?: string, arg?: string) => {
      if (vars[name] !== undefined && vars[name] !== '') return vars[name]!;
      if (op === '?') throw new Error(`compose: ${name} is required (${arg})`);
      return op === '-' ? (arg ?? '') : '';
    })
    .replace(/\$\$/g, '$');
}
const envOf = (s: Service) => Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(String(v))]));

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema (and the check bites)', () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/compose-spec/compose-spec.json'), 'utf8')) as object;
    const ajv = new Ajv({ strict: false, allErrors: true, logger: false });
    // the schema names draft-07 by its https address; Ajv knows it by the http one
    const draft7 = JSON.parse(readFileSync(join(ROOT, 'node_modules/ajv/dist/refs/json-schema-draft-07.json'), 'utf8')) as object;
    ajv.addMetaSchema({ ...draft7, $id: 'https://json-schema.org/draft-07/schema' });
    const validate = ajv.compile(schema);
    expect(validate(compose), JSON.stringify(validate.errors)).toBe(true);
    const broken = structuredClone(compose) as { services: Record<string, unknown> };
    broken.services.api = { ...(broken.services.api as object), restart: ['always'] };
    expect(validate(broken)).toBe(false);
  });

  it('runs the service image as api, ingest, worker and migrate', () => {
    expect(Object.fromEntries(tagwatchServices.map(([n, s]) => [n, s.command]))).toEqual({ migrate: ['migrate'], api: ['api'], ingest: ['ingest'], worker: ['worker'] });
  });

  it('gives every service part the settings platform/config.ts requires, and they load', () => {
    const required = (ConfigSchema.required ?? []).filter((k) => (ConfigSchema.properties as Record<string, { default?: unknown }>)[k]?.default === undefined);
    expect(required).toEqual(expect.arrayContaining(['DATABASE_URL', 'MQTT_URL']));
    for (const [name, s] of tagwatchServices) {
      const env = envOf(s);
      for (const key of required) expect(env[key], `${name}: ${key}`).toBeTruthy();
      // REDIS_URL, or the Sentinels (loadConfig insists on one of them)
      expect(env.REDIS_URL || (env.REDIS_SENTINELS && env.REDIS_MASTER_NAME), `${name}: REDIS_URL`).toBeTruthy();
      expect(env.JWT_JWKS_URL || env.JWT_SECRET, `${name}: JWT_JWKS_URL or JWT_SECRET`).toBeTruthy();
      expect(() => loadConfig(env), name).not.toThrow();
      // the broker admits no anonymous client: every part that connects has an account
      expect(env.MQTT_USERNAME, name).toBe('tagwatch-ingest');
      expect(env.MQTT_PASSWORD, name).toBe(SAMPLE.MQTT_INGEST_PASSWORD);
      // every part runs as the runtime role; only migrate and the worker (retention) get the owner
      expect(env.DATABASE_URL).toMatch(/^postgres:\/\/tagwatch_app:/);
      if (name === 'migrate' || name === 'worker') expect(env.MIGRATION_DATABASE_URL, name).toMatch(/^postgres:\/\/tagwatch_owner:/);
      else expect(env.MIGRATION_DATABASE_URL, name).toBeUndefined();
    }
    expect(envOf(compose.services.api!)).toMatchObject({ MQTT_ADMIN_USERNAME: 'tagwatch-admin', MQTT_ADMIN_PASSWORD: SAMPLE.MQTT_ADMIN_PASSWORD });
    expect(readFileSync(join(ROOT, 'deploy/mosquitto/mosquitto.conf'), 'utf8')).toMatch(/^allow_anonymous false$/m);
    // the account the parts use is the one mosquitto-accounts creates
    expect(envOf(compose.services['mosquitto-accounts']!)).toMatchObject({ MQTT_USERNAME: 'tagwatch-ingest', MQTT_PASSWORD: SAMPLE.MQTT_INGEST_PASSWORD, MQTT_ADMIN_PASSWORD: SAMPLE.MQTT_ADMIN_PASSWORD });
    // the database's init hook gets the role passwords the parts use
    expect(envOf(compose.services.db!)).toMatchObject({ TAGWATCH_OWNER_PASSWORD: SAMPLE.TAGWATCH_OWNER_PASSWORD, TAGWATCH_APP_PASSWORD: SAMPLE.TAGWATCH_APP_PASSWORD });
    // a missing secret stops compose with a message instead of starting with an empty one
    expect(() => envOf(compose.services.api!).DATABASE_URL && interpolate(String(compose.services.api!.environment!.DATABASE_URL), {})).toThrow(/TAGWATCH_APP_PASSWORD is required/);
  });

  it('publishes ports on 127.0.0.1 unless the operator opts in', () => {
    const published = Object.entries(compose.services).flatMap(([n, s]) => (s.ports ?? []).map((p) => [n, String(p)] as const));
    expect(published.length).toBeGreaterThan(0);
    for (const [name, p] of published) {
      expect(interpolate(p).startsWith('127.0.0.1:'), `${name}: ${p}`).toBe(true);
      expect(interpolate(p, { ...SAMPLE, TAGWATCH_BIND: '0.0.0.0', MQTT_BIND: '0.0.0.0' }).startsWith('0.0.0.0:'), `${name}: ${p}`).toBe(true);
    }
  });

  it('builds the image from the packed artifact, non-root, with a health check, on Node 24', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile.match(/^FROM node:(\d+)/gm)).toEqual(['FROM node:24', 'FROM node:24']);
    expect(dockerfile).toMatch(/npm pack/);
    expect(dockerfile).toMatch(/npm install --omit=dev .*tagwatch-\*\.tgz/);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    expect(dockerfile).not.toMatch(/^COPY (src|ingest|alerts|geofence|alcohol)\b/m); // the artifact, not loose sources
  });
});

describe('docker-compose.yml set-up steps, run against the local stack', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('deploy/postgres/10-roles.sh makes a migration role and a runtime role that work as intended', async () => {
    const base = new URL(stack().DATABASE_URL);
    const dbName = `roles_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: `postgres://postgres@${base.host}/postgres` });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${dbName}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });
    const owner = randomBytes(9).toString('hex');
    const app = randomBytes(9).toString('hex');
    // roles of this test's own (roles are cluster-wide: the stack's tagwatch_owner/app stay untouched)
    const suffix = randomBytes(4).toString('hex');
    const [ownerRole, appRole] = [`owner_${suffix}`, `app_${suffix}`];
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`); // it is the owner role's
      await admin.query(`DROP OWNED BY ${ownerRole}, ${appRole} CASCADE`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${appRole}`);
      await admin.query(`DROP ROLE IF EXISTS ${ownerRole}`);
    });
    const run = () =>
      spawnSync('sh', [join(ROOT, 'deploy/postgres/10-roles.sh')], {
        encoding: 'utf8',
        env: { PATH: process.env.PATH, PGHOST: base.hostname, PGPORT: base.port, PGUSER: 'postgres', POSTGRES_DB: dbName, TAGWATCH_OWNER_ROLE: ownerRole, TAGWATCH_APP_ROLE: appRole, TAGWATCH_OWNER_PASSWORD: owner, TAGWATCH_APP_PASSWORD: app },
      });
    const first = run();
    expect(first.status, first.stderr).toBe(0);
    expect(run().status, 'a second run (idempotent)').toBe(0);

    const as = async (role: string, password: string) => {
      const c = new pg.Client({ connectionString: `postgres://${role}:${password}@${base.host}/${dbName}` });
      await c.connect();
      return c;
    };
    const o = await as(ownerRole, owner);
    await migrate(o); // the migrate service, as the migration role
    await o.end();
    const a = await as(appRole, app);
    expect(await pendingMigrations(a)).toEqual([]); // a part starting up as the runtime role: nothing left to apply
    await expect(a.query(`TRUNCATE audit_log`)).rejects.toThrow(/permission denied/);
    await expect(a.query(`DELETE FROM audit_log`)).rejects.toThrow(/permission denied/);
    await a.query(`INSERT INTO devices (id, kind) VALUES ('ROLE-D1', 'gps')`);
    expect((await a.query(`SELECT id FROM devices`)).rows).toEqual([{ id: 'ROLE-D1' }]);
    await expect(a.query(`CREATE TABLE sneaky (x int)`)).rejects.toThrow(/permission denied/);
    await expect(a.query(`DROP TABLE devices`)).rejects.toThrow(/must be owner/);
    await a.end();
  });

  it('deploy/mosquitto/accounts.sh makes the ingest account that subscribes to all telemetry, idempotently', async () => {
    const broker = await startTestBroker({ dynsec: true });
    cleanups.push(() => broker.stop());
    const password = randomBytes(9).toString('hex');
    const run = () =>
      spawnSync('sh', [join(ROOT, 'deploy/mosquitto/accounts.sh')], {
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          MQTT_HOST: '127.0.0.1',
          MQTT_PORT: String(broker.port),
          MQTT_ADMIN_USERNAME: broker.credentials.MQTT_ADMIN_USERNAME,
          MQTT_ADMIN_PASSWORD: broker.credentials.MQTT_ADMIN_PASSWORD,
          MQTT_USERNAME: 'tagwatch-ingest',
          MQTT_PASSWORD: password,
        },
        timeout: 60_000,
      });
    const first = run();
    expect(first.status, first.stderr + first.stdout).toBe(0);
    expect(run().status, 'a second run (idempotent)').toBe(0);

    const c = await mqtt.connectAsync(broker.url, { username: 'tagwatch-ingest', password, clientId: 'compose-ingest', reconnectPeriod: 0 });
    const granted = await c.subscribeAsync(['$share/tagwatch/tags/v1/+/+', 'tags/v1/#'], { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    await expect(c.subscribeAsync('elsewhere/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await c.endAsync();
    // a wrong admin password fails the step instead of passing quietly
    const bad = spawnSync('sh', [join(ROOT, 'deploy/mosquitto/accounts.sh')], {
      encoding: 'utf8',
      timeout: 60_000,
      env: { PATH: process.env.PATH, MQTT_HOST: '127.0.0.1', MQTT_PORT: String(broker.port), MQTT_ADMIN_USERNAME: 'x', MQTT_ADMIN_PASSWORD: 'wrong', MQTT_USERNAME: 'u', MQTT_PASSWORD: 'p', ACCOUNTS_WAIT_S: '2' },
    });
    expect(bad.status).not.toBe(0);
  });
});
