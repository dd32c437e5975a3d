import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { authHeader, createTestDatabase, startTestService, stack, testConfig, waitFor, type TestService } from '../support/env.js';
import { startReceiver } from '../support/sse.js';
import { raiseAlert } from '../../alerts/alerts.repo.js';
import { withTransaction } from '../../platform/db.js';
import { dispatchEmails, EMAIL_QUEUE, type EmailJob } from '../../alerts/email.js';
import { decryptSecret, parseSecretsKey, prepareWebhookSecrets } from '../../alerts/secrets.js';
import { createRedis } from '../../platform/redis.js';

/**
 * Subscriptions do not outlive their owner (finding 11 of issue 9): webhooks and alert-email
 * subscriptions expire and are renewed by their owner, admins list and revoke them (audited),
 * each user holds at most WEBHOOKS_PER_USER webhooks, webhook secrets are encrypted at rest
 * with SECRETS_KEY, and every webhook delivery is in the audit log. Real PostgreSQL, Redis,
 * the service's worker part and a loopback receiver.
 */

const SECRET = 'subscription-test-secret-0123456789';
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let svc: TestService;
let receiver: Awaited<ReturnType<typeof startReceiver>>;
let subjects = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  svc = await startTestService(testConfig({ DATABASE_URL: db.url, WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOKS_PER_USER: '3', SUBSCRIPTION_DAYS: '30' }), { worker: true });
  receiver = await startReceiver(SECRET);
});

afterAll(async () => {
  await receiver?.close();
  await svc?.stop();
  await db?.drop();
});

const call = async (role: Parameters<typeof authHeader>[0], sub: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  svc.app.inject({ method, url, headers: await authHeader(role, sub), ...(payload ? { payload } : {}) });

/** Raises a strap tamper for a new subject managed by `manager`; returns the subject id and the alert id. */
async function raise(manager: string): Promise<{ subject: string; alert: string }> {
  const subject = `SUB-${++subjects}`;
  await db.pool.query(`INSERT INTO subjects (id, display_name, cohort, rag, offender_manager_ids) VALUES ($1, $1, 'fixed', 'red', ARRAY[$2])`, [subject, manager]);
  await withTransaction(db.pool, (tx) => raiseAlert(tx, { type: 'strap_tamper', subjectId: subject, deviceId: null, zoneId: null, startedAt: new Date(), late: false, evidence: [] }));
  const a = await db.pool.query<{ id: string }>(`SELECT id::text FROM alerts WHERE subject_id = $1`, [subject]);
  return { subject, alert: a.rows[0]!.id };
}

/** Waits until the webhook dispatcher has passed the alert's `raised` event. */
async function dispatchedPast(alert: string) {
  const e = await db.pool.query<{ id: string }>(`SELECT id::text FROM alert_events WHERE alert_id = $1 ORDER BY id LIMIT 1`, [alert]);
  await waitFor(async () => {
    const c = await db.pool.query<{ event_id: string }>(`SELECT event_id::text FROM delivery_cursor`);
    return BigInt(c.rows[0]!.event_id) >= BigInt(e.rows[0]!.id);
  }, 'the dispatcher past the event');
}

const deliveredTo = (alertId: string) => receiver.received.filter((r) => (r.json as { alert: { id: string } }).alert.id === alertId);

describe('webhook secrets at rest', () => {
  it('stores the secret encrypted (never the plaintext), and deliveries are still signed with it and audited', async () => {
    const created = await call('offender_manager', 'om-enc', 'POST', '/v1/webhooks', { url: receiver.url, secret: SECRET });
    expect(created.statusCode, created.body).toBe(201);
    const id = created.json().id as string;
    const row = await db.pool.query(`SELECT w.*, w::text AS whole FROM webhooks w WHERE id = $1`, [id]);
    expect(row.rows[0].whole).not.toContain(SECRET);
    expect(row.rows[0].secret).toBeNull();
    expect(decryptSecret(parseSecretsKey(stack().SECRETS_KEY)!, id, row.rows[0].secret_enc)).toBe(SECRET);

    const { subject, alert } = await raise('om-enc');
    const got = await waitFor(() => deliveredTo(alert).length > 0 && deliveredTo(alert), 'the delivery');
    expect(got[0]!.validSignature).toBe(true);
    // the delivery of personal data is in the audit log: the owner's receiver got this subject's alert
    const rows = await waitFor(async () => {
      const r = await db.pool.query(`SELECT actor, role, subject_id, detail FROM audit_log WHERE action = 'webhook.deliver' AND subject_id = $1`, [subject]);
      return r.rows.length > 0 && r.rows;
    }, 'the audit row of the delivery');
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: 'om-enc', role: 'offender_manager', subject_id: subject, detail: { by: 'system:webhook', webhook_id: id, url: receiver.url, alert_ids: [alert] } });
  });

  it('encrypts plaintext secrets left by an older version at start-up, and refuses to start without a key while webhooks exist', async () => {
    const current = await call('offender_manager', 'om-old', 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/new', secret: SECRET });
    expect(current.statusCode).toBe(201);
    const id = randomUUID();
    await db.pool.query(`INSERT INTO webhooks (id, owner_id, owner_role, url, secret) VALUES ($1, 'om-old', 'offender_manager', 'http://127.0.0.1:9/old', 'an-old-plaintext-secret')`, [id]);
    await expect(prepareWebhookSecrets(db.pool, null)).rejects.toThrow(/^config: SECRETS_KEY is missing: \d+ webhooks are registered/);
    await expect(prepareWebhookSecrets(db.pool, randomBytes(32))).rejects.toThrow(/SECRETS_KEY does not open the stored webhook secrets/);
    const key = parseSecretsKey(stack().SECRETS_KEY)!;
    expect(await prepareWebhookSecrets(db.pool, key)).toBe(1);
    const row = await db.pool.query(`SELECT secret, secret_enc FROM webhooks WHERE id = $1`, [id]);
    expect(row.rows[0].secret).toBeNull();
    expect(decryptSecret(key, id, row.rows[0].secret_enc)).toBe('an-old-plaintext-secret');
    expect(await prepareWebhookSecrets(db.pool, key)).toBe(0);
    await db.pool.query(`UPDATE webhooks SET active = false WHERE owner_id = 'om-old'`);
  });
});

describe('webhook subscriptions expire and are renewed by their owner', () => {
  it('an expired webhook delivers nothing; after its owner renews it, it delivers again', async () => {
    const created = await call('offender_manager', 'om-exp', 'POST', '/v1/webhooks', { url: receiver.url, secret: SECRET });
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    const expires = new Date(created.json().expires_at).getTime();
    expect(Math.abs(expires - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000); // SUBSCRIPTION_DAYS=30

    // 30 days later
    await db.pool.query(`UPDATE webhooks SET expires_at = now() - interval '1 second' WHERE id = $1`, [id]);
    const listed = await call('offender_manager', 'om-exp', 'GET', '/v1/webhooks');
    expect(listed.json().items).toEqual([expect.objectContaining({ id, status: 'expired' })]);
    const missed = await raise('om-exp');
    await dispatchedPast(missed.alert);

    expect((await call('offender_manager', 'om-other', 'POST', `/v1/webhooks/${id}/renew`)).statusCode).toBe(404); // only its owner
    const renewed = await call('offender_manager', 'om-exp', 'POST', `/v1/webhooks/${id}/renew`);
    expect(renewed.statusCode, renewed.body).toBe(200);
    expect(new Date(renewed.json().expires_at).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    const after = await raise('om-exp');
    await waitFor(() => deliveredTo(after.alert).length > 0, 'the delivery after renewal');
    // the feed is dispatched in order: the alert raised while expired was passed over for good
    expect(deliveredTo(missed.alert)).toEqual([]);
    expect((await db.pool.query(`SELECT count(*)::int n FROM webhook_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1`, [missed.alert])).rows[0].n).toBe(0);
    const audited = await db.pool.query(`SELECT count(*)::int n FROM audit_log WHERE action = 'webhook.renew' AND actor = 'om-exp'`);
    expect(audited.rows[0].n).toBe(1);
  });
});

describe('a webhook that expires with deliveries pending', () => {
  it('gives them up at their next retry without sending them', async () => {
    const failing = await startReceiver(SECRET);
    try {
      failing.setStatus(503);
      const id = (await call('offender_manager', 'om-pend', 'POST', '/v1/webhooks', { url: failing.url, secret: SECRET })).json().id as string;
      await raise('om-pend');
      await waitFor(() => failing.received.length >= 1, 'the first (failed) attempt');
      await db.pool.query(`UPDATE webhooks SET expires_at = now() WHERE id = $1`, [id]); // expires before the retry (backoff 1 s)
      const sentBefore = failing.received.length;
      await waitFor(async () => {
        const r = await db.pool.query(`SELECT status FROM webhook_deliveries WHERE webhook_id = $1`, [id]);
        return r.rows[0]?.status === 'failed';
      }, 'the pending delivery given up', 15_000);
      expect(failing.received.length).toBe(sentBefore);
      const attempts = await db.pool.query(`SELECT count(*)::int n FROM webhook_attempts t JOIN webhook_deliveries d ON d.id = t.delivery_id WHERE d.webhook_id = $1`, [id]);
      expect(attempts.rows[0].n).toBe(sentBefore);
    } finally {
      await failing.close();
    }
  });
});

describe('webhooks per user', () => {
  it('refuses a webhook beyond WEBHOOKS_PER_USER with 409 and a clear message; deleting one makes room', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call('supervisor', 'sup-cap', 'POST', '/v1/webhooks', { url: `http://127.0.0.1:9/hook${i}`, secret: SECRET });
      expect(r.statusCode, r.body).toBe(201);
      ids.push(r.json().id);
    }
    const over = await call('supervisor', 'sup-cap', 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook3', secret: SECRET });
    expect(over.statusCode).toBe(409);
    expect(over.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(over.json().detail).toBe('at most 3 webhooks per user (WEBHOOKS_PER_USER); you have 3: delete one first');
    expect((await call('supervisor', 'sup-cap-2', 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/x', secret: SECRET })).statusCode).toBe(201); // per user
    expect((await call('supervisor', 'sup-cap', 'DELETE', `/v1/webhooks/${ids[0]}`)).statusCode).toBe(204);
    expect((await call('supervisor', 'sup-cap', 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook3', secret: SECRET })).statusCode).toBe(201);
  });
});

describe('admins list and revoke subscriptions', () => {
  it('an admin lists every webhook with its owner and revokes any (audited); the owner sees only their own and cannot renew a revoked one', async () => {
    const a = (await call('offender_manager', 'om-adm', 'POST', '/v1/webhooks', { url: receiver.url, secret: SECRET })).json().id as string;
    const b = (await call('supervisor', 'sup-adm', 'POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/b', secret: SECRET })).json().id as string;
    const own = await call('offender_manager', 'om-adm', 'GET', '/v1/webhooks');
    expect(own.json().items.map((w: { id: string }) => w.id)).toEqual([a]);
    expect(JSON.stringify(own.json())).not.toMatch(/secret/);

    const all = await call('admin', 'admin-1', 'GET', '/v1/webhooks');
    expect(all.statusCode).toBe(200);
    const items = all.json().items as Array<{ id: string; owner_id: string; owner_role: string; status: string }>;
    expect(items).toEqual(expect.arrayContaining([expect.objectContaining({ id: a, owner_id: 'om-adm', owner_role: 'offender_manager', status: 'active' }), expect.objectContaining({ id: b, owner_id: 'sup-adm', status: 'active' })]));
    expect(JSON.stringify(all.json())).not.toContain(SECRET);

    expect((await call('admin', 'admin-1', 'DELETE', `/v1/webhooks/${a}`)).statusCode).toBe(204);
    const revoked = (await call('admin', 'admin-1', 'GET', '/v1/webhooks')).json().items.find((w: { id: string }) => w.id === a);
    expect(revoked).toMatchObject({ status: 'revoked', revoked_by: 'admin-1' });
    expect((await call('offender_manager', 'om-adm', 'POST', `/v1/webhooks/${a}/renew`)).statusCode).toBe(404);
    const audit = await db.pool.query(`SELECT actor, action, detail FROM audit_log WHERE action IN ('webhook.revoke', 'webhooks.read') ORDER BY id`);
    expect(audit.rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ actor: 'admin-1', action: 'webhooks.read' }),
        expect.objectContaining({ actor: 'admin-1', action: 'webhook.revoke', detail: { webhook_id: a, owner_id: 'om-adm' } }),
      ]),
    );
    // a revoked webhook is sent nothing (a new one of the same owner is)
    const control = (await call('offender_manager', 'om-adm', 'POST', '/v1/webhooks', { url: receiver.url, secret: SECRET })).json().id as string;
    const next = await raise('om-adm');
    await waitFor(() => deliveredTo(next.alert).length > 0, 'the delivery to the new webhook');
    expect((await db.pool.query(`SELECT webhook_id::text FROM webhook_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1 AND d.webhook_id = ANY($2::uuid[])`, [next.alert, [a, control]])).rows).toEqual([{ webhook_id: control }]);
  });
});

describe('alert-email subscriptions', () => {
  it('expire (nothing is mailed), are renewed by their owner, and are listed and revoked by admins (audited)', async () => {
    const set = await call('offender_manager', 'om-mail', 'PUT', '/v1/me/notifications', { email: 'om-mail@example.org' });
    expect(set.statusCode).toBe(200);
    expect(Math.abs(new Date(set.json().expires_at).getTime() - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);

    const redis = createRedis({ REDIS_URL: stack().REDIS_URL });
    const queue = new Queue<EmailJob>(EMAIL_QUEUE, { connection: redis, prefix: `t${randomBytes(5).toString('hex')}` });
    try {
      const rowsFor = async (alert: string) =>
        (await db.pool.query(`SELECT count(*)::int n FROM email_deliveries d JOIN alert_events e ON e.id = d.event_id WHERE e.alert_id = $1 AND d.user_id = 'om-mail'`, [alert])).rows[0].n;
      await db.pool.query(`UPDATE email_cursor SET event_id = (SELECT coalesce(max(id), 0) FROM alert_events)`);
      const state = { reader: null };
      const live = await raise('om-mail');
      while ((await dispatchEmails(db.pool, queue, Date.now(), state)) > 0);
      expect(await rowsFor(live.alert)).toBe(1);

      await db.pool.query(`UPDATE notification_contacts SET expires_at = now() - interval '1 second' WHERE user_id = 'om-mail'`);
      const missed = await raise('om-mail');
      while ((await dispatchEmails(db.pool, queue, Date.now(), state)) > 0);
      expect(await rowsFor(missed.alert)).toBe(0);
      expect((await call('offender_manager', 'om-mail', 'GET', '/v1/me/notifications')).json()).toMatchObject({ email: 'om-mail@example.org', expired: true });

      const renewed = await call('offender_manager', 'om-mail', 'POST', '/v1/me/notifications/renew');
      expect(renewed.statusCode).toBe(200);
      expect((await call('supervisor', 'sup-nomail', 'POST', '/v1/me/notifications/renew')).statusCode).toBe(404);
      const again = await raise('om-mail');
      while ((await dispatchEmails(db.pool, queue, Date.now(), state)) > 0);
      expect(await rowsFor(again.alert)).toBe(1);

      const list = await call('admin', 'admin-2', 'GET', '/v1/notification-subscriptions');
      expect(list.statusCode).toBe(200);
      expect(list.json().items).toEqual(expect.arrayContaining([expect.objectContaining({ user_id: 'om-mail', role: 'offender_manager', email: 'om-mail@example.org', expired: false })]));
      expect((await call('admin', 'admin-2', 'DELETE', '/v1/notification-subscriptions/om-mail')).statusCode).toBe(204);
      expect((await call('admin', 'admin-2', 'DELETE', '/v1/notification-subscriptions/om-mail')).statusCode).toBe(404);
      expect((await call('offender_manager', 'om-mail', 'GET', '/v1/me/notifications')).json().email).toBeNull();
      const revokedAlert = await raise('om-mail');
      while ((await dispatchEmails(db.pool, queue, Date.now(), state)) > 0);
      expect(await rowsFor(revokedAlert.alert)).toBe(0);
      const audit = await db.pool.query(`SELECT action, detail FROM audit_log WHERE actor = 'admin-2' ORDER BY id`);
      expect(audit.rows).toEqual([
        { action: 'notifications.read', detail: { count: 1 } },
        { action: 'notifications.revoke', detail: { user_id: 'om-mail' } },
      ]);
    } finally {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      redis.disconnect();
    }
  });
});

describe('OpenAPI', () => {
  it('documents the subscription routes with an operationId, a summary and problem answers', async () => {
    const doc = (await svc.app.inject({ method: 'GET', url: '/docs/json' })).json();
    const ops: Array<[string, string, string]> = [
      ['/v1/webhooks', 'post', '409'],
      ['/v1/webhooks', 'get', '403'],
      ['/v1/webhooks/{id}/renew', 'post', '404'],
      ['/v1/webhooks/{id}', 'delete', '404'],
      ['/v1/me/notifications/renew', 'post', '404'],
      ['/v1/notification-subscriptions', 'get', '403'],
      ['/v1/notification-subscriptions/{id}', 'delete', '404'],
    ];
    for (const [path, method, code] of ops) {
      const op = doc.paths[path]?.[method];
      expect(op, `${method} ${path}`).toBeDefined();
      expect(op.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
      expect(op.summary).toBeTruthy();
      expect(op.responses[code].content['application/problem+json'].schema.$ref, `${method} ${path} ${code}`).toBe('#/components/schemas/Problem');
    }
  });
});
