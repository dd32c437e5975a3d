-- Up Migration

-- The device-time range and fix count of the device's last live reads (fixes after the
-- watermark, no replay): fixes with ts in (live_from, watermark], counted with the read's own
-- filter (gps readings joined to the assignment fitted at their time). A dirty mark that falls
-- in that range is covered when the range still holds live_count fixes: its fixes were
-- committed before the read and have been evaluated, so no replay is needed. Both are null
-- when no live range is known (never evaluated live, or after a replay).
ALTER TABLE geofence_progress
  ADD COLUMN live_from  timestamptz,
  ADD COLUMN live_count integer CHECK (live_count >= 0);

-- Down Migration

ALTER TABLE geofence_progress DROP COLUMN live_from, DROP COLUMN live_count;
