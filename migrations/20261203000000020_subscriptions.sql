-- Up Migration

-- Subscriptions expire and can be revoked (finding 11 of issue 9). Rows that exist when this
-- runs get 90 days from now; the service sets expires_at from SUBSCRIPTION_DAYS.
-- Webhook secrets are stored encrypted (secret_enc, AES-256-GCM with SECRETS_KEY, see
-- alerts/secrets.ts); `secret` keeps a plaintext secret of an older version only until the
-- service's next start-up encrypts it and clears the column.
ALTER TABLE webhooks
  ALTER COLUMN secret DROP NOT NULL,
  ADD COLUMN secret_enc text,
  ADD COLUMN expires_at timestamptz NOT NULL DEFAULT now() + interval '90 days',
  ADD COLUMN renewed_at timestamptz,
  ADD COLUMN revoked_at timestamptz,
  ADD COLUMN revoked_by text,
  ADD CONSTRAINT webhooks_secret_present CHECK (secret IS NOT NULL OR secret_enc IS NOT NULL);

ALTER TABLE notification_contacts
  ADD COLUMN expires_at timestamptz NOT NULL DEFAULT now() + interval '90 days';

-- Down Migration
ALTER TABLE notification_contacts DROP COLUMN expires_at;
ALTER TABLE webhooks
  DROP CONSTRAINT webhooks_secret_present,
  DROP COLUMN revoked_by,
  DROP COLUMN revoked_at,
  DROP COLUMN renewed_at,
  DROP COLUMN expires_at,
  DROP COLUMN secret_enc;
