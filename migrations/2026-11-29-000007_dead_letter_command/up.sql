-- A status monitor (Prefer: respond-async) that finds no outcome looks for
-- a dead letter of the command; replays mark letters by command id too.
CREATE INDEX dead_letters_command ON dead_letters (command_id);
