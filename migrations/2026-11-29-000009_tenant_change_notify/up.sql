-- The ingress keeps the tenants it has authenticated in memory (a lookup
-- per request was the largest cost of a read). Any change to a tenant
-- (token rotated, suspended, resumed, plan changed, deleted) tells every
-- listening ingress to forget what it holds; PostgreSQL delivers the
-- notification when the change commits.
CREATE FUNCTION scimflow_tenant_changed() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('scimflow_tenants', COALESCE(NEW.id, OLD.id)::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tenants_notify_change
  AFTER UPDATE OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION scimflow_tenant_changed();
