import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../platform/config.js';

const base = {
  DATABASE_URL: 'postgres://u@127.0.0.1:5432/db',
  REDIS_URL: 'redis://127.0.0.1:6379',
  MQTT_URL: 'mqtt://127.0.0.1:1883',
  JWT_SECRET: 'x'.repeat(32),
};

describe('loadConfig', () => {
  it('applies defaults and converts numbers', () => {
    const c = loadConfig({ ...base, PORT: '9090' });
    expect(c.PORT).toBe(9090);
    expect(c.LOG_LEVEL).toBe('info');
    expect(c.RETENTION_DAYS).toBe(2190);
    expect(c.SMTP_URL).toBeUndefined(); // email is off by default
  });
  it.each([
    [{ ...base, DATABASE_URL: undefined }, /^config: DATABASE_URL is missing/],
    [{ ...base, REDIS_URL: 'localhost:6379' }, /^config: REDIS_URL is malformed/],
    [{ ...base, PORT: 'eighty' }, /^config: PORT is malformed/],
    [{ ...base, PORT: '70000' }, /^config: PORT is malformed/],
    [{ ...base, LOG_LEVEL: 'loud' }, /^config: LOG_LEVEL is malformed/],
    [{ ...base, JWT_SECRET: 'short' }, /^config: JWT_SECRET is malformed/],
    [{ ...base, SMTP_URL: 'mail.example:587' }, /^config: SMTP_URL is malformed/],
    [{ ...base, JWT_SECRET: undefined }, /^config: JWT_SECRET or JWT_JWKS_URL is missing/],
  ])('stops with one line naming the setting: %#', (env, message) => {
    expect(() => loadConfig(env as NodeJS.ProcessEnv)).toThrow(message);
    try {
      loadConfig(env as NodeJS.ProcessEnv);
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
      expect((err as Error).message).not.toContain('x'.repeat(32));
    }
  });
});
