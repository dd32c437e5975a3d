import { describe, expect, it } from 'vitest';
import { createGate, type GateSettings } from '../../alerts/webhook-gate.js';

const S: GateSettings = { perReceiver: 2, breakerFailures: 3, cooldownMs: 1000, maxCooldownMs: 3000, probeMs: 500, busyDelayMs: 100 };
const T = 1_000_000;
const noJitter = () => 0;

describe('webhook gate: lanes', () => {
  it('lets perReceiver attempts run per webhook and puts the next one back briefly, other webhooks unaffected', () => {
    const g = createGate(S, noJitter);
    expect(g.admit('a', T)).toEqual({ go: true, probe: false });
    expect(g.admit('a', T)).toEqual({ go: true, probe: false });
    expect(g.admit('a', T)).toEqual({ go: false, retryAt: T + 100, reason: 'busy' });
    expect(g.admit('b', T)).toEqual({ go: true, probe: false });
    g.done('a', false, true, T + 5);
    expect(g.admit('a', T + 5)).toEqual({ go: true, probe: false });
    expect(g.state('a', T + 5)).toEqual({ breaker: 'closed', inFlight: 2, failures: 0 });
  });

  it('a delivery that turned out gone frees its slot without counting as a failure', () => {
    const g = createGate(S, noJitter);
    g.admit('a', T);
    g.done('a', false, null, T);
    expect(g.state('a', T)).toEqual({ breaker: 'closed', inFlight: 0, failures: 0 });
  });
});

describe('webhook gate: circuit breaker', () => {
  it('opens after breakerFailures consecutive failures; deliveries wait for the cooldown', () => {
    const g = createGate(S, noJitter);
    for (let i = 0; i < 2; i++) {
      g.admit('a', T);
      g.done('a', false, false, T + 10);
    }
    expect(g.state('a', T + 10).breaker).toBe('closed');
    g.admit('a', T + 10);
    g.done('a', false, false, T + 20);
    expect(g.state('a', T + 20)).toEqual({ breaker: 'open', inFlight: 0, failures: 3 });
    expect(g.admit('a', T + 500)).toEqual({ go: false, retryAt: T + 1020, reason: 'open' });
    expect(g.openUntil('a', T + 500)).toBe(T + 1020);
    expect(g.admit('b', T + 500)).toEqual({ go: true, probe: false });
  });

  it('a success between failures resets the count', () => {
    const g = createGate(S, noJitter);
    for (const ok of [false, false, true, false, false]) {
      g.admit('a', T);
      g.done('a', false, ok, T);
    }
    expect(g.state('a', T)).toEqual({ breaker: 'closed', inFlight: 0, failures: 2 });
  });

  it('after the cooldown lets one probe through; a failed probe reopens for twice as long (capped), a good one closes', () => {
    const g = createGate(S, noJitter);
    for (let i = 0; i < 3; i++) {
      g.admit('a', T);
      g.done('a', false, false, T);
    }
    expect(g.state('a', T + 1000).breaker).toBe('half-open');
    expect(g.admit('a', T + 1000)).toEqual({ go: true, probe: true });
    expect(g.admit('a', T + 1100)).toEqual({ go: false, retryAt: T + 1500, reason: 'probing' });
    g.done('a', true, false, T + 1200);
    expect(g.openUntil('a', T + 1200)).toBe(T + 3200);
    expect(g.admit('a', T + 3200)).toEqual({ go: true, probe: true });
    g.done('a', true, false, T + 3200);
    expect(g.openUntil('a', T + 3200)).toBe(T + 6200); // 4 s capped at 3 s
    expect(g.admit('a', T + 6200)).toEqual({ go: true, probe: true });
    g.done('a', true, true, T + 6210);
    expect(g.state('a', T + 6210)).toEqual({ breaker: 'closed', inFlight: 0, failures: 0 });
    // closed again with the base cooldown
    for (let i = 0; i < 3; i++) {
      g.admit('a', T + 7000);
      g.done('a', false, false, T + 7000);
    }
    expect(g.openUntil('a', T + 7000)).toBe(T + 8000);
  });

  it('a probe that found its delivery gone lets the next one probe', () => {
    const g = createGate(S, noJitter);
    for (let i = 0; i < 3; i++) {
      g.admit('a', T);
      g.done('a', false, false, T);
    }
    expect(g.admit('a', T + 1000)).toEqual({ go: true, probe: true });
    g.done('a', true, null, T + 1001);
    expect(g.admit('a', T + 1002)).toEqual({ go: true, probe: true });
  });
});

describe('webhook dispatch: feed ids missing between reads', () => {
  it('lists the ids skipped by a read, so a late commit is still dispatched', async () => {
    const { missingIds } = await import('../../alerts/feed.js');
    expect(missingIds(10n, [11n, 12n])).toEqual([]);
    expect(missingIds(10n, [12n, 15n])).toEqual([11n, 13n, 14n]);
    expect(missingIds(10n, [])).toEqual([]);
    expect(missingIds(0n, [5000n])).toHaveLength(1000); // a sequence jump is not tracked id by id
  });
});
