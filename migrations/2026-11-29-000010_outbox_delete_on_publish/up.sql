-- The relay deletes what it has published instead of marking it: two
-- updates per row (attempted, then published) rewrote every change event
-- twice, and published rows piled up for no reader. What the relay is
-- publishing is now one row here, written before the first message goes
-- to the broker, so a relay taking over knows which rows may be on their
-- topics already (ids in the range that are still in the outbox).
CREATE TABLE outbox_attempt (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    first_id bigint NOT NULL,
    last_id bigint NOT NULL,
    attempted_at timestamptz NOT NULL
);
INSERT INTO outbox_attempt (first_id, last_id, attempted_at)
SELECT min(id), max(id), max(attempted_at) FROM outbox
WHERE published_at IS NULL AND attempted_at IS NOT NULL
HAVING count(*) > 0;
DELETE FROM outbox WHERE published_at IS NOT NULL;
-- Drops the partial index on unpublished rows with it: every row is.
ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN attempted_at;
