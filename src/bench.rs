//! `scimflow bench`: plays an IdP's initial push against any SCIM base URL
//! (ours or another server's): users (Okta- or Entra-shaped, one POST each
//! or through /Bulk), lookups by userName, groups, then memberships. Every
//! response is checked: a 2xx with the wrong body counts as an error. It
//! prints throughput and latency percentiles per request kind and can
//! write them as JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Shape {
    Okta,
    Entra,
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// The SCIM base URL (as `tenant create` printed it).
    #[arg(long, env = "SCIMFLOW_BENCH_URL")]
    url: String,
    /// The tenant's bearer token.
    #[arg(long, env = "SCIMFLOW_BENCH_TOKEN", hide_env_values = true)]
    token: String,
    /// Users to create.
    #[arg(long, default_value_t = 1000)]
    users: usize,
    /// Send users through /Bulk, this many operations per request.
    #[arg(long)]
    bulk: Option<usize>,
    /// `GET /Users?filter=userName eq "..."` lookups of created users.
    #[arg(long, default_value_t = 0)]
    lookups: usize,
    /// Groups to create after the users.
    #[arg(long, default_value_t = 0)]
    groups: usize,
    /// Members to add to each group, by PATCH, `member-batch` at a time.
    #[arg(long, default_value_t = 0)]
    members_per_group: usize,
    #[arg(long, default_value_t = 1000)]
    member_batch: usize,
    /// Membership PATCHes in flight at once. An IdP sends one group's
    /// batches one after another; so does the default.
    #[arg(long, default_value_t = 1)]
    member_concurrency: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, value_enum, default_value = "okta")]
    shape: Shape,
    /// Write the summary as JSON here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// A Prometheus `/metrics` URL whose `process_resident_memory_bytes`
    /// is sampled every 5 s for the whole run (repeatable: the ingress's
    /// and the processor's admin listeners).
    #[arg(long = "metrics")]
    metrics: Vec<String>,
    /// For an https URL whose certificate is signed by a CA of its own (a
    /// test deployment): a PEM file of CA certificates trusted besides
    /// Mozilla's roots.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// Another SCIM server to run the same workload against after this
    /// one, as `NAME=BASE_URL` (repeatable; `scripts/bench-peers` starts
    /// the peers and passes them). Results are printed side by side with
    /// the ratios.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(String, String)>,
    /// A peer's bearer token, as `NAME=TOKEN` (repeatable).
    #[arg(long = "peer-token", value_parser = parse_peer)]
    peer_tokens: Vec<(String, String)>,
}

/// The bench's HTTP client: http or https (rustls, Mozilla's roots and any
/// `extra_ca` PEM certificates), one pooled connection per request in
/// flight.
fn http_client(concurrency: usize, extra_ca: Option<&[u8]>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60));
    if let Some(pem) = extra_ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

fn parse_peer(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.is_empty() => {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {raw:?}")),
    }
}

/// One server the workload runs against.
struct Target {
    name: String,
    base: String,
    token: Option<String>,
}

/// Resident memory samples of one process, from its `/metrics`.
#[derive(Default, Clone)]
struct MemorySamples(Vec<u64>);

impl MemorySamples {
    /// Growth after warm-up: the samples of the first tenth of the run are
    /// skipped (pools, caches and buffers fill there), then
    /// (max - min) / min over the rest.
    fn summary(&self) -> Value {
        let warm = &self.0[(self.0.len() / 10).min(self.0.len().saturating_sub(1))..];
        let (min, max) = (
            warm.iter().min().copied().unwrap_or(0),
            warm.iter().max().copied().unwrap_or(0),
        );
        let mib = |b: u64| (b as f64 / 1048576.0 * 10.0).round() / 10.0;
        json!({
            "samples": self.0.len(),
            "first_mib": mib(self.0.first().copied().unwrap_or(0)),
            "warm_min_mib": mib(min),
            "warm_max_mib": mib(max),
            "last_mib": mib(self.0.last().copied().unwrap_or(0)),
            "growth_after_warmup_pct": if min > 0 { ((max - min) as f64 / min as f64 * 1000.0).round() / 10.0 } else { 0.0 },
        })
    }
}

async fn resident_memory(client: &reqwest::Client, url: &str) -> Option<u64> {
    let text = client.get(url).send().await.ok()?.text().await.ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Latencies and errors of one request kind.
#[derive(Default)]
struct Kind {
    latencies: Vec<Duration>,
    errors: usize,
    items: usize,
    elapsed: Duration,
}

impl Kind {
    fn summary(&self) -> Value {
        let mut l = self.latencies.clone();
        l.sort();
        let pct = |p: f64| -> f64 {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
            l[i].as_secs_f64() * 1000.0
        };
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        json!({
            "requests": l.len(),
            "items": self.items,
            "errors": self.errors,
            "seconds": (secs * 100.0).round() / 100.0,
            "requests_per_second": ((l.len() as f64 / secs) * 10.0).round() / 10.0,
            "items_per_second": ((self.items as f64 / secs) * 10.0).round() / 10.0,
            "p50_ms": (pct(0.50) * 100.0).round() / 100.0,
            "p99_ms": (pct(0.99) * 100.0).round() / 100.0,
            "max_ms": (l.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0) * 100.0).round() / 100.0,
        })
    }
}

/// What one request returned: how many items it carried and whether its
/// answer was right.
type Checked = Result<usize, String>;

/// Run `count` requests, `concurrency` at a time, showing progress.
async fn phase<F, Fut>(name: &str, count: usize, concurrency: usize, make: F) -> Kind
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Checked> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let kind = Arc::new(Mutex::new(Kind::default()));
    let make = Arc::new(make);
    let start = Instant::now();
    let progress = {
        let (done, name) = (done.clone(), name.to_string());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
                eprint!("\r{name}: {n}/{count} requests ({rate:.0}/s)   ");
            }
        })
    };
    let workers: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (next, done, kind, make) = (next.clone(), done.clone(), kind.clone(), make.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let t = Instant::now();
                    let result = make(i).await;
                    let took = t.elapsed();
                    done.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut k) = kind.lock() {
                        k.latencies.push(took);
                        match result {
                            Ok(items) => k.items += items,
                            Err(e) => {
                                if k.errors < 3 {
                                    eprintln!("\n{e}");
                                }
                                k.errors += 1;
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    progress.abort();
    eprintln!();
    let mut k = Arc::try_unwrap(kind)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    k.elapsed = start.elapsed();
    k
}

fn user_body(shape: Shape, run: &str, i: usize) -> Value {
    let email = format!("{run}-{i}@bench.example");
    match shape {
        Shape::Okta => json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": email,
            "name": {"givenName": "Bench", "familyName": format!("User{i}")},
            "emails": [{"primary": true, "value": email, "type": "work"}],
            "displayName": format!("Bench User{i}"), "locale": "en-US", "externalId": format!("00u{run}{i}"),
            "groups": [], "password": "Bench-password-1", "active": true,
            "roles": [{"value": if i.is_multiple_of(3) { "recorder" } else { "analyst" }}]
        }),
        Shape::Entra => json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": format!("{run}-{i}"), "userName": email, "active": true,
            "displayName": format!("Bench User{i}"), "title": null,
            "emails": [{"primary": true, "type": "work", "value": email}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": format!("Bench User{i}"), "familyName": format!("User{i}"), "givenName": "Bench"},
            "roles": [{"primary": true, "type": "WindowsAzureActiveDirectoryRole", "value": "user"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": i.to_string(), "department": "Bench"}
        }),
    }
}

/// The workload against one target: what each request kind measured,
/// the memory samples, and the run's name (the prefix of its userNames).
struct TargetRun {
    kinds: BTreeMap<String, Kind>,
    memory: BTreeMap<String, MemorySamples>,
    run: String,
}

async fn run_target(
    args: &BenchArgs,
    client: reqwest::Client,
    target: &Target,
    metrics: &[String],
) -> anyhow::Result<TargetRun> {
    let base = target.base.trim_end_matches('/').to_string();
    let auth = format!("Bearer {}", target.token.as_deref().unwrap_or_default());
    // A list request is the one probe every SCIM server answers (not all
    // serve /ServiceProviderConfig): it checks the URL and the token.
    let probe = client
        .get(format!("{base}/Users"))
        .query(&[("count", "1")])
        .header("Authorization", &auth)
        .send()
        .await
        .with_context(|| format!("{}: {base} is not reachable", target.name))?;
    if !probe.status().is_success() {
        bail!(
            "{}: {base}/Users answered {}: check the URL and token",
            target.name,
            probe.status()
        );
    }
    let run = format!("b{:06x}", rand::random::<u32>() & 0xff_ffff);
    let ctx = Arc::new((client, base, auth, run.clone(), args.shape));
    let ids: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; args.users]));
    let memory: Arc<Mutex<BTreeMap<String, MemorySamples>>> = Arc::default();
    let sampler = {
        let (client, urls, memory) = (ctx.0.clone(), metrics.to_vec(), memory.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                for url in &urls {
                    if let Some(bytes) = resident_memory(&client, url).await {
                        if let Ok(mut m) = memory.lock() {
                            m.entry(url.clone()).or_default().0.push(bytes);
                        }
                    }
                }
            }
        })
    };
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();

    // Users: one POST each, or through /Bulk.
    let k = match args.bulk {
        None => {
            let (ctx, ids) = (ctx.clone(), ids.clone());
            phase("create users", args.users, args.concurrency, move |i| {
                let (ctx, ids) = (ctx.clone(), ids.clone());
                async move {
                    let (client, base, auth, run, shape) = &*ctx;
                    let body = user_body(*shape, run, i);
                    let r = client
                        .post(format!("{base}/Users"))
                        .header("Authorization", auth)
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?;
                    let status = r.status().as_u16();
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    if status != 201
                        || v["userName"] != body["userName"]
                        || v["id"].as_str().is_none()
                    {
                        return Err(format!("create user: {status} {v}"));
                    }
                    if let Ok(mut ids) = ids.lock() {
                        ids[i] = v["id"].as_str().map(str::to_string);
                    }
                    Ok(1)
                }
            })
            .await
        }
        Some(size) => {
            let size = size.max(1);
            let requests = args.users.div_ceil(size);
            let (ctx, ids, users) = (ctx.clone(), ids.clone(), args.users);
            phase("create users (bulk)", requests, args.concurrency, move |r| {
                let (ctx, ids) = (ctx.clone(), ids.clone());
                async move {
                    let (client, base, auth, run, shape) = &*ctx;
                    let range = r * size..((r + 1) * size).min(users);
                    let ops: Vec<Value> = range
                        .clone()
                        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user_body(*shape, run, i)}))
                        .collect();
                    let n = ops.len();
                    let resp = client.post(format!("{base}/Bulk")).header("Authorization", auth)
                        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}))
                        .send().await.map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    let v: Value = resp.json().await.unwrap_or(Value::Null);
                    let results = v["Operations"].as_array().cloned().unwrap_or_default();
                    let ok = results.iter().filter(|o| o["status"] == "201").count();
                    if let Ok(mut ids) = ids.lock() {
                        for (i, o) in range.zip(results.iter()) {
                            ids[i] = o["location"].as_str().and_then(|l| l.rsplit('/').next()).map(str::to_string);
                        }
                    }
                    if status != 200 || ok != n {
                        return Err(format!("bulk: {status}, {ok} of {n} created"));
                    }
                    Ok(n)
                }
            })
            .await
        }
    };
    kinds.insert("create_user".into(), k);
    let created: Vec<(usize, String)> = ids
        .lock()
        .map(|ids| {
            ids.iter()
                .enumerate()
                .filter_map(|(i, id)| id.clone().map(|id| (i, id)))
                .collect()
        })
        .unwrap_or_default();
    if created.is_empty() && args.users > 0 {
        bail!("no user was created");
    }

    if args.lookups > 0 {
        let (ctx, created) = (ctx.clone(), Arc::new(created.clone()));
        let k = phase("lookups", args.lookups, args.concurrency, move |n| {
            let (ctx, created) = (ctx.clone(), created.clone());
            async move {
                let (client, base, auth, run, _) = &*ctx;
                let (i, id) = &created[n % created.len()];
                let filter = format!("userName eq \"{run}-{i}@bench.example\"");
                let r = client
                    .get(format!("{base}/Users"))
                    .query(&[("filter", filter.as_str())])
                    .header("Authorization", auth)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status != 200 || v["totalResults"] != 1 || v["Resources"][0]["id"] != id.as_str()
                {
                    return Err(format!("lookup: {status} {v}"));
                }
                Ok(1)
            }
        })
        .await;
        kinds.insert("lookup_user".into(), k);
    }

    if args.groups > 0 {
        let group_ids: Arc<Mutex<Vec<Option<String>>>> =
            Arc::new(Mutex::new(vec![None; args.groups]));
        let (c2, g2) = (ctx.clone(), group_ids.clone());
        let k = phase("create groups", args.groups, args.concurrency, move |i| {
            let (ctx, ids) = (c2.clone(), g2.clone());
            async move {
                let (client, base, auth, run, _) = &*ctx;
                let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("{run} group {i}"), "members": []});
                let r = client.post(format!("{base}/Groups")).header("Authorization", auth).json(&body).send().await.map_err(|e| e.to_string())?;
                let status = r.status().as_u16();
                let v: Value = r.json().await.unwrap_or(Value::Null);
                if status != 201 || v["displayName"] != body["displayName"] {
                    return Err(format!("create group: {status} {v}"));
                }
                if let Ok(mut ids) = ids.lock() {
                    ids[i] = v["id"].as_str().map(str::to_string);
                }
                Ok(1)
            }
        })
        .await;
        kinds.insert("create_group".into(), k);

        if args.members_per_group > 0 {
            let groups: Vec<String> = group_ids
                .lock()
                .map(|g| g.iter().flatten().cloned().collect())
                .unwrap_or_default();
            let batch = args.member_batch.max(1);
            let per_group = args.members_per_group.div_ceil(batch);
            let total = groups.len() * per_group;
            let users: Arc<Vec<String>> =
                Arc::new(created.iter().map(|(_, id)| id.clone()).collect());
            let (ctx, groups, members) = (ctx.clone(), Arc::new(groups), args.members_per_group);
            let k = phase("add members", total, args.member_concurrency, move |n| {
                let (ctx, groups, users) = (ctx.clone(), groups.clone(), users.clone());
                async move {
                    let (client, base, auth, _, _) = &*ctx;
                    let group = &groups[n % groups.len()];
                    let b = n / groups.len();
                    let values: Vec<Value> = (b * batch..((b + 1) * batch).min(members))
                        .map(|j| json!({"value": users[j % users.len()]}))
                        .collect();
                    let count = values.len();
                    let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": values}]});
                    let r = client.patch(format!("{base}/Groups/{group}")).header("Authorization", auth).json(&body).send().await.map_err(|e| e.to_string())?;
                    let status = r.status().as_u16();
                    if status != 204 && status != 200 {
                        return Err(format!("add members: {status} {}", r.text().await.unwrap_or_default()));
                    }
                    Ok(count)
                }
            })
            .await;
            kinds.insert("add_members".into(), k);
        }
    }

    sampler.abort();
    let memory = memory.lock().map(|m| m.clone()).unwrap_or_default();
    Ok(TargetRun { kinds, memory, run })
}

fn print_kinds(summary: &BTreeMap<String, Value>) {
    println!(
        "{:<14} {:>9} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9}",
        "kind", "requests", "items", "errors", "req/s", "items/s", "p50 ms", "p99 ms", "max ms"
    );
    for (k, v) in summary {
        let f = |name: &str| v[name].to_string();
        println!(
            "{:<14} {:>9} {:>9} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9}",
            k,
            f("requests"),
            f("items"),
            f("errors"),
            f("requests_per_second"),
            f("items_per_second"),
            f("p50_ms"),
            f("p99_ms"),
            f("max_ms")
        );
    }
}

/// scimflow beside each peer, per request kind: throughput and p99, and
/// scimflow's throughput as a multiple of the peer's. A peer that got any
/// answer wrong (or does not serve the kind) has no ratio.
fn print_comparison(results: &[(String, BTreeMap<String, Value>)]) {
    let Some((first, ours)) = results.first() else {
        return;
    };
    println!();
    print!("{:<14} {:>20}", "kind", format!("{first} items/s (p99)"));
    for (name, _) in &results[1..] {
        print!(" {:>24} {:>7}", format!("{name} items/s (p99)"), "ratio");
    }
    println!();
    for (kind, v) in ours {
        let cell = |v: &Value| format!("{} ({} ms)", v["items_per_second"], v["p99_ms"]);
        print!("{:<14} {:>20}", kind, cell(v));
        for (_, theirs) in &results[1..] {
            match theirs.get(kind) {
                Some(t) if t["errors"] == 0 && t["requests"] != 0 => {
                    let (a, b) = (
                        v["items_per_second"].as_f64().unwrap_or(0.0),
                        t["items_per_second"].as_f64().unwrap_or(0.0),
                    );
                    let ratio = if b > 0.0 {
                        format!("{:.2}x", a / b)
                    } else {
                        "-".into()
                    };
                    print!(" {:>24} {:>7}", cell(t), ratio);
                }
                Some(t) => print!(" {:>24} {:>7}", format!("{} errors", t["errors"]), "-"),
                None => print!(" {:>24} {:>7}", "-", "-"),
            }
        }
        println!();
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let extra_ca = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the CA certificates in {}", path.display()))?,
        ),
        None => None,
    };
    let client = http_client(args.concurrency, extra_ca.as_deref())?;
    let mut targets = vec![Target {
        name: "scimflow".into(),
        base: args.url.clone(),
        token: Some(args.token.clone()),
    }];
    for (name, base) in &args.peers {
        let token = args
            .peer_tokens
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone());
        targets.push(Target {
            name: name.clone(),
            base: base.clone(),
            token,
        });
    }
    let mut results: Vec<(String, BTreeMap<String, Value>)> = Vec::new();
    let mut report = Vec::new();
    let mut errors = 0;
    for (i, target) in targets.iter().enumerate() {
        // Memory is sampled from scimflow's own services only.
        let metrics = if i == 0 { args.metrics.as_slice() } else { &[] };
        if targets.len() > 1 {
            println!("{}: {}", target.name, target.base);
        }
        let outcome = run_target(&args, client.clone(), target, metrics).await?;
        let summary: BTreeMap<String, Value> = outcome
            .kinds
            .iter()
            .map(|(k, v)| (k.clone(), v.summary()))
            .collect();
        let memory: BTreeMap<String, Value> = outcome
            .memory
            .iter()
            .map(|(u, s)| (u.clone(), s.summary()))
            .collect();
        print_kinds(&summary);
        for (url, m) in &memory {
            println!(
                "memory {url}: {} samples; first {} MiB, after warm-up {} to {} MiB ({}% growth), last {} MiB",
                m["samples"], m["first_mib"], m["warm_min_mib"], m["warm_max_mib"], m["growth_after_warmup_pct"], m["last_mib"]
            );
        }
        // A peer's wrong answers are its own result, shown in the
        // comparison; only scimflow's fail the command.
        if i == 0 {
            errors = outcome.kinds.values().map(|k| k.errors).sum();
        }
        report.push(json!({
            "name": target.name, "target": target.base, "run": outcome.run,
            "kinds": summary, "memory": memory,
        }));
        results.push((target.name.clone(), summary));
    }
    if results.len() > 1 {
        print_comparison(&results);
    }
    if let Some(path) = &args.report {
        let report = json!({
            "shape": format!("{:?}", args.shape), "concurrency": args.concurrency,
            "users": args.users, "bulk": args.bulk, "lookups": args.lookups, "groups": args.groups,
            "members_per_group": args.members_per_group, "targets": report,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if errors > 0 {
        bail!("{errors} request(s) got a wrong answer");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// An https server on loopback with a certificate for 127.0.0.1 that
    /// only the returned CA PEM vouches for; it answers each connection's
    /// first request with 200 and `{}`.
    async fn tls_server() -> (std::net::SocketAddr, String) {
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("certificate parameters")
            .self_signed(&key)
            .expect("a self-signed certificate");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("the server's TLS configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = [0u8; 4096];
                    let _ = tls.read(&mut request).await;
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (addr, cert.pem())
    }

    #[tokio::test]
    async fn the_bench_client_speaks_https_and_trusts_the_given_ca() {
        let (addr, ca) = tls_server().await;
        let url = format!("https://{addr}/scim/v2/t/ServiceProviderConfig");
        // (CA given, answered)
        for (extra_ca, answered) in [(Some(ca.as_bytes()), true), (None, false)] {
            let client = http_client(4, extra_ca).expect("a client");
            let got = client.get(&url).send().await;
            match got {
                Ok(r) => {
                    assert!(answered, "a certificate no CA vouches for was accepted");
                    assert_eq!(r.status(), 200);
                }
                Err(e) => assert!(!answered && e.is_connect(), "{e:?}"),
            }
        }
    }
}
