-- Tenants (T1-T4). The token is stored only as a SHA-256 hash (T2).
CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    features text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    token_rotated_at timestamptz
);

-- Users. `attrs` is the normalised SCIM document (every attribute but
-- active and roles); the columns beside it are derived from it on every
-- write, for identity, uniqueness and fast filters.
CREATE TABLE users (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants(id),
    user_name text NOT NULL,
    external_id text,
    primary_email text NOT NULL,          -- I1, lower-cased (I2)
    active boolean NOT NULL,
    primary_role text NOT NULL,           -- R1
    permission text NOT NULL,             -- R1
    attrs jsonb NOT NULL,
    scim_managed boolean NOT NULL,        -- false: manually provisioned (I3)
    version bigint NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    deleted_at timestamptz                -- L5: deprovisioned, kept
);
-- I2: one live user per email per tenant. I4: userName unique among live users.
CREATE UNIQUE INDEX users_live_email ON users (tenant_id, primary_email) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX users_live_user_name ON users (tenant_id, lower(user_name)) WHERE deleted_at IS NULL;
CREATE INDEX users_deleted_email ON users (tenant_id, primary_email) WHERE deleted_at IS NOT NULL;
CREATE INDEX users_external_id ON users (tenant_id, external_id);
CREATE INDEX users_listing ON users (tenant_id, created_at, id);

-- P3: one row per applied command, written in the same transaction as its
-- effect. A redelivered command finds its row and is answered from it.
CREATE TABLE processed_commands (
    command_id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    status smallint NOT NULL,
    outcome jsonb NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- History of roles, active state and identity, with the request that
-- changed them.
CREATE TABLE user_history (
    id bigserial PRIMARY KEY,
    tenant_id uuid NOT NULL,
    user_id uuid NOT NULL,
    command_id uuid,
    request_id text,
    change text NOT NULL,
    before jsonb,
    after jsonb NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_history_user ON user_history (tenant_id, user_id, id);

-- P4: commands that could not be applied.
CREATE TABLE dead_letters (
    id bigserial PRIMARY KEY,
    command_id uuid,
    tenant_id uuid,
    topic text NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset bigint NOT NULL,
    kafka_key text,
    payload bytea NOT NULL,
    reason text NOT NULL,
    attempts integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    resolution text
);
CREATE INDEX dead_letters_open_key ON dead_letters (kafka_key) WHERE resolved_at IS NULL;

-- P5: transactional outbox. A change event is a row in the transaction
-- that made the change; the relay publishes it and marks it sent.
-- Dead letters go out the same way, so that a dead letter is on its topic
-- if and only if its row committed.
CREATE TABLE outbox (
    id bigserial PRIMARY KEY,
    topic text NOT NULL,
    message_key text NOT NULL,
    payload bytea NOT NULL,
    headers jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
