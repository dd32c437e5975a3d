import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Queryable } from '../platform/db.js';
import { ROLES, type Role, type User } from '../platform/http/auth.js';

/**
 * Console sessions, server-side in PostgreSQL (table console_sessions). The cookie holds a
 * random 256-bit token; the table holds only its SHA-256. Each session has its own CSRF token,
 * which every form of the session carries.
 */
export const IDLE_MS = 8 * 3600_000;
export const ABSOLUTE_MS = 12 * 3600_000;

export interface ConsoleSession {
  user: User;
  csrf: string;
  /** the session's key in console_sessions (the SHA-256 of its cookie token; never the token) */
  key: string;
  /** when it ends unless seen again: the earlier of its absolute expiry and idle expiry from now */
  endsAt: Date;
}

const hash = (token: string): string => createHash('sha256').update(token).digest('hex');

/** Opens a session for `user`; returns the cookie token. Expired sessions are purged on the way. */
export async function createSession(db: Queryable, user: User, now: Date): Promise<{ token: string; csrf: string }> {
  const token = randomBytes(32).toString('base64url');
  const csrf = randomBytes(32).toString('base64url');
  await db.query(`DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2`, [now, new Date(now.getTime() - IDLE_MS)]);
  await db.query(
    `INSERT INTO console_sessions (token_hash, user_id, role, csrf_token, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $5, $6)`,
    [hash(token), user.id, user.role, csrf, now, new Date(now.getTime() + ABSOLUTE_MS)],
  );
  return { token, csrf };
}

/** The live session of a cookie token (and marks it seen now), or null when unknown, idle too long or expired. */
export async function touchSession(db: Queryable, token: string, now: Date): Promise<ConsoleSession | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
  const key = hash(token);
  const r = await db.query<{ user_id: string; role: string; csrf_token: string; expires_at: Date }>(
    `UPDATE console_sessions SET last_seen_at = $2
      WHERE token_hash = $1 AND expires_at > $2 AND last_seen_at > $3
      RETURNING user_id, role, csrf_token, expires_at`,
    [key, now, new Date(now.getTime() - IDLE_MS)],
  );
  const row = r.rows[0];
  if (!row || !(ROLES as readonly string[]).includes(row.role)) return null;
  const endsAt = new Date(Math.min(row.expires_at.getTime(), now.getTime() + IDLE_MS));
  return { user: { id: row.user_id, role: row.role as Role }, csrf: row.csrf_token, key, endsAt };
}

/** Whether the session of `key` still exists and has not expired (without marking it seen). */
export async function sessionAlive(db: Queryable, key: string, now: Date): Promise<boolean> {
  const r = await db.query(`SELECT 1 FROM console_sessions WHERE token_hash = $1 AND expires_at > $2 AND last_seen_at > $3`, [key, now, new Date(now.getTime() - IDLE_MS)]);
  return (r.rowCount ?? 0) > 0;
}

export async function deleteSession(db: Queryable, token: string): Promise<void> {
  await db.query(`DELETE FROM console_sessions WHERE token_hash = $1`, [hash(token)]);
}

/** Constant-time comparison of a submitted CSRF token with the expected one. */
export function csrfMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(expected), Buffer.from(given));
}

/** An OpenID Connect sign-in under way (state, nonce, PKCE verifier), for the callback to finish. */
export interface PendingSignIn {
  state: string;
  nonce: string;
  verifier: string;
}
export const SIGN_IN_MS = 10 * 60_000;

export async function startSignIn(db: Queryable, pending: PendingSignIn, now: Date): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await db.query(`DELETE FROM console_sign_ins WHERE created_at <= $1`, [new Date(now.getTime() - SIGN_IN_MS)]);
  await db.query(`INSERT INTO console_sign_ins (token_hash, state, nonce, verifier, created_at) VALUES ($1, $2, $3, $4, $5)`, [hash(token), pending.state, pending.nonce, pending.verifier, now]);
  return token;
}

/** The sign-in of a cookie token, removed as it is read (a callback is good once), or null when unknown or older than 10 minutes. */
export async function takeSignIn(db: Queryable, token: string, now: Date): Promise<PendingSignIn | null> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return null;
  const r = await db.query<PendingSignIn>(`DELETE FROM console_sign_ins WHERE token_hash = $1 RETURNING state, nonce, verifier, created_at`, [hash(token)]);
  const row = r.rows[0] as (PendingSignIn & { created_at: Date }) | undefined;
  if (!row || row.created_at.getTime() <= now.getTime() - SIGN_IN_MS) return null;
  return { state: row.state, nonce: row.nonce, verifier: row.verifier };
}

/**
 * Housekeeping (the worker's `console-housekeeping` maintenance job, every 5 minutes: see
 * app/worker.part.ts), besides the purge at each sign-in: deletes expired sessions (absolute or idle; their stated reasons go with
 * them), sign-ins older than 10 minutes and stated reasons past their time. Rows deleted per table.
 */
export async function purgeExpiredConsoleState(db: Queryable, now: Date): Promise<{ sessions: number; sign_ins: number; reasons: number }> {
  const sessions = await db.query(`DELETE FROM console_sessions WHERE expires_at <= $1 OR last_seen_at <= $2`, [now, new Date(now.getTime() - IDLE_MS)]);
  const signIns = await db.query(`DELETE FROM console_sign_ins WHERE created_at <= $1`, [new Date(now.getTime() - SIGN_IN_MS)]);
  const reasons = await db.query(`DELETE FROM console_reasons WHERE expires_at <= $1`, [now]);
  return { sessions: sessions.rowCount ?? 0, sign_ins: signIns.rowCount ?? 0, reasons: reasons.rowCount ?? 0 };
}
