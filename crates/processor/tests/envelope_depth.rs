//! Every body the ingress accepts decodes in the processor (which reads a
//! payload with `CommandEnvelope::decode`, then checks its key): a body nested
//! `MAX_JSON_DEPTH` levels (the most `scim::json::check_depth` lets
//! through) decodes in its envelope, alone and inside a /Bulk wave's
//! `CommandBatch`, with room to spare under serde_json's limit.

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;

use scimflow_shared::command::{
    Command, CommandBatch, CommandEnvelope, ReplyShape, ENVELOPE_NESTING, ENVELOPE_VERSION,
};
use scimflow_shared::scim::json::{check_depth, MAX_JSON_DEPTH, SERDE_JSON_MAX_DEPTH};

/// A user body whose deepest value sits `depth` levels down.
fn body(depth: usize) -> Value {
    let deep = (1..depth).fold(json!("leaf"), |v, _| json!([v]));
    json!({"userName": "deep@x.example", "x": deep})
}

fn envelope(body: Value) -> Vec<u8> {
    let env = CommandEnvelope {
        v: ENVELOPE_VERSION,
        command_id: Uuid::now_v7(),
        tenant_id: Uuid::now_v7(),
        request_id: "r".into(),
        accepted_at: Utc::now(),
        base_url: "http://x".into(),
        if_match: None,
        reply: ReplyShape::Whole,
        command: Command::CreateUser {
            user_id: Uuid::now_v7(),
            body,
        },
    };
    serde_json::to_vec(&env).expect("encodes")
}

#[test]
fn the_deepest_accepted_body_decodes_in_its_envelope() {
    let deepest = body(MAX_JSON_DEPTH);
    let bytes = serde_json::to_vec(&deepest).expect("encodes");
    assert!(check_depth(&bytes).is_ok(), "the ingress accepts it");
    let deeper = serde_json::to_vec(&body(MAX_JSON_DEPTH + 1)).expect("encodes");
    assert!(check_depth(&deeper).is_err(), "and nothing deeper");

    let payload = envelope(deepest.clone());
    let env = CommandEnvelope::decode(&payload).expect("the processor decodes it alone");
    assert!(matches!(env.command, Command::CreateUser { ref body, .. } if *body == deepest));

    let batch = CommandBatch::encode([("k", payload.as_slice())]).expect("encodes");
    let split = CommandBatch::split(&batch).expect("splits");
    let (_, one) = split.first().expect("one command");
    CommandEnvelope::decode(one).expect("and from a CommandBatch");
}

/// What the limit guards against: a body as deep as serde_json alone
/// accepts (what the ingress let through before) does not decode once
/// the envelope wraps it.
#[test]
fn a_body_serde_json_accepts_alone_may_not_decode_wrapped() {
    assert_eq!(ENVELOPE_NESTING, 2);
    let limit = body(SERDE_JSON_MAX_DEPTH);
    let bytes = serde_json::to_vec(&limit).expect("encodes");
    assert!(
        serde_json::from_slice::<Value>(&bytes).is_ok(),
        "decodes alone"
    );
    let err = CommandEnvelope::decode(&envelope(limit)).expect_err("too deep in the envelope");
    assert!(err.contains("recursion limit"), "{err}");
}
