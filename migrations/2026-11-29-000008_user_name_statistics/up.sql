-- `filter=userName eq "..."` (what Okta and Entra send before every
-- create) is `lower(user_name) = lower($1)` ordered by (created_at, id)
-- with a LIMIT. PostgreSQL keeps no statistics for the expression of a
-- partial index (users_live_user_name), guessed that 0.5% of a tenant's
-- users match, and walked users_listing in order filtering every row:
-- 460 ms to 1.9 s per lookup in a tenant of 1.2 million users. With
-- statistics on the expression it knows one row matches and uses the
-- unique index: 0.6 ms.
CREATE STATISTICS users_lower_user_name ON (lower(user_name)) FROM users;
-- Gather them now where there are users to gather them from. An empty
-- table is left never analyzed: PostgreSQL then assumes it may be
-- growing. Statistics saying "empty" made the statements the processor
-- prepares during a new installation's first sync (the email and userName
-- checks) scan the table, and keep scanning it as it grew, until
-- autovacuum analyzed it: 35,000 scans reading 609 million rows in the
-- first 150,000 /Bulk creates; left unanalyzed, 8 scans reading none.
-- (Installations that already ran this migration are past that point.)
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM users) THEN
    ANALYZE users;
  END IF;
END
$$;
