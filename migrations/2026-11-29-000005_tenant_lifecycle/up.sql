-- Tenant lifecycle: a suspended tenant's token gets 401 and its queued
-- commands are held (as dead letters, replayed on resume); a deleted
-- tenant's data is purged and its token never works again.
ALTER TABLE tenants ADD COLUMN suspended_at timestamptz;
ALTER TABLE tenants ADD COLUMN deleted_at timestamptz;
