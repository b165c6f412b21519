//! A downstream service reading scimflow's user change events
//! (docs/events.md): joins a consumer group, skips events it has already
//! handled (by `event_id`), notices gaps in a resource's `sequence`,
//! forgets a tenant when it is deleted (`tenant.deleted`), and commits
//! offsets after handling each event.
//!
//! ```sh
//! set -a; . .local/stack.env; set +a
//! cargo run --example change_consumer
//! ```

use std::collections::{HashMap, HashSet};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:59092".into());
    let prefix = std::env::var("SCIMFLOW_TOPIC_PREFIX").unwrap_or_else(|_| "scimflow".into());
    let topic = format!("{prefix}.user-changes");
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "example-downstream-service")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("broker.address.family", "v4")
        .create()?;
    consumer.subscribe(&[&topic])?;
    println!("reading {topic} on {brokers}; Ctrl-C to stop");

    // A real service keeps these in its own database, updated in the same
    // transaction as whatever it does with the event.
    let mut handled: HashSet<String> = HashSet::new();
    let mut last_sequence: HashMap<(String, String), i64> = HashMap::new();
    loop {
        let msg = consumer.recv().await?;
        let Some(payload) = msg.payload() else {
            continue;
        };
        let event: Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                eprintln!(
                    "skipping an undecodable event at offset {}: {e}",
                    msg.offset()
                );
                continue;
            }
        };
        let event_id = event["event_id"].as_str().unwrap_or_default().to_string();
        if !handled.insert(event_id.clone()) {
            continue; // seen before: re-read after a rebalance
        }
        let tenant = event["tenant_id"].as_str().unwrap_or_default().to_string();
        if event["type"] == "tenant.deleted" {
            // Every user of the tenant is gone, without an event each: a
            // real service deletes what it kept of them here.
            last_sequence.retain(|(t, _), _| *t != tenant);
            println!(
                "{} tenant.deleted {tenant}: forgetting its users",
                event["occurred_at"].as_str().unwrap_or_default()
            );
            consumer.commit_message(&msg, CommitMode::Async)?;
            continue;
        }
        let resource = event["resource_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let sequence = event["sequence"].as_i64().unwrap_or(0);
        if let Some(last) = last_sequence.insert((tenant, resource.clone()), sequence) {
            if sequence != last + 1 {
                eprintln!("user {resource}: sequence {last} then {sequence}; fetch it from SCIM to resynchronise");
            }
        }
        if event["truncated"] == true {
            eprintln!("user {resource}: event {event_id} was too large to carry the user; fetch it from SCIM");
        }
        println!(
            "{} {} {} roles={} active={}",
            event["occurred_at"].as_str().unwrap_or_default(),
            event["type"].as_str().unwrap_or_default(),
            resource,
            event["resource"]["roles"],
            event["resource"]["active"],
        );
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}
