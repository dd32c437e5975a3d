-- Up Migration

-- The live stream bounds a resumed replay to the last 24 hours (SSE_REPLAY_HOURS): the newest
-- feed event older than that is found through this index instead of a scan of the whole history.
CREATE INDEX alert_events_at_idx ON alert_events (at, id);

-- Down Migration
DROP INDEX alert_events_at_idx;
