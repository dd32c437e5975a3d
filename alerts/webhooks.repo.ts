import type { Queryable, TxClient } from '../platform/db.js';

/** Webhook subscriptions (contract §5; issue 9 finding 11): registration, listing, renewal, revocation. */

/** A webhook as listed: never its secret. */
const COLS = `id, owner_id, owner_role, url, created_at, expires_at, renewed_at, revoked_at, revoked_by,
  CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN NOT active THEN 'deleted' WHEN expires_at <= now() THEN 'expired' ELSE 'active' END AS status`;

export interface WebhookRow {
  id: string;
  owner_id: string;
  owner_role: string;
  url: string;
  created_at: Date;
  expires_at: Date;
}

/** Active webhooks a user holds (the per-user cap counts expired ones too: they can be renewed). */
export async function countActiveWebhooks(tx: Queryable, ownerId: string): Promise<number> {
  const r = await tx.query<{ n: number }>(`SELECT count(*)::int n FROM webhooks WHERE owner_id = $1 AND active`, [ownerId]);
  return r.rows[0]!.n;
}

/** Stores a webhook with its encrypted secret, valid `days` from now. */
export async function insertWebhook(
  tx: TxClient,
  w: { id: string; ownerId: string; ownerRole: string; url: string; secretEnc: string; days: number },
): Promise<{ created_at: Date; expires_at: Date }> {
  const r = await tx.query<{ created_at: Date; expires_at: Date }>(
    `INSERT INTO webhooks (id, owner_id, owner_role, url, secret_enc, expires_at) VALUES ($1, $2, $3, $4, $5, now() + make_interval(days => $6))
     RETURNING created_at, expires_at`,
    [w.id, w.ownerId, w.ownerRole, w.url, w.secretEnc, w.days],
  );
  return r.rows[0]!;
}

/** Every webhook (admins), or one owner's active ones. */
export async function listWebhooks(db: Queryable, ownerId: string | null): Promise<WebhookRow[]> {
  const r = ownerId === null
    ? await db.query<WebhookRow>(`SELECT ${COLS} FROM webhooks ORDER BY created_at`)
    : await db.query<WebhookRow>(`SELECT ${COLS} FROM webhooks WHERE owner_id = $1 AND active ORDER BY created_at`, [ownerId]);
  return r.rows;
}

/** Renews an owner's active webhook for `days` from now with the owner's current role; null when not theirs. */
export async function renewWebhook(db: Queryable, id: string, ownerId: string, role: string, days: number): Promise<Date | null> {
  const r = await db.query<{ expires_at: Date }>(
    `UPDATE webhooks SET expires_at = now() + make_interval(days => $3), renewed_at = now(), owner_role = $4
      WHERE id = $1 AND owner_id = $2 AND active RETURNING expires_at`,
    [id, ownerId, days, role],
  );
  return r.rows[0]?.expires_at ?? null;
}

/** Revokes (an admin, any webhook) or deletes (its owner) an active webhook; returns its owner, or null. */
export async function endWebhook(db: Queryable, id: string, by: { id: string; admin: boolean }): Promise<string | null> {
  const r = by.admin
    ? await db.query<{ owner_id: string }>(`UPDATE webhooks SET active = false, revoked_at = now(), revoked_by = $2 WHERE id = $1 AND active RETURNING owner_id`, [id, by.id])
    : await db.query<{ owner_id: string }>(`UPDATE webhooks SET active = false WHERE id = $1 AND owner_id = $2 AND active RETURNING owner_id`, [id, by.id]);
  return r.rows[0]?.owner_id ?? null;
}
