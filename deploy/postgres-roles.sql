-- The two database roles of a deployment (README "Security model", docs/security.md), run once by
-- the superuser when the database is created (deploy/postgres-init.sh, docker-compose.yml):
--   tagwatch_owner   owns the schema: runs the migrations (MIGRATION_DATABASE_URL) and the
--                    worker's retention job;
--   tagwatch_app     the service (DATABASE_URL), a member of tagwatch_runtime, to which the
--                    migrations grant read and write on the tables and only INSERT and SELECT on
--                    audit_log: no TRUNCATE, no DDL.
-- psql variables: owner_password, app_password, db.
\set ON_ERROR_STOP on
CREATE ROLE tagwatch_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
CREATE ROLE tagwatch_runtime NOLOGIN;
CREATE ROLE tagwatch_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password' IN ROLE tagwatch_runtime;
ALTER DATABASE :"db" OWNER TO tagwatch_owner;
-- extensions need the superuser; the owner's migrations then find them in place
\c :"db"
CREATE EXTENSION IF NOT EXISTS timescaledb;
