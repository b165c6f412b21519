DROP INDEX dead_letters_replay_of;
ALTER TABLE dead_letters DROP COLUMN replay_origin;
ALTER TABLE dead_letters DROP COLUMN replay_of;
