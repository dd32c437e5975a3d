import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../platform/config.js';
import { redisOptions } from '../../platform/redis.js';

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
    expect([c.MONITORING_GPS_FIX_MINUTES, c.MONITORING_ALCOHOL_READING_MINUTES]).toEqual([15, 30]);
  });
  it('defaults the JWT audience and claim names (contract 1.1 §6), and allows a JWKS over http on loopback only', () => {
    const c = loadConfig(base);
    expect([c.JWT_AUDIENCE, c.JWT_USER_CLAIM, c.JWT_ROLE_CLAIM, c.JWT_ISSUER]).toEqual(['tagwatch', 'sub', 'role', undefined]);
    for (const host of ['127.0.0.1:8443', 'localhost', '[::1]:9000']) {
      const j = loadConfig({ ...base, JWT_SECRET: undefined, JWT_JWKS_URL: `http://${host}/jwks`, JWT_ISSUER: 'test-idp' });
      expect(j.JWT_JWKS_URL).toBe(`http://${host}/jwks`);
    }
  });
  it('takes Redis Sentinels (host:port list and master name) in place of REDIS_URL', () => {
    const c = loadConfig({ ...base, REDIS_URL: undefined, REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b.example:26380', REDIS_MASTER_NAME: 'tagwatch' });
    expect([c.REDIS_URL, c.REDIS_SENTINELS, c.REDIS_MASTER_NAME]).toEqual([undefined, '10.0.0.1:26379, sentinel-b.example:26380', 'tagwatch']);
    expect(redisOptions(c)).toMatchObject({ sentinels: [{ host: '10.0.0.1', port: 26379 }, { host: 'sentinel-b.example', port: 26380 }], name: 'tagwatch' });
    // REDIS_URL beside the Sentinels lends the master its credentials and database number
    const withUrl = redisOptions(loadConfig({ ...base, REDIS_URL: 'redis://app:s3cret@ignored:1/2', REDIS_SENTINELS: '[::1]:26379', REDIS_MASTER_NAME: 'm' }));
    expect(withUrl).toMatchObject({ sentinels: [{ host: '::1', port: 26379 }], name: 'm', username: 'app', password: 's3cret', db: 2 });
    expect(redisOptions(loadConfig(base))).not.toHaveProperty('sentinels');
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
    [{ ...base, JWT_SECRET: undefined, JWT_JWKS_URL: 'https://idp.example/jwks' }, /^config: JWT_ISSUER is missing/],
    [{ ...base, JWT_JWKS_URL: 'http://idp.example/jwks', JWT_ISSUER: 'https://idp.example/' }, /^config: JWT_JWKS_URL .*https/],
    [{ ...base, JWT_AUDIENCE: '' + ' '.repeat(3) }, /^config: JWT_AUDIENCE is malformed/],
    [{ ...base, JWT_ROLE_CLAIM: 'a b' }, /^config: JWT_ROLE_CLAIM is malformed/],
    [{ ...base, MONITORING_GPS_FIX_MINUTES: '0' }, /^config: MONITORING_GPS_FIX_MINUTES is malformed/],
    [{ ...base, REDIS_SENTINELS: '127.0.0.1' }, /^config: REDIS_SENTINELS is malformed/],
    [{ ...base, REDIS_SENTINELS: '127.0.0.1:26379' }, /^config: REDIS_MASTER_NAME is missing/],
    [{ ...base, REDIS_URL: undefined }, /^config: REDIS_URL is missing/],
    [{ ...base, MONITORING_ALCOHOL_READING_MINUTES: 'half-hourly' }, /^config: MONITORING_ALCOHOL_READING_MINUTES is malformed/],
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
