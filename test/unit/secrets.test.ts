import { randomBytes, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decryptSecret, encryptSecret, parseSecretsKey } from '../../alerts/secrets.js';
import { loadConfig } from '../../platform/config.js';

const base = { DATABASE_URL: 'postgres://u@127.0.0.1:5432/db', REDIS_URL: 'redis://127.0.0.1:6379', MQTT_URL: 'mqtt://127.0.0.1:1883', JWT_SECRET: 'x'.repeat(32) };

describe('webhook secrets at rest (AES-256-GCM with SECRETS_KEY)', () => {
  const key = randomBytes(32);
  const id = randomUUID();

  it('round-trips, and the stored form does not contain the secret', () => {
    const stored = encryptSecret(key, id, 'a-webhook-secret-of-32-characters');
    expect(stored).toMatch(/^v1\./);
    expect(stored).not.toContain('a-webhook-secret');
    expect(decryptSecret(key, id, stored)).toBe('a-webhook-secret-of-32-characters');
    expect(encryptSecret(key, id, 's'.repeat(16))).not.toBe(encryptSecret(key, id, 's'.repeat(16))); // a fresh nonce each time
  });

  it('refuses another key, another webhook id and a tampered value', () => {
    const stored = encryptSecret(key, id, 'a-webhook-secret-of-32-characters');
    expect(() => decryptSecret(randomBytes(32), id, stored)).toThrow();
    expect(() => decryptSecret(key, randomUUID(), stored)).toThrow();
    const parts = stored.split('.');
    const ct = Buffer.from(parts[3]!, 'base64url');
    ct[0]! ^= 1;
    expect(() => decryptSecret(key, id, [...parts.slice(0, 3), ct.toString('base64url')].join('.'))).toThrow();
  });

  it('reads the key as 64 hex digits or base64/base64url of 32 bytes, nothing else', () => {
    const k = randomBytes(32);
    expect(parseSecretsKey(k.toString('hex'))).toEqual(k);
    expect(parseSecretsKey(k.toString('base64'))).toEqual(k);
    expect(parseSecretsKey(k.toString('base64url'))).toEqual(k);
    expect(parseSecretsKey(randomBytes(31).toString('base64'))).toBeNull();
    expect(parseSecretsKey('not a key')).toBeNull();
  });

  it('config: SECRETS_KEY is validated; SUBSCRIPTION_DAYS and WEBHOOKS_PER_USER have defaults', () => {
    const c = loadConfig(base);
    expect(c.SECRETS_KEY).toBeUndefined();
    expect(c.SUBSCRIPTION_DAYS).toBe(90);
    expect(c.WEBHOOKS_PER_USER).toBe(10);
    expect(loadConfig({ ...base, SECRETS_KEY: randomBytes(32).toString('base64') }).SECRETS_KEY).toBeDefined();
    expect(() => loadConfig({ ...base, SECRETS_KEY: randomBytes(16).toString('hex') })).toThrow(/^config: SECRETS_KEY is malformed/);
  });
});
