//! What an orchestrator sees: health and readiness on the admin listeners.

use std::time::Duration;

use serde_json::Value;

use crate::common::{eventually, free_port, Stack};

/// `GET path` on an admin listener: the status and the body.
async fn admin_get(stack: &Stack, port: u16, path: &str) -> Option<(u16, String)> {
    let r = stack
        .http
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.ok()?))
}

/// The `/readyz` body once it has `status`, polled with a deadline.
async fn readyz_reaches(stack: &Stack, port: u16, status: &str) -> Value {
    eventually(
        &format!("/readyz on port {port} to say {status}"),
        Duration::from_secs(120),
        || async move {
            let (code, body) = admin_get(stack, port, "/readyz").await?;
            let body: Value = serde_json::from_str(&body).ok()?;
            (body["status"] == status).then(|| {
                let ok = status == "ready" || status == "idle";
                assert_eq!(code, if ok { 200 } else { 503 }, "{body}");
                body
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listeners_answer_health_and_readiness_for_both_roles() {
    let (stack, ingress_admin) = Stack::new("health").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let (stack, first_admin) = stack.with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    // One partition: a second processor in the group has nothing to do.
    let mut stack = stack
        .with_env("SCIMFLOW_COMMAND_PARTITIONS", "1")
        .started()
        .await;
    for port in [ingress_admin, first_admin] {
        assert_eq!(
            admin_get(&stack, port, "/healthz").await,
            Some((200, "ok".into())),
            "port {port}"
        );
    }
    readyz_reaches(&stack, ingress_admin, "ready").await;
    let body = readyz_reaches(&stack, first_admin, "ready").await;
    assert_eq!(body["partitions"], serde_json::json!([0]), "{body}");

    // A second member, on an admin port of its own.
    let second_admin = free_port();
    stack
        .env
        .retain(|(k, _)| k != "SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    stack.env.push((
        "SCIMFLOW_PROCESSOR_ADMIN_ADDR".into(),
        format!("127.0.0.1:{second_admin}"),
    ));
    stack.spawn_processor();
    // The group decides which member keeps partition 0; the other one
    // reports itself idle, and says why.
    let (idle, busy) = eventually(
        "one processor ready with partition 0 and the other idle",
        Duration::from_secs(120),
        || async {
            let mut states = Vec::new();
            for port in [first_admin, second_admin] {
                let (code, body) = admin_get(&stack, port, "/readyz").await?;
                states.push((code, serde_json::from_str::<Value>(&body).ok()?));
            }
            let find = |s: &str| states.iter().find(|(_, b)| b["status"] == s).cloned();
            Some((find("idle")?, find("ready")?))
        },
    )
    .await;
    assert_eq!(idle.0, 200, "an idle standby is not a failure: {idle:?}");
    assert_eq!(
        idle.1["reason"], "more group members than partitions",
        "{idle:?}"
    );
    assert_eq!(busy.0, 200);
    assert_eq!(busy.1["partitions"], serde_json::json!([0]), "{busy:?}");
}

/// A librdkafka property set through the configuration reaches the
/// producer and both kinds of consumer, seen from outside: with
/// `statistics.interval.ms` set, each client reports statistics, and each
/// role counts them by client type. (Without it librdkafka reports none.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_properties_pass_through_to_every_client() {
    let (stack, ingress_admin) = Stack::new("passthrough").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let (stack, processor_admin) = stack.with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    let stack = stack
        .with_env("KAFKA_PROPERTY_STATISTICS_INTERVAL_MS", "200")
        .started()
        .await;
    // The ingress: its producer and its reply consumer (outside any
    // group); the processor: its producer and its group consumer.
    for (role, port) in [("ingress", ingress_admin), ("processor", processor_admin)] {
        for client in ["producer", "consumer"] {
            let series = format!("scimflow_kafka_statistics_total{{client=\"{client}\"}}");
            eventually(
                &format!("the {role}'s {client} to report statistics"),
                Duration::from_secs(60),
                || async {
                    let metrics = stack.metrics(port).await;
                    metrics
                        .lines()
                        .find_map(|l| l.strip_prefix(series.as_str()))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .filter(|n| *n > 0)
                },
            )
            .await;
        }
    }
}

/// The value of the first series line starting with `prefix`.
fn series(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

/// Both roles say which build they run and report their process's
/// resources; by default the request series carry no tenant ids, so their
/// number does not grow with tenants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_info_and_process_series_on_both_roles_and_no_tenant_label_by_default() {
    let (stack, ingress_admin) = Stack::new("build_info").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let (stack, processor_admin) = stack.with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    let stack = stack.started().await;
    let t = stack.tenant("");
    assert_eq!(t.get("/Users").await.status, 200);
    for port in [ingress_admin, processor_admin] {
        let metrics = stack.metrics(port).await;
        let build = format!(
            "scimflow_build_info{{librdkafka=\"{}\",version=\"{}\"}}",
            scimflow_bus::stats::client_library_version(),
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(series(&metrics, &build), Some(1.0), "{build} in\n{metrics}");
        let rss = series(&metrics, "process_resident_memory_bytes ").unwrap_or_default();
        assert!(rss > 1_000_000.0, "resident memory {rss} in\n{metrics}");
        assert!(
            series(&metrics, "process_cpu_seconds_total ").is_some(),
            "{metrics}"
        );
    }
    let ingress = stack.metrics(ingress_admin).await;
    let listed = "scimflow_http_requests_total{method=\"GET\",route=\"/scim/v2/{tenant_id}/Users\",status=\"200\",tenant=\"\"}";
    assert_eq!(
        series(&ingress, listed),
        Some(1.0),
        "{listed} in\n{ingress}"
    );
    assert!(!ingress.contains(&t.id.to_string()), "{ingress}");
}

/// A role that PostgreSQL lets in only over TLS: the pipeline writes and
/// reads through it with the server's certificate verified against the
/// test CA, and the same role without TLS is turned away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_runs_over_postgres_tls_with_a_verified_certificate() {
    use diesel::Connection;

    let ca = std::env::var("SCIMFLOW_TEST_PG_CA")
        .expect("SCIMFLOW_TEST_PG_CA is not set: run the end-to-end tests through ./scripts/test");
    let stack = Stack::new("pg_tls");
    // postgres://scimflow@127.0.0.1:<port>/<db> as the TLS-only role.
    let tls_url = |mode: &str| {
        let url = stack.db_url.replacen("://scimflow@", "://scimflow_tls@", 1);
        format!("{url}?sslmode={mode}&sslrootcert={ca}")
    };
    let refused = diesel::PgConnection::establish(&tls_url("disable"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("pg_hba.conf rejects connection") && refused.contains("no encryption"),
        "a connection without TLS: {refused:?}"
    );
    diesel::PgConnection::establish(&tls_url("verify-full"))
        .expect("the role connects over TLS, the certificate verified");

    let url = tls_url("verify-full");
    let stack = stack.with_env("DATABASE_URL", &url).started().await;
    let t = stack.tenant("");
    let created = t
        .post(
            "/Users",
            &serde_json::json!({"userName": "tls@x.example", "emails": [{"value": "tls@x.example"}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    let read = t.get(&format!("/Users/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["userName"], "tls@x.example");
    // Every connection the services hold is that role's, over TLS.
    let plain = stack.count(
        "SELECT count(*) AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.usename = 'scimflow_tls' AND NOT s.ssl",
    );
    let encrypted = stack.count(
        "SELECT count(*) AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.usename = 'scimflow_tls' AND s.ssl",
    );
    assert_eq!(plain, 0);
    assert!(encrypted >= 2, "{encrypted} TLS connections");
}

/// SASL through the passthrough, against a broker that admits only
/// authenticated clients (SCRAM-SHA-512; tansu 0.6 cannot terminate TLS,
/// so SASL_SSL itself is not exercised here): with the right password the
/// pipeline writes and reads; a wrong one gets no metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_authenticates_to_the_broker_with_sasl_scram() {
    use scimflow_bus as bus;

    let sasl = std::env::var("SCIMFLOW_TEST_KAFKA_SASL").expect(
        "SCIMFLOW_TEST_KAFKA_SASL is not set: run the end-to-end tests through ./scripts/test",
    );
    let password = "scimflow-test-password";
    let metadata_with = |password: &str| {
        let kafka = bus::KafkaSettings::new(&sasl)
            .with_property("security.protocol", "SASL_PLAINTEXT")
            .with_property("sasl.mechanisms", "SCRAM-SHA-512")
            .with_property("sasl.username", "scimflow")
            .with_property("sasl.password", password);
        async move { bus::Publisher::authenticates(&kafka, Duration::from_secs(5)).await }
    };
    assert!(
        metadata_with("not-the-password").await.is_err(),
        "a wrong password got metadata"
    );
    metadata_with(password)
        .await
        .expect("metadata with the right password");

    let stack = Stack::new("sasl")
        .with_env("KAFKA_BROKERS", &sasl)
        .with_env("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .with_env("KAFKA_PROPERTY_SASL_MECHANISMS", "SCRAM-SHA-512")
        .with_env("KAFKA_PROPERTY_SASL_USERNAME", "scimflow")
        .with_env("KAFKA_PROPERTY_SASL_PASSWORD", password)
        .started()
        .await;
    let t = stack.tenant("");
    let created = t
        .post(
            "/Users",
            &serde_json::json!({"userName": "sasl@x.example", "emails": [{"value": "sasl@x.example"}]}),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(t.get(&format!("/Users/{id}")).await.status, 200);
    for role in ["ingress", "processor0"] {
        let log = std::fs::read_to_string(stack.logs.join(format!("{}-{role}.log", stack.name)))
            .unwrap_or_default();
        assert!(
            !log.contains(password),
            "the SASL password was logged by the {role}"
        );
    }
}

/// `scimflow config check` shows the Kafka properties in effect, secrets
/// redacted, and refuses a property the design owns with the reason.
#[test]
fn config_check_lists_kafka_properties_with_secrets_redacted() {
    let check = |extra: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimflow"))
            .args(["config", "check"])
            .env_clear()
            .env("DATABASE_URL", "postgres://db.example/scimflow")
            .env("KAFKA_BROKERS", "kafka.example:9093")
            .env("KAFKA_PROPERTY_SECURITY_PROTOCOL", "SASL_SSL")
            .env("KAFKA_PROPERTY_SASL_PASSWORD", "hunter2-secret-value")
            .envs(extra.iter().copied())
            .output()
            .expect("run scimflow config check");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, shown) = check(&[]);
    assert!(ok, "{shown}");
    assert!(shown.contains("security.protocol=SASL_SSL"), "{shown}");
    assert!(shown.contains("sasl.password=<redacted>"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let (ok, shown) = check(&[("KAFKA_PROPERTY_ENABLE_AUTO_COMMIT", "true")]);
    assert!(!ok, "{shown}");
    assert!(
        shown.contains("enable.auto.commit is set by scimflow"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// Readiness follows the database: with PostgreSQL stopped both roles'
/// `/readyz` turn 503 naming the database, while `/healthz` stays 200
/// (the process is alive; restarting it would not help); with it back,
/// both are ready again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_readiness_follows_the_database() {
    let (stack, ingress_admin) = Stack::new("ready_db").with_admin_port("SCIMFLOW_ADMIN_ADDR");
    let (stack, processor_admin) = stack.with_admin_port("SCIMFLOW_PROCESSOR_ADMIN_ADDR");
    let stack = stack.started().await;
    readyz_reaches(&stack, ingress_admin, "ready").await;
    readyz_reaches(&stack, processor_admin, "ready").await;
    crate::common::shared_postgres("stop").await;
    for port in [ingress_admin, processor_admin] {
        let body = readyz_reaches(&stack, port, "not_ready").await;
        assert!(
            body["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("database"),
            "{body}"
        );
        assert_eq!(
            admin_get(&stack, port, "/healthz").await,
            Some((200, "ok".into()))
        );
    }
    crate::common::shared_postgres("start").await;
    readyz_reaches(&stack, ingress_admin, "ready").await;
    readyz_reaches(&stack, processor_admin, "ready").await;
}
