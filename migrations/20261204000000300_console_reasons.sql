-- Up Migration
-- A supervisor's stated reason for opening one record in the console (docs/console.md, "Live"):
-- given once on the reason form (POST), then each GET of the record within 15 minutes is shown
-- and audited with it. Bound to the session that gave it (another session cannot use it) and
-- removed with the session (sign-out, expiry) or by the worker's console housekeeping.
CREATE TABLE console_reasons (
  session_hash  text NOT NULL REFERENCES console_sessions (token_hash) ON DELETE CASCADE,
  record_kind   text NOT NULL CHECK (record_kind IN ('alert', 'subject')),
  record_id     text NOT NULL,
  reason        text NOT NULL,
  given_at      timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (session_hash, record_kind, record_id)
);
CREATE INDEX console_reasons_expires_idx ON console_reasons (expires_at);

-- Down Migration
DROP TABLE IF EXISTS console_reasons;
