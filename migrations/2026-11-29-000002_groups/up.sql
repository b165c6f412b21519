-- Groups (L6), managed only through SCIM. Membership is one row per member
-- so that a PATCH touches only the rows it names, whatever the group's size.
CREATE TABLE groups (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id),
    display_name text NOT NULL,
    external_id text,
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX groups_display_name ON groups (tenant_id, lower(display_name));
CREATE INDEX groups_listing ON groups (tenant_id, created_at, id);

CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users(id),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);
