-- Up Migration

-- A replay (late fixes re-evaluated from a clear state) that spans more than one evaluation
-- chunk commits chunk by chunk: while one is under way, `replay_from` is where it started (the
-- device time curfew absence counts from) and `replay_cursor` the device time of the last fix
-- it has evaluated. Both are null when no replay is under way.
ALTER TABLE geofence_progress
  ADD COLUMN replay_from   timestamptz,
  ADD COLUMN replay_cursor timestamptz;

-- Down Migration

ALTER TABLE geofence_progress DROP COLUMN replay_from, DROP COLUMN replay_cursor;
