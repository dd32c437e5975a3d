/**
 * Per-receiver admission for webhook attempts (pure: the caller passes `now`, epoch ms, and a
 * random source for jitter). Two rules keep one receiver from holding up the others:
 *
 * - a lane: at most `perReceiver` attempts in flight per webhook; a delivery that finds its lane
 *   full is put back for a moment instead of waiting in a worker slot;
 * - a circuit breaker: after `breakerFailures` consecutive failed attempts the webhook is open
 *   for a cooldown (doubling from `cooldownMs` to `maxCooldownMs` while it stays down); its
 *   deliveries wait in the queue until then. After the cooldown one attempt is let through as
 *   a probe: success closes the breaker, failure opens it again for twice as long.
 *
 * A deferral is not an attempt: nothing is sent, nothing is logged, the delivery's own backoff
 * is unchanged.
 */

export interface GateSettings {
  perReceiver: number;
  breakerFailures: number;
  cooldownMs: number;
  maxCooldownMs: number;
  /** how long a probe may take (the attempt timeout): deliveries arriving meanwhile wait that long */
  probeMs: number;
  /** a delivery that finds its lane full comes back after this, plus up to as much again */
  busyDelayMs: number;
}

export const DEFAULT_GATE: GateSettings = {
  perReceiver: 4,
  breakerFailures: 5,
  cooldownMs: 5_000,
  maxCooldownMs: 300_000,
  probeMs: 5_000,
  busyDelayMs: 250,
};

export type Admission =
  | { go: true; probe: boolean }
  | { go: false; retryAt: number; reason: 'busy' | 'open' | 'probing' };

interface Receiver {
  inFlight: number;
  failures: number;
  /** 0 when closed; else the end of the cooldown (epoch ms) */
  openUntil: number;
  cooldownMs: number;
  probingSince: number | null;
}

export type BreakerState = 'closed' | 'open' | 'half-open';

export function createGate(settings: GateSettings = DEFAULT_GATE, random: () => number = Math.random) {
  const receivers = new Map<string, Receiver>();
  const get = (id: string): Receiver => {
    let r = receivers.get(id);
    if (!r) receivers.set(id, (r = { inFlight: 0, failures: 0, openUntil: 0, cooldownMs: settings.cooldownMs, probingSince: null }));
    return r;
  };
  const forget = (id: string, r: Receiver) => {
    if (r.inFlight === 0 && r.failures === 0 && r.openUntil === 0) receivers.delete(id);
  };
  const open = (r: Receiver, now: number, cooldownMs: number) => {
    r.cooldownMs = Math.min(settings.maxCooldownMs, cooldownMs);
    r.openUntil = now + r.cooldownMs;
    r.probingSince = null;
  };
  /** spreads deliveries put back together over a window so they do not return all at once */
  const spread = (ms: number) => Math.round(random() * ms);

  return {
    /** Whether an attempt to webhook `id` may start now; when it may, it holds a lane slot until `done`. */
    admit(id: string, now: number): Admission {
      const r = get(id);
      if (r.openUntil > now) return { go: false, retryAt: r.openUntil + spread(Math.min(r.cooldownMs, 5_000)), reason: 'open' };
      if (r.openUntil !== 0) {
        if (r.probingSince !== null) return { go: false, retryAt: r.probingSince + settings.probeMs + spread(1_000), reason: 'probing' };
        r.probingSince = now;
        r.inFlight++;
        return { go: true, probe: true };
      }
      if (r.inFlight >= settings.perReceiver) return { go: false, retryAt: now + settings.busyDelayMs + spread(settings.busyDelayMs), reason: 'busy' };
      r.inFlight++;
      return { go: true, probe: false };
    },

    /**
     * Ends an admitted attempt: `ok` true or false for an attempt that was sent, null when
     * nothing was sent (the delivery was gone), which leaves the breaker as it was.
     */
    done(id: string, probe: boolean, ok: boolean | null, now: number): void {
      const r = get(id);
      r.inFlight = Math.max(0, r.inFlight - 1);
      if (ok === true) {
        r.failures = 0;
        r.openUntil = 0;
        r.probingSince = null;
        r.cooldownMs = settings.cooldownMs;
      } else if (ok === false) {
        r.failures++;
        if (probe) open(r, now, r.cooldownMs * 2);
        else if (r.openUntil === 0 && r.failures >= settings.breakerFailures) open(r, now, settings.cooldownMs);
      } else if (probe) {
        r.probingSince = null;
      }
      forget(id, r);
    },

    /** When the breaker of webhook `id` is open: the end of its cooldown (so new deliveries can wait in the queue), else null. */
    openUntil(id: string, now: number): number | null {
      const r = receivers.get(id);
      return r && r.openUntil > now ? r.openUntil : null;
    },

    state(id: string, now: number): { breaker: BreakerState; inFlight: number; failures: number } {
      const r = receivers.get(id);
      if (!r) return { breaker: 'closed', inFlight: 0, failures: 0 };
      return { breaker: r.openUntil === 0 ? 'closed' : r.openUntil > now ? 'open' : 'half-open', inFlight: r.inFlight, failures: r.failures };
    },
  };
}

export type Gate = ReturnType<typeof createGate>;
