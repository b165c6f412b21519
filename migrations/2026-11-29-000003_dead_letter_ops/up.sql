-- Dead letters get a lifecycle: open -> replaying -> replayed, or
-- open -> discarded. A key with an open or replaying dead letter is held:
-- later commands for it are dead-lettered behind it, never applied ahead.
ALTER TABLE dead_letters ADD COLUMN status text NOT NULL DEFAULT 'open'
    CHECK (status IN ('open', 'replaying', 'replayed', 'discarded'));
UPDATE dead_letters SET status = 'discarded' WHERE resolved_at IS NOT NULL;
DROP INDEX dead_letters_open_key;
CREATE INDEX dead_letters_held_key ON dead_letters (kafka_key) WHERE status IN ('open', 'replaying');
CREATE INDEX dead_letters_tenant ON dead_letters (tenant_id, id);

-- Every operator action on a dead letter.
CREATE TABLE dead_letter_actions (
    id bigserial PRIMARY KEY,
    dead_letter_id bigint NOT NULL REFERENCES dead_letters(id),
    action text NOT NULL,
    reason text,
    actor text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_letter ON dead_letter_actions (dead_letter_id, id);
