import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { SMTPServer } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { authHeader, createTestDatabase, heldTransaction, startTestBroker, startTestService, testConfig, waitFor, type TestService } from '../support/env.js';
import { tickHealth } from '../../health/health.job.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { withTransaction } from '../../platform/db.js';
import { Queue } from 'bullmq';
import { EMAIL_QUEUE, requeuePendingEmails } from '../../alerts/email.js';

/** Alert email through a real SMTP server (smtp-server, the server half of nodemailer's project). */

interface Mail {
  from: string;
  to: string[];
  subject: string;
  messageId: string;
  /** the decoded text body */
  text: string;
}

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let broker: Awaited<ReturnType<typeof startTestBroker>>;
let svc: TestService;
let pub: MqttClient;
let smtp: SMTPServer;
const mails: Mail[] = [];
let refuse = 0; // the next `refuse` messages get a temporary failure (451)
const logins: string[] = [];

async function api(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object, who: Parameters<typeof authHeader> = ['admin']) {
  return svc.app.inject({ method, url, headers: await authHeader(...who), ...(payload ? { payload } : {}) });
}

async function fit(subject: string, device: string, managers: string[]) {
  expect((await api('POST', '/v1/devices', { id: device, kind: 'combined' })).statusCode).toBe(201);
  expect((await api('POST', '/v1/subjects', { id: subject, display_name: `Person ${subject}`, cohort: 'free', rag: 'red', offender_manager_ids: managers })).statusCode).toBe(201);
  expect((await api('POST', `/v1/subjects/${subject}/assignments`, { device_id: device, start: new Date(Date.now() - 86400_000).toISOString() })).statusCode).toBe(201);
}

const status = (device: string, body: object) =>
  pub.publishAsync(`tags/v1/${device}/status`, JSON.stringify({ ts: new Date().toISOString(), battery_pct: 80, lat: 52.95, lon: -1.15, ...body }), { qos: 1 });


beforeAll(async () => {
  smtp = new SMTPServer({
    authOptional: false,
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    onAuth(auth, _session, cb) {
      logins.push(auth.username ?? '');
      if (auth.username === 'mailer' && auth.password === 'mail-pass-123') return cb(null, { user: 'mailer' });
      return cb(new Error('bad credentials'));
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (refuse > 0) {
          refuse -= 1;
          return cb(Object.assign(new Error('try again later'), { responseCode: 451 }));
        }
        simpleParser(Buffer.concat(chunks)).then((m) => {
          const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
          mails.push({ from, to: session.envelope.rcptTo.map((r) => r.address), subject: m.subject ?? '', messageId: m.messageId ?? '', text: m.text ?? '' });
          cb();
        }, cb);
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const port = (smtp.server.address() as AddressInfo).port;
  db = await createTestDatabase();
  broker = await startTestBroker();
  svc = await startTestService(
    testConfig({
      DATABASE_URL: db.url,
      MQTT_URL: broker.url,
      SMTP_URL: `smtp://mailer:mail-pass-123@127.0.0.1:${port}`,
      EMAIL_FROM: 'tagwatch alerts <alerts@probation.example>',
      CONSOLE_URL: 'https://console.probation.example/',
    }),
    { ingest: true, worker: true },
  );
  pub = await mqtt.connectAsync(broker.url, { clientId: 'email-test-publisher' });
});

afterAll(async () => {
  await pub?.endAsync();
  await svc?.stop();
  broker?.stop();
  await db?.drop();
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
});

describe('alert email over SMTP', () => {
  it('lets managers and supervisors set, read and remove their own address, and refuses a bad one', async () => {
    const bad = await api('PUT', '/v1/me/notifications', { email: 'not an address' }, ['offender_manager', 'om-x']);
    expect(bad.statusCode).toBe(400);
    expect(bad.headers['content-type']).toContain('application/problem+json');
    expect((await api('PUT', '/v1/me/notifications', { email: 'x@example.org' }, ['analyst', 'an-1'])).statusCode).toBe(403);
    const set = await api('PUT', '/v1/me/notifications', { email: 'om-x@probation.example' }, ['offender_manager', 'om-x']);
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ email: 'om-x@probation.example', email_enabled: true });
    expect((await api('GET', '/v1/me/notifications', undefined, ['offender_manager', 'om-x'])).json()).toMatchObject({ email: 'om-x@probation.example' });
    expect((await api('GET', '/v1/me/notifications', undefined, ['offender_manager', 'om-y'])).json()).toMatchObject({ email: null });
    expect((await api('DELETE', '/v1/me/notifications', undefined, ['offender_manager', 'om-x'])).statusCode).toBe(204);
    expect((await api('DELETE', '/v1/me/notifications', undefined, ['offender_manager', 'om-x'])).statusCode).toBe(404);
  });

  it('mails a raised alert to the subject’s managers only, with no location, and the escalation to supervisors once', async () => {
    await api('PUT', '/v1/me/notifications', { email: 'om-1@probation.example' }, ['offender_manager', 'om-1']);
    await api('PUT', '/v1/me/notifications', { email: 'om-2@probation.example' }, ['offender_manager', 'om-2']);
    await api('PUT', '/v1/me/notifications', { email: 'duty@probation.example' }, ['supervisor', 'sup-1']);
    await fit('E-S1', 'E-D1', ['om-1']);
    await status('E-D1', { strap: 'open', event: 'strap_tamper' });
    const alert = await waitFor(async () => (await db.pool.query(`SELECT id FROM alerts WHERE subject_id = 'E-S1' AND type = 'strap_tamper'`)).rows[0], 'the strap alert');
    const mail = await waitFor(() => mails.find((m) => m.text.includes(alert.id)), 'the email to om-1');
    expect(mail.to).toEqual(['om-1@probation.example']);
    expect(mail.from).toBe('alerts@probation.example');
    expect(mail.subject).toBe('[tagwatch] HIGH strap_tamper raised (subject E-S1)');
    expect(mail.messageId).toMatch(/^<alert-event-\d+\.\d+@tagwatch>$/);
    expect(mail.text).toContain(`https://console.probation.example/alerts/${alert.id}`);
    expect(mail.text + mail.subject).not.toMatch(/52\.95|-1\.15|Person E-S1/); // no location, no name
    expect(logins.every((u) => u === 'mailer')).toBe(true);

    // escalation after 15 minutes unacknowledged: to the supervisor, once
    const deps = { pool: svc.rt.pool, logger: svc.rt.logger, metrics: svc.rt.metrics };
    expect((await tickHealth(deps, Date.now() + 16 * 60_000, 15 * 60_000)).escalated).toEqual([alert.id]);
    await tickHealth(deps, Date.now() + 17 * 60_000, 15 * 60_000);
    const esc = await waitFor(() => mails.find((m) => m.to.includes('duty@probation.example')), 'the escalation email');
    expect(esc.subject).toBe('[tagwatch] HIGH strap_tamper ESCALATED: not acknowledged (subject E-S1)');
    await new Promise((r) => setTimeout(r, 1500));
    expect(mails.filter((m) => m.text.includes(alert.id)).map((m) => m.to[0]).sort()).toEqual(['duty@probation.example', 'om-1@probation.example']);
    const rows = await db.pool.query(`SELECT d.user_id, d.status, d.attempts FROM email_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1 ORDER BY d.id`, [alert.id]);
    expect(rows.rows).toEqual([
      { user_id: 'om-1', status: 'delivered', attempts: 1 },
      { user_id: 'sup-1', status: 'delivered', attempts: 1 },
    ]);
  });

  it('mails an alert whose transaction committed after a later one', async () => {
    await fit('E-S3', 'E-D3', ['om-1']);
    const slow = await heldTransaction(db.pool);
    try {
      const early = await raiseAlert(slow.tx, { type: 'case_tamper', subjectId: 'E-S3', deviceId: 'E-D3', zoneId: null, startedAt: new Date(), late: false, evidence: [] });
      const later = await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'low_battery', subjectId: 'E-S3', deviceId: 'E-D3', zoneId: null, startedAt: new Date(), late: false, evidence: [] }));
      const id = (r: typeof early) => (r as { alert: { id: string } }).alert.id;
      await waitFor(() => mails.find((m) => m.text.includes(id(later))), 'the later alert’s email');
      await new Promise((r) => setTimeout(r, 2500)); // a dispatch round or two passes the gap
      await slow.commit();
      await waitFor(() => mails.find((m) => m.text.includes(id(early))), 'the earlier alert’s email');
    } finally {
      await slow.commit();
    }
  });

  it('retries a message the server refuses for now, and sends it once it accepts', async () => {
    refuse = 1;
    await fit('E-S2', 'E-D2', ['om-2']);
    await status('E-D2', { case: 'open' });
    const alert = await waitFor(async () => (await db.pool.query(`SELECT id FROM alerts WHERE subject_id = 'E-S2' AND type = 'case_tamper'`)).rows[0], 'the case alert');
    const mail = await waitFor(() => mails.find((m) => m.text.includes(alert.id)), 'the email after a retry', 20_000);
    expect(mail.to).toEqual(['om-2@probation.example']);
    // the server accepted it before the dispatcher records the delivery: wait for the record
    const delivered = `SELECT d.status, d.attempts, d.last_error FROM email_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1`;
    const rows = await waitFor(async () => {
      const r = (await db.pool.query(delivered, [alert.id])).rows;
      return r.some((x) => x.status !== 'pending') ? r : null;
    }, 'the delivery recorded');
    expect(rows).toEqual([{ status: 'delivered', attempts: 2, last_error: null }]);
    const counted = (await svc.rt.metrics.deliveryAttempts.get()).values;
    const n = (outcome: string) => counted.find((v) => v.labels.channel === 'email' && v.labels.outcome === outcome)?.value ?? 0;
    expect(n('retry')).toBeGreaterThanOrEqual(1);
    expect(n('delivered')).toBeGreaterThanOrEqual(4);
  });

  it('sends pending email after Redis lost its jobs', async () => {
    refuse = 1000; // the mail server refuses for a while: the email stays pending
    await fit('E-S4', 'E-D4', ['om-2']);
    await status('E-D4', { strap: 'open' });
    const alert = await waitFor(async () => (await db.pool.query(`SELECT id FROM alerts WHERE subject_id = 'E-S4' AND type = 'strap_tamper'`)).rows[0], 'the strap alert');
    const pending = `SELECT d.attempts FROM email_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1 AND d.status = 'pending' AND d.attempts >= 1`;
    await waitFor(async () => (await db.pool.query(pending, [alert.id])).rowCount, 'a refused attempt');
    const q = new Queue(EMAIL_QUEUE, { connection: svc.rt.redis, prefix: svc.rt.config.QUEUE_PREFIX });
    await q.obliterate({ force: true }); // as if Redis restarted empty
    refuse = 0;
    expect(await requeuePendingEmails(svc.rt.pool, q)).toBeGreaterThanOrEqual(1);
    const mail = await waitFor(() => mails.find((m) => m.text.includes(alert.id)), 'the email after requeue', 20_000);
    expect(mail.to).toEqual(['om-2@probation.example']);
    await q.close();
  });
});
