-- Up Migration
-- Alcohol rule parameters, one row per distinct set (contract §4): every day result names the
-- set that produced it, so a figure can be reproduced later.
CREATE TABLE alcohol_params (
  version     text PRIMARY KEY,
  params      jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per subject and local day: replaced when late readings change the day.
CREATE TABLE alcohol_days (
  subject_id      text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  date            date NOT NULL,
  status          text NOT NULL CHECK (status IN ('sober', 'drinking', 'tamper', 'not_monitored')),
  covered_minutes integer NOT NULL,
  drinking_events integer NOT NULL,
  tampers         integer NOT NULL,
  params_version  text NOT NULL REFERENCES alcohol_params (version),
  computed_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subject_id, date)
);
CREATE INDEX alcohol_days_date_idx ON alcohol_days (date, status);

-- Latest device time of an alcohol reading evaluated, per device: a later alert proven by a
-- reading at or before it was found through late data.
CREATE TABLE alcohol_progress (
  device_id   text PRIMARY KEY,
  watermark   timestamptz NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The key behind analysts' pseudonymous subject references (never leaves the database/service).
CREATE TABLE pseudonym_key (
  id   boolean PRIMARY KEY DEFAULT true CHECK (id),
  key  text NOT NULL
);
INSERT INTO pseudonym_key (key) VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));

-- Analysts' SQL views: no names, no locations, pseudonymous subject references.
CREATE VIEW sober_days AS
  SELECT substr(md5(k.key || ':' || d.subject_id), 1, 16) AS subject_ref,
         s.cohort, d.date, d.status, d.covered_minutes, d.params_version
    FROM alcohol_days d JOIN subjects s ON s.id = d.subject_id CROSS JOIN pseudonym_key k;

CREATE VIEW sober_day_rates AS
  SELECT s.cohort,
         date_trunc('month', d.date)::date AS month,
         count(*) FILTER (WHERE d.status = 'sober') AS sober_days,
         count(*) FILTER (WHERE d.status <> 'not_monitored') AS monitored_days,
         round(count(*) FILTER (WHERE d.status = 'sober')::numeric
               / nullif(count(*) FILTER (WHERE d.status <> 'not_monitored'), 0), 4) AS rate
    FROM alcohol_days d JOIN subjects s ON s.id = d.subject_id
   GROUP BY s.cohort, date_trunc('month', d.date);

-- A read-only role for analysts' psql or BI connections: the two views and nothing else.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tagwatch_analyst') THEN
    CREATE ROLE tagwatch_analyst NOLOGIN;
  END IF;
  GRANT SELECT ON sober_days, sober_day_rates TO tagwatch_analyst;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'role tagwatch_analyst not created: %', SQLERRM;
END
$$;

-- Down Migration
