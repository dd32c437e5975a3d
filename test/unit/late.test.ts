import { describe, expect, it } from 'vitest';
import { isLate, LATE_RECEIPT_MS } from '../../alerts/rules.js';

describe('isLate (contract §3: a breach found through readings that arrived late)', () => {
  const t = Date.parse('2026-12-02T10:00:00Z');
  it.each([
    ['received at once, nothing evaluated yet', t, t + 2_000, null, false],
    ['received 15 minutes after its device time (the limit itself)', t, t + LATE_RECEIPT_MS, null, false],
    ['received a second over 15 minutes after', t, t + LATE_RECEIPT_MS + 1_000, null, true],
    ['stored for a day and sent after a gap', t, t + 86_400_000, null, true],
    ['at the watermark (later readings were already evaluated)', t, t + 2_000, t, true],
    ['before the watermark', t, t + 2_000, t + 60_000, true],
    ['after the watermark, received at once', t, t + 2_000, t - 60_000, false],
    ['receipt time unknown, after the watermark', t, undefined, t - 60_000, false],
  ] as const)('%s', (_why, provenAt, receivedAt, watermark, late) => {
    expect(isLate(provenAt, receivedAt, watermark)).toBe(late);
  });
});
