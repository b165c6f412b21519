ALTER TABLE outbox ADD COLUMN published_at timestamptz, ADD COLUMN attempted_at timestamptz;
UPDATE outbox SET attempted_at = a.attempted_at
FROM outbox_attempt a WHERE outbox.id BETWEEN a.first_id AND a.last_id;
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
DROP TABLE outbox_attempt;
