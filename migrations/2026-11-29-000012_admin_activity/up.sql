-- The product's own reference for a tenant (its organisation id): creating
-- a tenant with a reference a live tenant already has returns that tenant.
ALTER TABLE tenants ADD COLUMN external_ref text;
CREATE UNIQUE INDEX tenants_external_ref ON tenants (external_ref)
  WHERE external_ref IS NOT NULL AND deleted_at IS NULL;

-- The activity log: one row per SCIM request of an authenticated tenant,
-- written in batches by the ingress and pruned by rows per tenant and age.
-- No bodies and no tokens: what was asked, what was answered, and why a
-- request was refused.
CREATE TABLE activity (
  id bigserial PRIMARY KEY,
  tenant_id uuid NOT NULL,
  occurred_at timestamptz NOT NULL,
  method text NOT NULL,
  resource_type text,
  resource_id text,
  status smallint NOT NULL,
  request_id text,
  user_id uuid,
  scim_type text,
  detail text
);
-- Newest first per tenant (listing, per-tenant pruning, the status counts).
CREATE INDEX activity_tenant_id ON activity (tenant_id, id DESC);
CREATE INDEX activity_tenant_user ON activity (tenant_id, user_id, id DESC) WHERE user_id IS NOT NULL;
-- Pruning by age.
CREATE INDEX activity_occurred_at ON activity (occurred_at);
