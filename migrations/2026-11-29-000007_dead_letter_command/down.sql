DROP INDEX dead_letters_command;
