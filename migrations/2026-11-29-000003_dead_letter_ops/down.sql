DROP TABLE dead_letter_actions;
DROP INDEX dead_letters_tenant;
DROP INDEX dead_letters_held_key;
CREATE INDEX dead_letters_open_key ON dead_letters (kafka_key) WHERE resolved_at IS NULL;
ALTER TABLE dead_letters DROP COLUMN status;
