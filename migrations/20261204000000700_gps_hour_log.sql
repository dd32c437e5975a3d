-- Up Migration
-- Change log of GPS readings by hour of device time, for the crime matcher's resident trail cache
-- (crime/trail-cache.ts). Every transaction that stores a GPS reading leaves one row per hour it
-- wrote to, (hour, its transaction id): a cache built from a snapshot S knows an hour is unchanged
-- while every row of that hour has a transaction id visible in S (pg_visible_in_snapshot). Rows
-- are only ever added (primary key with the transaction id: concurrent ingest transactions never
-- wait for each other); `compactGpsHourLog` folds old rows into one row of its own transaction.
-- Any DELETE statement on readings (retention, erasure) moves `readings_delete_epoch` forward,
-- which makes every cache built before it stale.
CREATE TABLE gps_hour_log (
  hour  timestamptz NOT NULL,
  xid   xid8 NOT NULL,
  PRIMARY KEY (hour, xid)
);

CREATE TABLE readings_delete_epoch (
  id   boolean PRIMARY KEY DEFAULT true CHECK (id),
  xid  xid8 NOT NULL
);
INSERT INTO readings_delete_epoch (id, xid) VALUES (true, pg_current_xact_id());

-- The hours already logged by this transaction are kept in a transaction-local setting, so a
-- batch of readings in one hour costs one row insert, not one per reading.
CREATE FUNCTION gps_hour_log_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  h text := extract(epoch FROM date_trunc('hour', NEW.ts, 'UTC'))::bigint::text;
  seen text := coalesce(current_setting('tagwatch.gps_hours', true), '');
BEGIN
  IF position(',' || h || ',' IN seen) = 0 THEN
    INSERT INTO gps_hour_log (hour, xid) VALUES (to_timestamp(h::bigint), pg_current_xact_id()) ON CONFLICT DO NOTHING;
    PERFORM set_config('tagwatch.gps_hours', CASE WHEN seen = '' THEN ',' ELSE seen END || h || ',', true);
  END IF;
  RETURN NULL;
END
$$;

CREATE FUNCTION readings_delete_epoch_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE readings_delete_epoch SET xid = pg_current_xact_id();
  RETURN NULL;
END
$$;

CREATE TRIGGER readings_gps_hour_log AFTER INSERT ON readings FOR EACH ROW WHEN (NEW.stream = 'gps') EXECUTE FUNCTION gps_hour_log_touch();
CREATE TRIGGER readings_delete_epoch AFTER DELETE ON readings FOR EACH STATEMENT EXECUTE FUNCTION readings_delete_epoch_touch();

-- Down Migration
DROP TRIGGER IF EXISTS readings_delete_epoch ON readings;
DROP TRIGGER IF EXISTS readings_gps_hour_log ON readings;
DROP FUNCTION IF EXISTS readings_delete_epoch_touch();
DROP FUNCTION IF EXISTS gps_hour_log_touch();
DROP TABLE IF EXISTS readings_delete_epoch;
DROP TABLE IF EXISTS gps_hour_log;
