DROP TABLE activity;
DROP INDEX tenants_external_ref;
ALTER TABLE tenants DROP COLUMN external_ref;
