-- A replayed command that fails again is a new dead letter; it names the
-- letter it was replayed from, so `dlq show` tells the story, and a key's
-- later letters stay held behind it in their original order.
ALTER TABLE dead_letters ADD COLUMN replay_of bigint REFERENCES dead_letters(id);
-- The first letter of that chain of replays: a letter takes its key's
-- order at coalesce(replay_origin, id), where its command first failed.
ALTER TABLE dead_letters ADD COLUMN replay_origin bigint REFERENCES dead_letters(id);
CREATE INDEX dead_letters_replay_of ON dead_letters (replay_of) WHERE replay_of IS NOT NULL;
