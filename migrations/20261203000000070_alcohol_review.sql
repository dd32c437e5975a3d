-- Up Migration
-- Alcohol review (contract 1.1 §4, §5): each drinking event and alcohol tamper is its own alert,
-- reviewed by a person; day results carry the reviewed figures beside the automatic ones.

-- 1. One alert per event. The types are listed once, in PER_EVENT_TYPES (alerts/rules.ts):
-- raiseAlert marks their alerts `per_event` and the one-open index skips those. The list below
-- only marks the alerts already stored.
ALTER TABLE alerts ADD COLUMN per_event boolean NOT NULL DEFAULT false;
UPDATE alerts SET per_event = true WHERE type IN ('drinking_event', 'alcohol_tamper', 'crime_proximity');
DROP INDEX alerts_one_open_idx;
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (subject_id, type, coalesce(zone_id::text, '')) WHERE status = 'open' AND NOT per_event;

-- 2. Review: null for types nobody reviews; `pending` as raised; then `confirmed` or
-- `not_confirmed` with who, when and why (the history is in alert_events).
ALTER TABLE alerts
  ADD COLUMN review_status text CHECK (review_status IN ('pending', 'confirmed', 'not_confirmed')),
  ADD COLUMN reviewed_by   text,
  ADD COLUMN reviewed_at   timestamptz,
  ADD COLUMN review_note   text;
UPDATE alerts SET review_status = 'pending' WHERE type IN ('drinking_event', 'alcohol_tamper');
CREATE INDEX alerts_review_idx ON alerts (subject_id, started_at) WHERE review_status IS NOT NULL;

-- Before 1.1 a second event while the first alert was open was only a `recurred` line in that
-- alert's history ("recurred: started <RFC 3339>[ (late readings)]"). Each becomes its own alert,
-- pending review: started at the recorded time, raised when it was recorded, the first alert's
-- device; its evidence names the alert it came from (the readings stay in `readings`, and the
-- next evaluation of those days finds the event already alerted). Its history says `split`
-- (delivered as a change, not e-mailed as a new alert). The `recurred` line stays where it was.
WITH rec AS (
  SELECT DISTINCT ON (a.id, x.start) a.id AS parent, a.type, a.severity, a.subject_id, a.device_id, a.zone_id, x.start, e.at,
         e.note LIKE '%(late readings)%' AS late
    FROM alert_events e
    JOIN alerts a ON a.id = e.alert_id
    CROSS JOIN LATERAL (SELECT substring(e.note FROM '^recurred: started (\S+)')::timestamptz AS start) x
   WHERE e.action = 'recurred' AND a.type IN ('drinking_event', 'alcohol_tamper') AND x.start IS NOT NULL
   ORDER BY a.id, x.start, e.at
), ins AS (
  INSERT INTO alerts (type, severity, subject_id, device_id, zone_id, started_at, raised_at, late, evidence, per_event, review_status)
  SELECT type, severity, subject_id, device_id, zone_id, start, at, late,
         jsonb_build_array(jsonb_build_object('summary', jsonb_build_object('split_from', parent, 'start', start))), true, 'pending'
    FROM rec
  ON CONFLICT DO NOTHING
  RETURNING id, evidence
)
INSERT INTO alert_events (alert_id, actor, action, note)
SELECT id, 'system', 'split', 'recorded as a recurrence of alert ' || (evidence -> 0 -> 'summary' ->> 'split_from') || ' before each event was its own alert'
  FROM ins;

-- 3. Day results: the reviewed status beside the automatic one, the events pending review that
-- start on the day, and what a figure needs to be reproduced: the drinking events and tampers
-- touching the day (`events`: [{kind, start, end}], epoch ms), the review decisions used
-- (`reviews`: {alert id: status}) and the latest receipt time of the readings used.
ALTER TABLE alcohol_days
  ADD COLUMN reviewed_status      text CHECK (reviewed_status IN ('sober', 'drinking', 'tamper', 'not_monitored')),
  ADD COLUMN pending_events       integer NOT NULL DEFAULT 0 CHECK (pending_events >= 0),
  ADD COLUMN events               jsonb,
  ADD COLUMN reviews              jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN readings_received_to timestamptz;
-- Stored days: nothing was reviewed yet, so the reviewed status is the automatic one. Their
-- events are taken from the alerts touching the day (null where none: a review then leaves the
-- day as it is until the next evaluation of it recomputes it from the readings).
UPDATE alcohol_days SET reviewed_status = status;
WITH ev AS (
  SELECT d.subject_id, d.date,
         jsonb_agg(jsonb_build_object('kind', CASE a.type WHEN 'drinking_event' THEN 'drinking' ELSE 'tamper' END,
                                      'start', floor(extract(epoch FROM a.started_at) * 1000),
                                      'end', floor(extract(epoch FROM coalesce(a.ended_at, a.started_at)) * 1000)) ORDER BY a.started_at) AS events,
         count(*) FILTER (WHERE a.started_at >= b.lo)::int AS starting
    FROM alcohol_days d
    JOIN subjects s ON s.id = d.subject_id
    CROSS JOIN LATERAL (SELECT d.date::timestamp AT TIME ZONE s.timezone AS lo, (d.date + 1)::timestamp AT TIME ZONE s.timezone AS hi) b
    JOIN alerts a ON a.subject_id = d.subject_id AND a.type IN ('drinking_event', 'alcohol_tamper')
     AND a.started_at < b.hi AND coalesce(a.ended_at, a.started_at) >= b.lo
   GROUP BY d.subject_id, d.date
)
UPDATE alcohol_days d SET events = ev.events, pending_events = ev.starting
  FROM ev WHERE d.subject_id = ev.subject_id AND d.date = ev.date;
ALTER TABLE alcohol_days ALTER COLUMN reviewed_status SET NOT NULL;

-- The monthly rollup counts the reviewed statuses and the pending events too.
ALTER TABLE alcohol_day_months
  ADD COLUMN reviewed_sober_days          integer NOT NULL DEFAULT 0 CHECK (reviewed_sober_days >= 0),
  ADD COLUMN reviewed_drinking_days       integer NOT NULL DEFAULT 0 CHECK (reviewed_drinking_days >= 0),
  ADD COLUMN reviewed_tamper_days         integer NOT NULL DEFAULT 0 CHECK (reviewed_tamper_days >= 0),
  ADD COLUMN reviewed_not_monitored_days  integer NOT NULL DEFAULT 0 CHECK (reviewed_not_monitored_days >= 0),
  ADD COLUMN pending_events               integer NOT NULL DEFAULT 0 CHECK (pending_events >= 0);
UPDATE alcohol_day_months m
   SET reviewed_sober_days = x.rs, reviewed_drinking_days = x.rd, reviewed_tamper_days = x.rt, reviewed_not_monitored_days = x.rn, pending_events = x.pe
  FROM (SELECT subject_id, date_trunc('month', date::timestamp)::date AS month,
               count(*) FILTER (WHERE reviewed_status = 'sober')::int AS rs, count(*) FILTER (WHERE reviewed_status = 'drinking')::int AS rd,
               count(*) FILTER (WHERE reviewed_status = 'tamper')::int AS rt, count(*) FILTER (WHERE reviewed_status = 'not_monitored')::int AS rn,
               sum(pending_events)::int AS pe
          FROM alcohol_days GROUP BY 1, 2) x
 WHERE m.subject_id = x.subject_id AND m.month = x.month;

-- Analysts' views: the reviewed figures after the automatic ones (columns appended, grants kept).
CREATE OR REPLACE VIEW sober_days AS
  SELECT substr(md5(k.key || ':' || d.subject_id), 1, 16) AS subject_ref,
         s.cohort, d.date, d.status, d.covered_minutes, d.params_version, d.reviewed_status, d.pending_events
    FROM alcohol_days d JOIN subjects s ON s.id = d.subject_id CROSS JOIN pseudonym_key k;

CREATE OR REPLACE VIEW sober_day_rates AS
  SELECT s.cohort,
         m.month,
         sum(m.sober_days) AS sober_days,
         sum(m.sober_days + m.drinking_days + m.tamper_days) AS monitored_days,
         round(sum(m.sober_days)::numeric / nullif(sum(m.sober_days + m.drinking_days + m.tamper_days), 0), 4) AS rate,
         sum(m.reviewed_sober_days) AS reviewed_sober_days,
         sum(m.reviewed_sober_days + m.reviewed_drinking_days + m.reviewed_tamper_days) AS reviewed_monitored_days,
         round(sum(m.reviewed_sober_days)::numeric / nullif(sum(m.reviewed_sober_days + m.reviewed_drinking_days + m.reviewed_tamper_days), 0), 4) AS reviewed_rate,
         sum(m.pending_events) AS pending_events
    FROM alcohol_day_months m JOIN subjects s ON s.id = m.subject_id
   GROUP BY s.cohort, m.month;

-- Down Migration
