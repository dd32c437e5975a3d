-- Up Migration

-- Where a user wants alert emails (set by the user, PUT /v1/me/notifications). The role is the
-- one the user had when setting it: managers get their caseload's raises, supervisors escalations.
CREATE TABLE notification_contacts (
  user_id     text PRIMARY KEY,
  role        text NOT NULL CHECK (role IN ('offender_manager', 'supervisor')),
  email       text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, feed event) to be emailed, written before the BullMQ job, as webhooks.
CREATE TABLE email_deliveries (
  id            bigserial PRIMARY KEY,
  user_id       text NOT NULL,
  email         text NOT NULL,
  event_id      bigint NOT NULL REFERENCES alert_events (id) ON DELETE CASCADE,
  created_at    timestamptz NOT NULL DEFAULT now(),
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts      integer NOT NULL DEFAULT 0,
  last_error    text,
  delivered_at  timestamptz,
  UNIQUE (user_id, event_id)
);
CREATE INDEX email_deliveries_pending_idx ON email_deliveries (created_at) WHERE status = 'pending';

-- How far the email dispatcher has read the alert feed. It starts at the feed's end, so turning
-- email on never mails the past.
CREATE TABLE email_cursor (
  id        boolean PRIMARY KEY DEFAULT true CHECK (id),
  event_id  bigint NOT NULL DEFAULT 0
);
INSERT INTO email_cursor (event_id) SELECT coalesce(max(id), 0) FROM alert_events;

-- Down Migration
DROP TABLE email_cursor;
DROP TABLE email_deliveries;
DROP TABLE notification_contacts;
