-- A create looks its email up among live and deleted users at once (I3,
-- L5); the partial indexes could not serve that lookup, so every create
-- scanned the tenant's users.
CREATE INDEX users_email ON users (tenant_id, primary_email);
DROP INDEX users_deleted_email;
