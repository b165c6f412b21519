// The tables of migrations/, as diesel sees them. Kept by hand (no
// diesel_cli here); `store::tests` checks it against the migrated database.

diesel::table! {
    tenants (id) {
        id -> Uuid,
        name -> Text,
        token_hash -> Text,
        features -> Array<Text>,
        created_at -> Timestamptz,
        token_rotated_at -> Nullable<Timestamptz>,
        suspended_at -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
        external_ref -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        user_name -> Text,
        external_id -> Nullable<Text>,
        primary_email -> Text,
        active -> Bool,
        primary_role -> Text,
        permission -> Text,
        attrs -> Jsonb,
        scim_managed -> Bool,
        version -> BigInt,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    processed_commands (command_id) {
        command_id -> Uuid,
        tenant_id -> Uuid,
        status -> SmallInt,
        outcome -> Jsonb,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    user_history (id) {
        id -> BigInt,
        tenant_id -> Uuid,
        user_id -> Uuid,
        command_id -> Nullable<Uuid>,
        request_id -> Nullable<Text>,
        change -> Text,
        before -> Nullable<Jsonb>,
        after -> Jsonb,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> BigInt,
        command_id -> Nullable<Uuid>,
        tenant_id -> Nullable<Uuid>,
        topic -> Text,
        kafka_partition -> Integer,
        kafka_offset -> BigInt,
        kafka_key -> Nullable<Text>,
        payload -> Bytea,
        reason -> Text,
        attempts -> Integer,
        created_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        resolution -> Nullable<Text>,
        status -> Text,
        replay_of -> Nullable<BigInt>,
        replay_origin -> Nullable<BigInt>,
    }
}

diesel::table! {
    dead_letter_actions (id) {
        id -> BigInt,
        dead_letter_id -> BigInt,
        action -> Text,
        reason -> Nullable<Text>,
        actor -> Text,
        occurred_at -> Timestamptz,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        topic -> Text,
        message_key -> Text,
        payload -> Bytea,
        headers -> Jsonb,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    outbox_attempt (singleton) {
        singleton -> Bool,
        first_id -> BigInt,
        last_id -> BigInt,
        attempted_at -> Timestamptz,
    }
}

diesel::table! {
    groups (id) {
        id -> Uuid,
        tenant_id -> Uuid,
        display_name -> Text,
        external_id -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Uuid,
        user_id -> Uuid,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    activity (id) {
        id -> BigInt,
        tenant_id -> Uuid,
        occurred_at -> Timestamptz,
        method -> Text,
        resource_type -> Nullable<Text>,
        resource_id -> Nullable<Text>,
        status -> SmallInt,
        request_id -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        scim_type -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    console_sessions (id_hash) {
        id_hash -> Text,
        actor -> Text,
        csrf_token -> Text,
        admin_token -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    users,
    processed_commands,
    user_history,
    dead_letters,
    outbox,
    outbox_attempt,
    groups,
    group_members,
    dead_letter_actions,
    activity,
    console_sessions,
);
