//! Change events checked against the schemas shipped in docs/ and
//! against the changes that made them.

use serde_json::Value;

use super::TopicMessage;

/// Check an event against its published JSON Schema (docs/*.schema.json,
/// generated from the event types), with a full JSON Schema validator
/// that checks formats (UUIDs, RFC 3339 times) too.
pub fn assert_matches_schema(event: &Value, schema_file: &str) {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static VALIDATORS: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        scimflow_core::event::SCHEMA_FILES
            .iter()
            .map(|(file, generate)| {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&generate())
                    .expect("a valid schema");
                (*file, validator)
            })
            .collect()
    });
    let validator = validators.get(schema_file).expect("a published schema");
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{schema_file}: {errors:?} in {event}");
}

/// Check the change topic: for every resource, events with sequences
/// 1..=n, each once, in order. Returns the number of events.
pub fn assert_one_event_per_change(
    events: &[TopicMessage],
    versions: &std::collections::HashMap<String, i64>,
) -> usize {
    use std::collections::HashMap;
    let mut seen: HashMap<String, Vec<i64>> = HashMap::new();
    let mut partition_of: HashMap<String, i32> = HashMap::new();
    let mut offset_of: HashMap<String, i64> = HashMap::new();
    for e in events {
        let v = e.json();
        assert_matches_schema(&v, "user-change-event.schema.json");
        let id = v["resource_id"].as_str().unwrap_or_default().to_string();
        let key = format!("{}/{id}", v["tenant_id"].as_str().unwrap_or_default());
        assert_eq!(
            e.key.as_deref(),
            Some(key.as_str()),
            "keyed by tenant and resource"
        );
        let first = *partition_of.entry(id.clone()).or_insert(e.partition);
        assert_eq!(first, e.partition, "one resource, one partition");
        let event_id = v["event_id"].as_str().unwrap_or_default().to_string();
        if let Some(earlier) = offset_of.insert(event_id.clone(), e.offset) {
            panic!(
                "event {event_id} is on the topic twice: partition {} offsets {earlier} and {} (headers {:?})",
                e.partition, e.offset, e.headers
            );
        }
        seen.entry(id)
            .or_default()
            .push(v["sequence"].as_i64().unwrap_or(-1));
    }
    for (id, version) in versions {
        let got = seen.get(id).cloned().unwrap_or_default();
        assert_eq!(
            got,
            (1..=*version).collect::<Vec<_>>(),
            "events of {id}: one per committed change, in order"
        );
    }
    events.len()
}
