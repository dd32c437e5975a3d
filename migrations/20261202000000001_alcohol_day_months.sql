-- Up Migration
-- Day counts per subject and month, by day status: a rollup of alcohol_days that lets a cohort's
-- sober-day totals over a long period read 12 rows per subject and year instead of 365
-- (GET /v1/sobriety, contract §4). alcohol_days stays the source of truth: saveDays
-- (alcohol/alcohol.repo.ts) rewrites the month rows of every month it writes days in, recomputed
-- from the days, in the same statement; an erasure removes them with the subject (cascade).
--
-- The same plain table on both storage paths. Not a TimescaleDB continuous aggregate:
-- alcohol_days is not a hypertable (a few hundred rows per subject and year, rewritten in place
-- when late readings change past days), and a continuous aggregate is refreshed afterwards by a
-- job, where this must agree with the day table at every commit.
CREATE TABLE alcohol_day_months (
  subject_id          text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  month               date NOT NULL CHECK (month = date_trunc('month', month::timestamp)::date),
  sober_days          integer NOT NULL CHECK (sober_days >= 0),
  drinking_days       integer NOT NULL CHECK (drinking_days >= 0),
  tamper_days         integer NOT NULL CHECK (tamper_days >= 0),
  not_monitored_days  integer NOT NULL CHECK (not_monitored_days >= 0),
  PRIMARY KEY (subject_id, month)
);

-- the days already stored
INSERT INTO alcohol_day_months (subject_id, month, sober_days, drinking_days, tamper_days, not_monitored_days)
SELECT subject_id, date_trunc('month', date::timestamp)::date,
       count(*) FILTER (WHERE status = 'sober'), count(*) FILTER (WHERE status = 'drinking'),
       count(*) FILTER (WHERE status = 'tamper'), count(*) FILTER (WHERE status = 'not_monitored')
  FROM alcohol_days
 GROUP BY 1, 2;

-- Analysts' monthly view from the rollup (same columns and types; the role keeps its grant).
CREATE OR REPLACE VIEW sober_day_rates AS
  SELECT s.cohort,
         m.month,
         sum(m.sober_days) AS sober_days,
         sum(m.sober_days + m.drinking_days + m.tamper_days) AS monitored_days,
         round(sum(m.sober_days)::numeric / nullif(sum(m.sober_days + m.drinking_days + m.tamper_days), 0), 4) AS rate
    FROM alcohol_day_months m JOIN subjects s ON s.id = m.subject_id
   GROUP BY s.cohort, m.month;

-- Down Migration
