-- When the relay started publishing a row. A row attempted but not marked
-- published may be on its topic already; the next relay finds out before
-- publishing it again.
ALTER TABLE outbox ADD COLUMN attempted_at timestamptz;
