import { describe, expect, it } from 'vitest';
import { localInput, parsePeriod, scheduleInWords } from '../../console/subject-map.js';

const NOW = new Date('2026-12-03T12:00:00Z');

describe('parsePeriod (the subject page and the track endpoint)', () => {
  it('defaults to the last 24 hours when both are blank and a default is allowed', () => {
    expect(parsePeriod({}, 'Europe/London', NOW, true)).toEqual({ from: new Date('2026-12-02T12:00:00Z'), to: NOW, defaulted: true });
    expect(parsePeriod({ from: '', to: ' ' }, 'Europe/London', NOW, false)).toMatchObject({ errors: [{ field: 'from' }, { field: 'to' }] });
  });

  it('reads wall-clock times in the person’s zone and offset times as given', () => {
    // British Summer Time in July: 09:00 local is 08:00 UTC
    expect(parsePeriod({ from: '2026-07-01T09:00', to: '2026-07-01T10:30' }, 'Europe/London', NOW, true)).toEqual({ from: new Date('2026-07-01T08:00:00Z'), to: new Date('2026-07-01T09:30:00Z'), defaulted: false });
    expect(parsePeriod({ from: '2026-07-01T09:00:00Z', to: '2026-07-01T13:00:00+02:00' }, 'Europe/London', NOW, false)).toEqual({ from: new Date('2026-07-01T09:00:00Z'), to: new Date('2026-07-01T11:00:00Z'), defaulted: false });
  });

  it('says what is wrong: not a date, reversed, longer than 7 days', () => {
    expect(parsePeriod({ from: '2026-13-01T09:00', to: '2026-12-01T09:00' }, 'UTC', NOW, true)).toEqual({ errors: [{ field: 'from', text: expect.stringMatching(/must be a real date and time/) }] });
    expect(parsePeriod({ from: '1 Dec', to: '2026-12-01T09:00' }, 'UTC', NOW, true)).toMatchObject({ errors: [{ field: 'from' }] });
    expect(parsePeriod({ from: '2026-12-02T09:00', to: '2026-12-01T09:00' }, 'UTC', NOW, true)).toEqual({ errors: [{ field: 'to', text: 'The end must be after the start' }] });
    expect(parsePeriod({ from: '2026-12-01T09:00', to: '2026-12-08T09:01' }, 'UTC', NOW, true)).toEqual({ errors: [{ field: 'to', text: 'The period must be 7 days or shorter' }] });
    expect(parsePeriod({ from: '2026-12-01T09:00', to: '2026-12-08T09:00' }, 'UTC', NOW, true)).toMatchObject({ defaulted: false });
  });

  it('gives the form its value back in the person’s zone', () => {
    expect(localInput(new Date('2026-07-01T08:00:00Z'), 'Europe/London')).toBe('2026-07-01T09:00');
  });
});

describe('scheduleInWords', () => {
  const base = { schedule: null, active_from: null, active_to: null, exceptions: [], grace_s: 60 };
  it('says always, weekdays, weekends, named days and overnight windows', () => {
    expect(scheduleInWords(base, 'Europe/London')).toBe('Always. Grace 60 seconds.');
    expect(scheduleInWords({ ...base, schedule: [{ days: ['fri', 'mon', 'tue', 'wed', 'thu'], start: '19:00', end: '07:00' }] }, 'Europe/London')).toBe('Monday to Friday, 19:00 to 07:00 the next day. Grace 60 seconds.');
    expect(scheduleInWords({ ...base, schedule: [{ days: ['sat', 'sun'], start: '10:00', end: '16:00' }, { days: ['mon', 'wed'], start: '21:00', end: '23:00' }] }, 'Europe/London')).toBe(
      'Saturday and Sunday, 10:00 to 16:00; Monday and Wednesday, 21:00 to 23:00. Grace 60 seconds.',
    );
  });

  it('adds the active period (local time) and the number of exceptions', () => {
    const z = { ...base, active_from: new Date('2026-07-01T08:00:00Z'), active_to: new Date('2026-12-24T18:00:00Z'), exceptions: [{ from: 'a', to: 'b' }], grace_s: 120 };
    expect(scheduleInWords(z, 'Europe/London')).toBe('Always, from 1 Jul 2026, 09:00 until 24 Dec 2026, 18:00 (1 exception). Grace 120 seconds.');
  });
});
