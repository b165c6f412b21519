CREATE INDEX users_deleted_email ON users (tenant_id, primary_email) WHERE deleted_at IS NOT NULL;
DROP INDEX users_email;
