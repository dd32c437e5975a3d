import { describe, expect, it } from 'vitest';
import { TrailBuilder } from '../../crime/trails.js';
import { trailsFrom } from '../../crime/match.js';
import type { CrimeFix } from '../../crime/rules.js';

describe('TrailBuilder', () => {
  it('builds the same columnar trails as trailsFrom, growing past its first capacity', () => {
    const by = new Map<string, CrimeFix[]>();
    for (const s of ['A', 'B', 'C']) {
      by.set(s, Array.from({ length: 40 }, (_, i) => ({ ts: 1e12 + i * 60_000, lat: 52 + i / 1000, lon: -1 - i / 1000, accuracy_m: 5 + i, device_id: `${s}-${i % 2}` })));
    }
    const b = new TrailBuilder(16);
    for (const [s, fixes] of [...by].sort()) for (const f of fixes) b.push(s, f.device_id, f.ts, f.lat, f.lon, f.accuracy_m);
    const built = b.finish();
    const ref = trailsFrom(by);
    expect(built.subjects).toEqual(ref.subjects);
    expect([...built.start]).toEqual([...ref.start]);
    for (const k of ['ts', 'lat', 'lon', 'accuracy'] as const) expect([...built[k]]).toEqual([...ref[k]]);
    expect([...built.device].map((d) => built.devices[d])).toEqual([...ref.device].map((d) => ref.devices[d]));
  });
});
