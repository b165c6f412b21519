ALTER TABLE outbox DROP COLUMN attempted_at;
