DROP TRIGGER tenants_notify_change ON tenants;
DROP FUNCTION scimflow_tenant_changed();
