-- Up Migration
-- Console sessions (contract 1.1 §9): server-side, keyed by the SHA-256 of the cookie's random
-- token (a stolen table gives no usable cookie). A session ends at sign-out, after 8 hours
-- without a request (idle) or 12 hours after sign-in (absolute), whichever comes first.
CREATE TABLE console_sessions (
  token_hash    text PRIMARY KEY,
  user_id       text NOT NULL,
  role          text NOT NULL,
  csrf_token    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_expires_idx ON console_sessions (expires_at);

-- Down Migration
DROP TABLE IF EXISTS console_sessions;
