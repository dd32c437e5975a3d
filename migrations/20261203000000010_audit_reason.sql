-- Up Migration

-- The reason the caller gave for an access (X-Tagwatch-Reason, DPA 2018 s.62), when any.
ALTER TABLE audit_log ADD COLUMN reason text CHECK (char_length(reason) BETWEEN 3 AND 500);

-- Down Migration
ALTER TABLE audit_log DROP COLUMN reason;
