import nodemailer, { type Transporter } from 'nodemailer';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { feedAfter, FeedReader, type FeedEvent } from './feed.js';
import { backoffMs, RETRY_FOR_MS } from './webhooks.js';

/**
 * Alert email through SMTP (nodemailer), off unless SMTP_URL is set. Who gets what:
 * - an offender manager who registered an address (PUT /v1/me/notifications) gets each alert
 *   `raised` on their caseload;
 * - a supervisor who registered an address gets each `escalated` alert.
 * Acknowledgements, resolutions and recurrences are not mailed (the console and the stream show
 * them). Email is not a secure channel: a message names the alert type, severity, the subject's
 * id, the device, times and a link, never a location, a name or the evidence.
 *
 * As webhooks: each (user, feed event) is a row in email_deliveries before it is a BullMQ job,
 * retried with backoff for 24 hours, enqueued again every minute while pending (a Redis restart
 * loses nothing). The Message-ID is derived from the row, so a resend after a crash is
 * recognisable as the same message.
 */

export const EMAIL_QUEUE = 'emails';
/** Feed events older than this when the dispatcher reaches them are not mailed (email was off). */
export const EMAIL_MAX_AGE_MS = 3600_000;
const SEND_TIMEOUT_MS = 15_000;

export interface EmailJob {
  deliveryId: string;
}

export interface EmailSettings {
  smtpUrl: string;
  from: string;
  /** base URL of the web console for links, if any */
  consoleUrl?: string | undefined;
}

export function createTransport(smtpUrl: string): Transporter {
  const u = new URL(smtpUrl);
  return nodemailer.createTransport({
    host: u.hostname,
    port: u.port ? Number(u.port) : u.protocol === 'smtps:' ? 465 : 587,
    secure: u.protocol === 'smtps:',
    auth: u.username ? { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } : undefined,
    // STARTTLS when the server offers it; `?tls=required` insists on it
    requireTLS: u.searchParams.get('tls') === 'required',
    connectionTimeout: SEND_TIMEOUT_MS,
    greetingTimeout: SEND_TIMEOUT_MS,
    socketTimeout: SEND_TIMEOUT_MS,
    pool: true,
    maxConnections: 3,
  });
}

/** Who is mailed for an event: the subject's managers with an address for `raised`, supervisors for `escalated`. */
export function recipientsFor(e: Pick<FeedEvent, 'action' | 'audience' | 'manager_ids'>, contacts: Array<{ user_id: string; role: string; email: string }>) {
  if (e.action === 'raised' && e.audience === 'caseload') return contacts.filter((c) => c.role === 'offender_manager' && e.manager_ids.includes(c.user_id));
  if (e.action === 'escalated') return contacts.filter((c) => c.role === 'supervisor');
  return [];
}

/**
 * Turns new feed events into email rows (and jobs). The durable cursor and the rows move in one
 * transaction; the cursor is the reader's safe point, so an event committed after a later one
 * (see FeedReader) is still mailed. `reader` lives in the process; after a restart it starts
 * again from the durable cursor (rows are unique per (user, event), so nothing is mailed twice).
 */
export async function dispatchEmails(pool: Pool, queue: Queue<EmailJob>, now: number, state: { reader: FeedReader | null } = { reader: null }): Promise<number> {
  const client = await pool.connect();
  let created: string[] = [];
  let processed = 0;
  try {
    await client.query('BEGIN');
    const cur = await client.query<{ event_id: string }>(`SELECT event_id::text FROM email_cursor FOR UPDATE`);
    const cursor = BigInt(cur.rows[0]!.event_id);
    // another process may have moved the durable cursor past this reader's point
    const reader = state.reader && state.reader.safeId >= cursor ? state.reader : new FeedReader(cursor);
    const { events } = await reader.read(client, 500, now);
    if (events.length) {
      const contacts = await client.query<{ user_id: string; role: string; email: string }>(`SELECT user_id, role, email FROM notification_contacts`);
      const rows: Array<{ user_id: string; email: string; event_id: string }> = [];
      for (const e of events) {
        if (now - new Date(e.at).getTime() > EMAIL_MAX_AGE_MS) continue;
        for (const c of recipientsFor(e, contacts.rows)) rows.push({ user_id: c.user_id, email: c.email, event_id: e.id });
      }
      if (rows.length) {
        const ins = await client.query<{ id: string }>(
          `INSERT INTO email_deliveries (user_id, email, event_id)
           SELECT r.user_id, r.email, r.event_id::bigint FROM jsonb_to_recordset($1::jsonb) AS r(user_id text, email text, event_id text)
           ON CONFLICT DO NOTHING RETURNING id::text`,
          [JSON.stringify(rows)],
        );
        created = ins.rows.map((r) => r.id);
      }
    }
    if (reader.safeId !== cursor) await client.query(`UPDATE email_cursor SET event_id = $1`, [String(reader.safeId)]);
    processed = events.length;
    await client.query('COMMIT');
    state.reader = reader;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    state.reader = null; // read again from the durable cursor
    throw err;
  } finally {
    client.release();
  }
  await enqueueEmails(queue, created);
  return processed;
}

export async function enqueueEmails(queue: Queue<EmailJob>, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await queue.addBulk(
    ids.map((deliveryId) => ({
      name: 'email',
      data: { deliveryId },
      opts: { jobId: `e${deliveryId}`, attempts: 1000, backoff: { type: 'custom' }, removeOnComplete: true, removeOnFail: true },
    })),
  );
}

/** Enqueues every pending email again (after a Redis restart, or a crash between commit and enqueue). */
export async function requeuePendingEmails(pool: Pool, queue: Queue<EmailJob>): Promise<number> {
  const r = await pool.query<{ id: string }>(`SELECT id::text FROM email_deliveries WHERE status = 'pending' ORDER BY email_deliveries.id LIMIT 10000`);
  const waiting = new Set((await queue.getJobs(['waiting', 'delayed', 'active', 'prioritized'])).map((j) => j.id));
  const missing = r.rows.map((x) => x.id).filter((id) => !waiting.has(`e${id}`));
  await enqueueEmails(queue, missing);
  return missing.length;
}

/** The message for one feed event: no location, no name, no evidence. */
export function composeEmail(event: FeedEvent, consoleUrl?: string) {
  const a = event.alert as { id: string; type: string; severity: string; subject_id: string; device_id: string | null; zone_id: string | null; started_at: string; raised_at: string; late: boolean };
  const what = event.action === 'escalated' ? 'ESCALATED: not acknowledged' : 'raised';
  const subject = `[tagwatch] ${a.severity.toUpperCase()} ${a.type} ${what} (subject ${a.subject_id})`;
  const lines = [
    `Alert ${a.type} (${a.severity}) ${what}.`,
    '',
    `subject:    ${a.subject_id}`,
    `device:     ${a.device_id ?? '-'}`,
    ...(a.zone_id ? [`zone:       ${a.zone_id}`] : []),
    `started at: ${new Date(a.started_at).toISOString()} (device time of the first evidence)`,
    `raised at:  ${new Date(a.raised_at).toISOString()}${a.late ? ' (late: the evidence arrived after a delay)' : ''}`,
    `alert id:   ${a.id}`,
    '',
    consoleUrl ? `Open it: ${consoleUrl.replace(/\/$/, '')}/alerts/${a.id}` : 'Open it in the tagwatch console or GET /v1/alerts/' + a.id + '.',
    '',
    'This message carries no location or evidence; sign in to see them.',
  ];
  return { subject, text: lines.join('\n') };
}

/** One send; throws to be retried. */
export async function sendEmail(pool: Pool, transport: Transporter, settings: EmailSettings, deliveryId: string, now: number, metrics?: Metrics): Promise<'delivered' | 'gone'> {
  const d = await pool.query<{ status: string; created_at: Date; email: string; event_id: string }>(
    `SELECT status, created_at, email, event_id::text FROM email_deliveries WHERE id = $1`,
    [deliveryId],
  );
  const row = d.rows[0];
  if (!row || row.status !== 'pending') return 'gone';
  const [event] = await feedAfter(pool, String(BigInt(row.event_id) - 1n), 1, null);
  if (!event || event.id !== row.event_id) return 'gone';
  const { subject, text } = composeEmail(event, settings.consoleUrl);
  let error: string | null = null;
  const t0 = Date.now();
  try {
    await transport.sendMail({
      from: settings.from,
      to: row.email,
      subject,
      text,
      messageId: `<alert-event-${event.id}.${deliveryId}@tagwatch>`,
      headers: { 'X-Tagwatch-Delivery': event.id, 'X-Tagwatch-Event': event.action },
    });
  } catch (err) {
    error = (err as Error).message.slice(0, 500);
  }
  const ok = error === null;
  const expired = !ok && now - row.created_at.getTime() >= RETRY_FOR_MS;
  metrics?.deliveryAttempts.inc({ channel: 'email', outcome: ok ? 'delivered' : expired ? 'failed' : 'retry' });
  metrics?.deliveryAttemptSeconds.observe({ channel: 'email' }, (Date.now() - t0) / 1000);
  await pool.query(
    `UPDATE email_deliveries SET attempts = attempts + 1, last_error = $2, status = $3, delivered_at = CASE WHEN $3 = 'delivered' THEN now() END WHERE id = $1`,
    [deliveryId, error, ok ? 'delivered' : expired ? 'failed' : 'pending'],
  );
  if (ok) return 'delivered';
  if (expired) throw new UnrecoverableError(`gave up after 24 hours: ${error}`);
  throw new Error(error!);
}

export function createEmailWorker(pool: Pool, transport: Transporter, settings: EmailSettings, connection: Redis, prefix: string, logger: Logger, metrics?: Metrics) {
  return new Worker<EmailJob>(EMAIL_QUEUE, async (job) => sendEmail(pool, transport, settings, job.data.deliveryId, Date.now(), metrics), {
    connection,
    prefix,
    concurrency: 5,
    settings: { backoffStrategy: (attemptsMade: number) => backoffMs(attemptsMade) },
  }).on('failed', (job, err) => logger.warn({ delivery: job?.data.deliveryId, err: err.message }, 'alert email not sent; retried with backoff'));
}
