//! Processor metrics: batch sizes, retries, dead letters, command topic
//! lag per partition, outbox backlog, database pool use.

use std::sync::LazyLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts};

fn register<C: prometheus::core::Collector + Clone + 'static>(c: C) -> C {
    let _ = prometheus::register(Box::new(c.clone()));
    c
}

fn defined<T>(r: prometheus::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

pub static BATCH_SIZE: LazyLock<Histogram> = LazyLock::new(|| {
    register(defined(Histogram::with_opts(
        HistogramOpts::new(
            "scimflow_processor_batch_size",
            "Commands per database transaction",
        )
        .buckets(vec![
            1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
        ]),
    )))
});

pub static BATCH_SECONDS: LazyLock<Histogram> = LazyLock::new(|| {
    register(defined(Histogram::with_opts(
        HistogramOpts::new(
            "scimflow_processor_batch_duration_seconds",
            "Time to apply and commit one batch",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]),
    )))
});

pub static COMMANDS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(defined(IntCounter::new(
        "scimflow_processor_commands_total",
        "Commands applied or answered",
    )))
});

pub static RETRIES: LazyLock<IntCounter> = LazyLock::new(|| {
    register(defined(IntCounter::new(
        "scimflow_processor_batch_retries_total",
        "Failed batch attempts that were retried",
    )))
});

pub static DEAD_LETTERS: LazyLock<IntCounter> = LazyLock::new(|| {
    register(defined(IntCounter::new(
        "scimflow_processor_dead_letters_total",
        "Commands dead-lettered",
    )))
});

pub static LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    register(defined(IntGaugeVec::new(
        Opts::new(
            "scimflow_command_topic_lag",
            "Commands on the topic not yet consumed, per assigned partition",
        ),
        &["partition"],
    )))
});

pub static OUTBOX_BACKLOG: LazyLock<IntGauge> = LazyLock::new(|| {
    register(defined(IntGauge::new(
        "scimflow_outbox_backlog",
        "Committed events and dead letters not yet published",
    )))
});

/// Make every series appear from the first scrape, at zero.
pub fn init() {
    for m in [&BATCH_SIZE, &BATCH_SECONDS] {
        LazyLock::force(m);
    }
    for m in [&COMMANDS, &RETRIES, &DEAD_LETTERS] {
        LazyLock::force(m);
    }
    LazyLock::force(&LAG);
    LazyLock::force(&OUTBOX_BACKLOG);
}
