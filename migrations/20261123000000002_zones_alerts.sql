-- Up Migration
-- Zones (contract §3). Deleting a zone keeps its row (deleted_at) so past alerts can show the
-- exact rule that raised them.
CREATE TABLE zones (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  subject_id   text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('exclusion', 'inclusion')),
  name         text NOT NULL DEFAULT '',
  geometry     jsonb NOT NULL,
  radius_m     double precision,
  schedule     jsonb,
  active_from  timestamptz,
  active_to    timestamptz,
  exceptions   jsonb NOT NULL DEFAULT '[]',
  grace_s      integer NOT NULL DEFAULT 60 CHECK (grace_s >= 0),
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  deleted_at   timestamptz
);
CREATE INDEX zones_subject_idx ON zones (subject_id) WHERE deleted_at IS NULL;

-- Breach state per (subject, zone), written in the same transaction as the alerts it raises.
CREATE TABLE zone_states (
  subject_id  text NOT NULL,
  zone_id     uuid NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
  state       jsonb NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subject_id, zone_id)
);

-- Evaluation watermark per device: the latest device time of a fix evaluated.
CREATE TABLE geofence_progress (
  device_id     text PRIMARY KEY,
  watermark     timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Alerts (contract §5). `status` is the offender manager's workflow; `ended_at` is when the
-- condition itself ended (a breach over, data back).
CREATE TABLE alerts (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  type         text NOT NULL,
  severity     text NOT NULL CHECK (severity IN ('high', 'medium', 'low')),
  subject_id   text NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
  device_id    text,
  zone_id      uuid REFERENCES zones (id),
  started_at   timestamptz NOT NULL,
  raised_at    timestamptz NOT NULL DEFAULT now(),
  late         boolean NOT NULL DEFAULT false,
  status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
  evidence     jsonb NOT NULL DEFAULT '[]',
  ended_at     timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- at most one open alert per (subject, type, zone)
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (subject_id, type, coalesce(zone_id::text, '')) WHERE status = 'open';
-- a breach (same subject, type, zone, start) is alerted once, whatever retries happen
CREATE UNIQUE INDEX alerts_once_idx ON alerts (subject_id, type, coalesce(zone_id::text, ''), started_at);
CREATE INDEX alerts_subject_idx ON alerts (subject_id, raised_at DESC);
CREATE INDEX alerts_raised_idx ON alerts (raised_at DESC, id);

CREATE TABLE alert_events (
  id        bigserial PRIMARY KEY,
  alert_id  uuid NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
  at        timestamptz NOT NULL DEFAULT now(),
  actor     text NOT NULL,
  action    text NOT NULL,
  note      text
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, at);

-- Down Migration
