import { describe, expect, it } from 'vitest';
import { featureOf, formFromZone, formOf, parseLocal } from '../../console/zones.form.js';
import { schemaProblems, zoneProblems } from '../../geofence/zones.service.js';
import type { ZoneRow } from '../../geofence/zones.repo.js';

describe('the console zone form (pure)', () => {
  it('reads times typed in the person’s time zone, across the clock change, and keeps an explicit offset', () => {
    expect(parseLocal('2026-07-01 19:00', 'Europe/London')).toBe('2026-07-01T18:00:00Z');
    expect(parseLocal('2026-12-01T19:00', 'Europe/London')).toBe('2026-12-01T19:00:00Z');
    expect(parseLocal('2026-07-01T19:00:00+02:00', 'Europe/London')).toBe('2026-07-01T17:00:00Z');
    expect(parseLocal('1 July 2026', 'Europe/London')).toBeNull();
    expect(parseLocal('2026-02-30 10:00', 'Europe/London')).toBeNull();
  });

  it('turns a stored zone into the form and back into the same Feature', () => {
    const zone: ZoneRow = {
      id: '00000000-0000-4000-8000-000000000001', subject_id: 'S', kind: 'inclusion', name: 'Home', radius_m: null,
      geometry: { type: 'Polygon', coordinates: [[[-1.16, 52.95], [-1.15, 52.95], [-1.15, 52.96], [-1.16, 52.95]]] },
      schedule: [{ days: ['mon', 'fri'], start: '19:00', end: '07:00' }], active_from: new Date('2026-06-01T08:00:00Z'), active_to: null,
      exceptions: [{ from: '2026-06-05T17:00:00Z', to: '2026-06-06T09:00:00Z' }], grace_s: 120, created_by: 'om', created_at: new Date(), deleted_at: null,
    };
    const form = formFromZone(zone, 'Europe/London');
    expect(form).toMatchObject({ shape: 'polygon', vertices: '52.95, -1.16\n52.95, -1.15\n52.96, -1.15', active_from: '2026-06-01 09:00', exceptions: [{ from: '2026-06-05 18:00', to: '2026-06-06 10:00' }] });
    // as posted: the form's own field names
    const posted = formOf({ kind: form.kind, name: form.name, shape: form.shape, vertices: form.vertices, window_0_days: ['mon', 'fri'], window_0_start: '19:00', window_0_end: '07:00', active_from: form.active_from, exception_0_from: form.exceptions[0]!.from, exception_0_to: form.exceptions[0]!.to, grace_s: form.grace_s });
    const { feature, errors } = featureOf(posted, 'Europe/London');
    expect(errors).toEqual([]);
    expect(feature).toEqual({
      type: 'Feature',
      geometry: zone.geometry,
      properties: { kind: 'inclusion', name: 'Home', schedule: zone.schedule, active_from: '2026-06-01T08:00:00Z', exceptions: zone.exceptions, grace_s: 120 },
    });
    expect(schemaProblems(feature)).toEqual([]);
    expect(zoneProblems(feature!, 'Europe/London')).toEqual([]);
  });

  it('ignores days that are not days and blank rows', () => {
    const f = formOf({ window_0_days: ['mon', 'funday'], window_0_start: '09:00', window_0_end: '10:00', window_1_start: '', exception_3_from: '' });
    expect(f.windows).toEqual([{ days: ['mon'], start: '09:00', end: '10:00' }]);
    expect(f.exceptions).toEqual([]);
    // as many rows as were posted (an existing zone may hold up to 500 exceptions)
    const many = formOf(Object.fromEntries(Array.from({ length: 70 }, (_, i) => [[`exception_${i}_from`, `2026-01-${String((i % 28) + 1).padStart(2, '0')} 10:00`], [`exception_${i}_to`, '2027-01-01 10:00']]).flat()));
    expect(many.exceptions).toHaveLength(70);
  });
});
