//! Change events checked against the schemas shipped in docs/ and
//! against the changes that made them.

use serde_json::Value;

use super::TopicMessage;

/// Check an event against the shipped JSON Schema (docs/*.schema.json):
/// required fields present, enumerated values known.
pub fn assert_matches_schema(event: &Value, schema_file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(schema_file);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
        .expect("schema JSON");
    for field in schema["required"].as_array().expect("required") {
        let field = field.as_str().unwrap_or_default();
        assert!(
            event.get(field).is_some(),
            "{schema_file}: {field} missing in {event}"
        );
    }
    let allowed = |prop: &str| {
        schema["properties"][prop]["enum"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        allowed("type").contains(&event["type"]),
        "{schema_file}: unknown type in {event}"
    );
    let changed = schema["properties"]["changed"]["items"]["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in event["changed"].as_array().cloned().unwrap_or_default() {
        assert!(changed.contains(&c), "{schema_file}: unknown change {c}");
    }
    assert_eq!(event["schema_version"], 1);
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
