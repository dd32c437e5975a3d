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

-- OpenID Connect sign-ins under way: the state, nonce and PKCE verifier of one authorization
-- request, keyed by the SHA-256 of a random cookie token; used once, kept at most 10 minutes.
CREATE TABLE console_sign_ins (
  token_hash    text PRIMARY KEY,
  state         text NOT NULL,
  nonce         text NOT NULL,
  verifier      text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE IF EXISTS console_sign_ins;
DROP TABLE IF EXISTS console_sessions;
