import { randomBytes, scryptSync } from 'node:crypto';
import type { Queryable } from '../platform/db.js';

export interface Device {
  id: string;
  kind: 'gps' | 'alcohol' | 'combined';
  active: boolean;
  created_at: Date;
}

/** A new random MQTT password and the scrypt hash that is all the database keeps of it. */
export function newDevicePassword(): { password: string; hash: string } {
  const password = randomBytes(24).toString('base64url');
  const salt = randomBytes(16);
  const hash = `scrypt$${salt.toString('base64url')}$${scryptSync(password, salt, 32).toString('base64url')}`;
  return { password, hash };
}

/** Inserts a device; null when the id is taken. */
export async function insertDevice(db: Queryable, d: { id: string; kind: Device['kind']; passwordHash: string }): Promise<Device | null> {
  const r = await db.query<Device>(
    `INSERT INTO devices (id, kind, mqtt_password_hash) VALUES ($1, $2, $3)
     ON CONFLICT (id) DO NOTHING RETURNING id, kind, active, created_at`,
    [d.id, d.kind, d.passwordHash],
  );
  return r.rows[0] ?? null;
}

export async function getDevice(db: Queryable, id: string): Promise<Device | null> {
  const r = await db.query<Device>(`SELECT id, kind, active, created_at FROM devices WHERE id = $1`, [id]);
  return r.rows[0] ?? null;
}

export async function setDeviceActive(db: Queryable, id: string, active: boolean): Promise<Device | null> {
  const r = await db.query<Device>(
    `UPDATE devices SET active = $2, updated_at = now() WHERE id = $1 RETURNING id, kind, active, created_at`,
    [id, active],
  );
  return r.rows[0] ?? null;
}
