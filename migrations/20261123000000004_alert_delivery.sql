-- Up Migration
-- Alert lifecycle columns (contract §5) and the escalation mark.
ALTER TABLE alerts
  ADD COLUMN acknowledged_at timestamptz,
  ADD COLUMN acknowledged_by text,
  ADD COLUMN resolved_at     timestamptz,
  ADD COLUMN resolved_by     text,
  ADD COLUMN false_alarm     boolean,
  ADD COLUMN escalated_at    timestamptz;
CREATE INDEX alerts_escalation_idx ON alerts (raised_at) WHERE status = 'open' AND severity = 'high' AND escalated_at IS NULL;

-- alert_events is also the delivery feed: its id is the Server-Sent Events id and the webhook
-- delivery id, and every insert is announced (after commit) on channel alert_feed.
ALTER TABLE alert_events ADD COLUMN audience text NOT NULL DEFAULT 'caseload' CHECK (audience IN ('caseload', 'supervisors'));
CREATE FUNCTION alert_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('alert_feed', NEW.id::text);
  RETURN NULL;
END
$$;
CREATE TRIGGER alert_events_feed AFTER INSERT ON alert_events FOR EACH ROW EXECUTE FUNCTION alert_events_notify();

CREATE TABLE webhooks (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id    text NOT NULL,
  owner_role  text NOT NULL CHECK (owner_role IN ('offender_manager', 'supervisor')),
  url         text NOT NULL,
  secret      text NOT NULL,
  active      boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_owner_idx ON webhooks (owner_id) WHERE active;

-- One row per (webhook, feed event): the durable record behind the BullMQ delivery job, so a
-- Redis restart loses nothing (pending rows are re-enqueued).
CREATE TABLE webhook_deliveries (
  id            bigserial PRIMARY KEY,
  webhook_id    uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  event_id      bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts      integer NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL DEFAULT now(),
  delivered_at  timestamptz,
  last_error    text,
  UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (created_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
  id           bigserial PRIMARY KEY,
  delivery_id  bigint NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
  at           timestamptz NOT NULL DEFAULT now(),
  status_code  integer,
  error        text,
  duration_ms  integer NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, at);

-- How far the dispatcher has turned feed events into webhook deliveries.
CREATE TABLE delivery_cursor (
  id        boolean PRIMARY KEY DEFAULT true CHECK (id),
  event_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO delivery_cursor DEFAULT VALUES;

-- Tag health per device, measured against the server clock (received_at).
CREATE TABLE device_health (
  device_id             text PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
  last_received_at      timestamptz,
  last_ts               timestamptz,
  last_gps_received_at  timestamptz,
  last_gps_ts           timestamptz,
  last_status_received_at timestamptz,
  strap_open            boolean NOT NULL DEFAULT false,
  case_open             boolean NOT NULL DEFAULT false,
  battery_low           boolean NOT NULL DEFAULT false,
  battery_pct           double precision,
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
