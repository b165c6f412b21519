DROP TABLE outbox;
DROP TABLE dead_letters;
DROP TABLE user_history;
DROP TABLE processed_commands;
DROP TABLE users;
DROP TABLE tenants;
