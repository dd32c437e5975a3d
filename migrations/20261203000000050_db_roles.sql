-- Up Migration
-- Two database roles (README "Security model", docs/security.md): the role running these
-- migrations owns the schema; the service runs as a member of tagwatch_runtime, which may read and
-- write the tables but not change them (no DDL, no TRUNCATE) and may only INSERT and SELECT on the
-- audit log. Deployments create tagwatch_runtime and grant it to the service's login role
-- (deploy/postgres-init.sql, scripts/stack.ts); the migration creates it when it can.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tagwatch_runtime') THEN
    CREATE ROLE tagwatch_runtime NOLOGIN;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'role tagwatch_runtime not created (%): single-role mode until a superuser creates it', SQLERRM;
END
$$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tagwatch_runtime') THEN
    RETURN;
  END IF;
  REVOKE CREATE ON SCHEMA public FROM PUBLIC;
  GRANT USAGE ON SCHEMA public TO tagwatch_runtime;
  GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tagwatch_runtime;
  GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO tagwatch_runtime;
  -- tables and sequences later migrations create (as this same owner role) get the same rights
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO tagwatch_runtime;
  ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO tagwatch_runtime;
  -- the audit log: append and read, nothing else
  REVOKE ALL ON audit_log FROM tagwatch_runtime;
  GRANT SELECT, INSERT ON audit_log TO tagwatch_runtime;
  REVOKE UPDATE ON SEQUENCE audit_log_id_seq FROM tagwatch_runtime;
  -- the migration record: the service may see which migrations ran, not change it
  REVOKE INSERT, UPDATE, DELETE ON pgmigrations FROM tagwatch_runtime;
  REVOKE ALL ON SEQUENCE pgmigrations_id_seq FROM tagwatch_runtime;
END
$$;

-- The audit log's own retention (AUDIT_RETENTION_DAYS): the owner's maintenance job deletes rows
-- older than the cutoff it sets for its transaction (SET LOCAL tagwatch.audit_purge_before); any
-- other UPDATE or DELETE, and TRUNCATE by anyone, is refused by the triggers. The runtime role
-- never reaches them: it has no DELETE, UPDATE or TRUNCATE privilege on the table.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  purge_before text := current_setting('tagwatch.audit_purge_before', true);
BEGIN
  IF TG_OP = 'DELETE' AND coalesce(purge_before, '') <> '' AND OLD.at < purge_before::timestamptz THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only';
END
$$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The database stamps each row: a role that may append cannot backdate (or postdate) an entry.
CREATE FUNCTION audit_log_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.at := now();
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_log_at_now BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_stamp();

-- Down Migration
