//! The series the Kafka clients feed: librdkafka's statistics reports
//! (only when the operator sets `KAFKA_PROPERTY_STATISTICS_INTERVAL_MS`)
//! and the client library's version in `scimflow_build_info`. Registered
//! in the default registry, which the admin listener renders.

use std::sync::LazyLock;

use prometheus::{IntGaugeVec, Opts};

/// `scimflow_build_info{version,librdkafka} 1`: which build each replica
/// runs, for dashboards and rollouts.
pub static BUILD_INFO: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "scimflow_build_info",
            "Always 1; the labels say which build of scimflow this process runs",
        ),
        &["version", "librdkafka"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// The Kafka client library's version, as `scimflow_build_info` labels it.
pub fn client_library_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// Set `scimflow_build_info` (each role, once, when it starts).
pub fn observe_build_info() {
    BUILD_INFO
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &client_library_version()])
        .set(1);
}

pub static KAFKA_STATISTICS: LazyLock<prometheus::IntCounterVec> = LazyLock::new(|| {
    let c = prometheus::IntCounterVec::new(
        Opts::new(
            "scimflow_kafka_statistics_total",
            "librdkafka statistics reports received, by client type (only with the property statistics.interval.ms)",
        ),
        &["client"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(c.clone()));
    c
});

pub static KAFKA_BROKER_RTT: LazyLock<prometheus::GaugeVec> = LazyLock::new(|| {
    let g = prometheus::GaugeVec::new(
        Opts::new(
            "scimflow_kafka_broker_rtt_seconds",
            "Mean request round trip to each broker over the last statistics interval, by client type",
        ),
        &["client", "broker"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

pub static KAFKA_CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    let g = IntGaugeVec::new(
        Opts::new(
            "scimflow_kafka_consumer_lag",
            "Messages behind the partition's end, per consumed partition, as librdkafka last reported",
        ),
        &["topic", "partition"],
    )
    .unwrap_or_else(|e| panic!("metric definition: {e}"));
    let _ = prometheus::register(Box::new(g.clone()));
    g
});

/// Record a librdkafka statistics report (every client's context calls
/// this; reports come only when the operator sets
/// `KAFKA_PROPERTY_STATISTICS_INTERVAL_MS`).
pub(crate) fn observe_statistics(s: &rdkafka::Statistics) {
    let client = match s.client_type.as_str() {
        "producer" => "producer",
        "consumer" => "consumer",
        _ => "other",
    };
    KAFKA_STATISTICS.with_label_values(&[client]).inc();
    for broker in s.brokers.values() {
        // Bootstrap and internal entries have no node id of their own.
        if broker.nodeid < 0 {
            continue;
        }
        if let Some(rtt) = &broker.rtt {
            KAFKA_BROKER_RTT
                .with_label_values(&[client, &broker.nodename])
                .set(rtt.avg as f64 / 1e6);
        }
    }
    for (topic, t) in &s.topics {
        for p in t.partitions.values() {
            // -1: not consumed here, or not known yet; partition -1 is
            // librdkafka's internal unassigned queue.
            if p.partition >= 0 && p.consumer_lag >= 0 {
                KAFKA_CONSUMER_LAG
                    .with_label_values(&[topic.as_str(), &p.partition.to_string()])
                    .set(p.consumer_lag);
            }
        }
    }
}
