-- Up Migration
-- Crime matching (contract §8): police batches, their crimes, each matching run with its
-- parameters, the placed/possible results with their review, and every one-subject check.
CREATE TABLE crime_batches (
  id               bigserial PRIMARY KEY,
  police_batch_id  text NOT NULL UNIQUE,
  force            text NOT NULL,
  uploaded_by      text NOT NULL,
  uploaded_at      timestamptz NOT NULL DEFAULT now(),
  rows_total       integer NOT NULL,
  row_errors       jsonb NOT NULL DEFAULT '[]'
);

CREATE TABLE crimes (
  id          bigserial PRIMARY KEY,
  batch_id    bigint NOT NULL REFERENCES crime_batches (id) ON DELETE CASCADE,
  row_no      integer NOT NULL,
  crime_ref   text NOT NULL,
  crime_type  text NOT NULL,
  force       text NOT NULL,
  from_at     timestamptz NOT NULL,
  to_at       timestamptz NOT NULL,
  lat         double precision NOT NULL,
  lon         double precision NOT NULL,
  datum       text NOT NULL CHECK (datum IN ('OSGB36', 'WGS84')),
  easting     double precision,
  northing    double precision,
  free_text   text NOT NULL DEFAULT '',
  UNIQUE (batch_id, crime_ref)
);

CREATE TABLE crime_runs (
  id              bigserial PRIMARY KEY,
  batch_id        bigint NOT NULL REFERENCES crime_batches (id) ON DELETE CASCADE,
  params          jsonb NOT NULL,
  params_version  text NOT NULL,
  status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
  crimes_total    integer NOT NULL,
  crimes_done     integer NOT NULL DEFAULT 0,
  -- the latest receipt time of the readings the run used: a later run with late readings differs
  readings_received_max timestamptz,
  requested_by    text NOT NULL,
  requested_at    timestamptz NOT NULL DEFAULT now(),
  started_at      timestamptz,
  finished_at     timestamptz,
  error           text
);
CREATE INDEX crime_runs_batch_idx ON crime_runs (batch_id, id);

CREATE TABLE crime_matches (
  id           bigserial PRIMARY KEY,
  run_id       bigint NOT NULL REFERENCES crime_runs (id) ON DELETE CASCADE,
  crime_id     bigint NOT NULL REFERENCES crimes (id) ON DELETE CASCADE,
  subject_id   text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  category     text NOT NULL CHECK (category IN ('placed', 'possible')),
  deciding     jsonb NOT NULL,
  coverage     jsonb NOT NULL,
  review       text NOT NULL DEFAULT 'pending' CHECK (review IN ('pending', 'confirmed', 'rejected')),
  reviewed_by  text,
  reviewed_at  timestamptz,
  review_note  text,
  alert_id     uuid REFERENCES alerts (id) ON DELETE SET NULL,
  UNIQUE (run_id, crime_id, subject_id)
);
CREATE INDEX crime_matches_crime_idx ON crime_matches (crime_id, run_id);
CREATE INDEX crime_matches_subject_idx ON crime_matches (subject_id);

-- One subject checked against one crime, with the reason given: supervisors list them so a
-- crime analyst cannot quietly use invented crimes to follow someone.
CREATE TABLE crime_checks (
  id          bigserial PRIMARY KEY,
  crime_id    bigint NOT NULL REFERENCES crimes (id) ON DELETE CASCADE,
  subject_id  text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  actor       text NOT NULL,
  reason      text NOT NULL,
  category    text NOT NULL,
  params_version text NOT NULL,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crime_checks_at_idx ON crime_checks (at DESC, id DESC);

-- crime_proximity alerts (contract §5): each confirmed match is its own alert. Its identity is
-- the match (alerts.crime_match_id, unique), not (subject, type, zone, started_at): two crimes
-- with the same window start for one subject are two alerts. The one-open rule already exempts
-- them (alerts.per_event, set by PER_EVENT_TYPES in alerts/rules.ts, migration ...070).
ALTER TABLE alerts ADD COLUMN crime_match_id bigint REFERENCES crime_matches (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX alerts_crime_match_idx ON alerts (crime_match_id) WHERE crime_match_id IS NOT NULL;
DROP INDEX IF EXISTS alerts_once_idx;
CREATE UNIQUE INDEX alerts_once_idx ON alerts (subject_id, type, coalesce(zone_id::text, ''), started_at) WHERE crime_match_id IS NULL;
CREATE INDEX crime_runs_open_idx ON crime_runs (id) WHERE status IN ('queued', 'running');

-- Down Migration
DROP INDEX crime_runs_open_idx;
DROP INDEX alerts_once_idx;
CREATE UNIQUE INDEX alerts_once_idx ON alerts (subject_id, type, coalesce(zone_id::text, ''), started_at);
DROP INDEX alerts_crime_match_idx;
ALTER TABLE alerts DROP COLUMN crime_match_id;
DROP TABLE crime_checks;
DROP TABLE crime_matches;
DROP TABLE crime_runs;
DROP TABLE crimes;
DROP TABLE crime_batches;
