-- Up Migration
-- The supervisor's console lists (issue 11): escalated alerts nobody has acknowledged, oldest
-- escalation first, and drinking events and tampers pending review, oldest first. Partial
-- indexes: each list is a small slice of the alerts table.
CREATE INDEX alerts_escalated_open_idx ON alerts (escalated_at) WHERE status = 'open' AND escalated_at IS NOT NULL;
CREATE INDEX alerts_review_pending_idx ON alerts (started_at) WHERE review_status = 'pending';

-- Down Migration
DROP INDEX IF EXISTS alerts_review_pending_idx;
DROP INDEX IF EXISTS alerts_escalated_open_idx;
