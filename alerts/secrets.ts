import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { withTransaction, type Pool } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';

/**
 * Webhook secrets at rest (finding 11 of issue 9): AES-256-GCM (node:crypto) with the 32-byte
 * key `SECRETS_KEY`, a random 96-bit nonce per secret, and the webhook id as associated data
 * (a ciphertext copied to another row does not decrypt). Stored as
 * `v1.<nonce base64url>.<tag base64url>.<ciphertext base64url>` in webhooks.secret_enc.
 */

/** The key from its text form: 64 hex digits, or base64/base64url of 32 bytes; null when malformed. */
export function parseSecretsKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (b.length === 32) return b;
  }
  return null;
}

const aad = (webhookId: string) => Buffer.from(`tagwatch:webhook:${webhookId}`);

export function encryptSecret(key: Buffer, webhookId: string, secret: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad(webhookId));
  const ct = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return ['v1', iv.toString('base64url'), c.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

/** Throws when the key is wrong or the value was tampered with or belongs to another webhook. */
export function decryptSecret(key: Buffer, webhookId: string, stored: string): string {
  const [v, iv, tag, ct] = stored.split('.');
  if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('webhook secret: unknown format');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
  d.setAAD(aad(webhookId));
  d.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([d.update(Buffer.from(ct, 'base64url')), d.final()]).toString('utf8');
}

/** Thrown at start-up when webhooks exist and SECRETS_KEY is not set. */
export class SecretsKeyMissing extends Error {}

/**
 * Start-up of a part that handles webhook secrets (api, worker): with a key, encrypts any
 * plaintext secret left by an older version (one transaction, rows locked) and checks that the
 * key opens the stored ones; without a key, refuses to start while any webhook exists.
 * Returns how many rows were encrypted.
 */
export async function prepareWebhookSecrets(pool: Pool, key: Buffer | null, logger?: Logger): Promise<number> {
  if (!key) {
    const n = await pool.query<{ n: number }>(`SELECT count(*)::int n FROM webhooks WHERE active`);
    if (n.rows[0]!.n > 0) throw new SecretsKeyMissing(`config: SECRETS_KEY is missing: ${n.rows[0]!.n} webhooks are registered and their secrets are encrypted with it (32 bytes, hex or base64)`);
    return 0;
  }
  const encrypted = await withTransaction(pool, async (tx) => {
    // the key must open what is stored already (a changed key would make every secret unreadable)
    const sample = await tx.query<{ id: string; secret_enc: string }>(`SELECT id::text, secret_enc FROM webhooks WHERE active AND secret_enc IS NOT NULL ORDER BY created_at DESC LIMIT 1`);
    for (const r of sample.rows) {
      try {
        decryptSecret(key, r.id, r.secret_enc);
      } catch {
        throw new SecretsKeyMissing('config: SECRETS_KEY does not open the stored webhook secrets (was it changed?)');
      }
    }
    const plain = await tx.query<{ id: string; secret: string }>(`SELECT id::text, secret FROM webhooks WHERE secret IS NOT NULL FOR UPDATE`);
    for (const r of plain.rows) {
      await tx.query(`UPDATE webhooks SET secret_enc = $2, secret = NULL WHERE id = $1`, [r.id, encryptSecret(key, r.id, r.secret)]);
    }
    return plain.rows.length;
  });
  if (encrypted) logger?.info({ webhooks: encrypted }, 'webhook secrets stored in plain text were encrypted with SECRETS_KEY');
  return encrypted;
}
