ALTER TABLE tenants DROP COLUMN deleted_at;
ALTER TABLE tenants DROP COLUMN suspended_at;
