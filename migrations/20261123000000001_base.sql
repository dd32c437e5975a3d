-- Up Migration
-- TimescaleDB when the server has it (hypertables, compression, retention); plain PostgreSQL
-- otherwise, with the same tables and the same behaviour (src/retention.ts deletes old rows).
-- Only a server without the extension takes the plain path: one that has it but cannot create
-- it (e.g. missing privileges) fails the migration loudly instead of degrading silently.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
    CREATE EXTENSION IF NOT EXISTS timescaledb;
  ELSE
    RAISE NOTICE 'timescaledb is not available on this server: plain PostgreSQL path';
  END IF;
END
$$;

CREATE TABLE devices (
  id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  kind        text NOT NULL CHECK (kind IN ('gps', 'alcohol', 'combined')),
  active      boolean NOT NULL DEFAULT true,
  mqtt_password_hash text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subjects (
  id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  display_name  text NOT NULL,
  cohort        text NOT NULL CHECK (cohort IN ('fixed', 'flex', 'free')),
  rag           text NOT NULL CHECK (rag IN ('red', 'amber', 'green')),
  timezone      text NOT NULL DEFAULT 'Europe/London',
  offender_manager_ids text[] NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subjects_managers_idx ON subjects USING gin (offender_manager_ids);

-- A device fitted to a subject over [start_at, end_at); end_at null while fitted. Overlaps for
-- one device are refused by the service inside a transaction that locks the device row.
CREATE TABLE assignments (
  id          bigserial PRIMARY KEY,
  subject_id  text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  device_id   text NOT NULL REFERENCES devices (id),
  start_at    timestamptz NOT NULL,
  end_at      timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK (end_at IS NULL OR end_at > start_at)
);
CREATE INDEX assignments_device_idx ON assignments (device_id, start_at);
CREATE INDEX assignments_subject_idx ON assignments (subject_id, start_at);

-- Every stored reading, once: identity (device_id, stream, ts). Typed columns for the values the
-- rules read; `data` keeps the reading exactly as received (extra fields included).
CREATE TABLE readings (
  device_id    text NOT NULL,
  stream       text NOT NULL CHECK (stream IN ('gps', 'alcohol', 'status')),
  ts           timestamptz NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now(),
  lat          double precision,
  lon          double precision,
  accuracy_m   double precision,
  tac          double precision,
  temp_c       double precision,
  ir           double precision,
  battery_pct  double precision,
  data         jsonb NOT NULL,
  PRIMARY KEY (device_id, stream, ts)
);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    PERFORM create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '7 days');
    ALTER TABLE readings SET (
      timescaledb.compress,
      timescaledb.compress_segmentby = 'device_id, stream',
      timescaledb.compress_orderby = 'ts'
    );
    PERFORM add_compression_policy('readings', INTERVAL '30 days');
  END IF;
END
$$;

-- Telemetry that was not stored as a reading, with why (contract §1).
CREATE TABLE rejections (
  id           bigserial PRIMARY KEY,
  received_at  timestamptz NOT NULL DEFAULT now(),
  topic        text NOT NULL,
  device_id    text,
  item_index   integer,
  reason       text NOT NULL,
  raw          bytea NOT NULL
);
CREATE INDEX rejections_received_idx ON rejections (received_at DESC, id DESC);

-- Who consulted or changed what (DPA 2018 s.62). Append-only: see 0002.
CREATE TABLE audit_log (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL,
  role        text NOT NULL,
  action      text NOT NULL,
  subject_id  text,
  detail      jsonb NOT NULL DEFAULT '{}',
  ip          text
);
CREATE INDEX audit_subject_idx ON audit_log (subject_id, at);
CREATE INDEX audit_actor_idx ON audit_log (actor, at);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Down Migration
