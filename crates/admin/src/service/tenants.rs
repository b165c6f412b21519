//! Tenants (T1–T4): create, list, features, token rotation, suspension,
//! deletion; and what the product shows about one: its provisioning
//! status and its activity log.

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use scimflow_shared::config::Config;
use scimflow_shared::rules::roles::Feature;
use scimflow_shared::scim::error::cited_rule;
use scimflow_shared::store::activity::{self, ActivityQuery, ActivityRow, HourCounts};
use scimflow_shared::store::tenants::{self, Purged, TenantRecord, TenantRow};
use scimflow_shared::store::{dead_letters, groups, users};
use scimflow_shared::token;

use super::{text, Page, Result, ServiceError};

/// The most characters of a tenant's name and of the product's reference.
pub const MAX_NAME: usize = 200;
pub const MAX_REF: usize = 200;

/// A tenant as operators see it (never its token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantView {
    pub tenant_id: Uuid,
    pub name: String,
    /// The product's own reference (its organisation id), if given.
    pub external_ref: Option<String>,
    pub features: Vec<String>,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// Where the tenant's IdP sends its SCIM requests.
    pub scim_base_url: String,
    pub created_at: DateTime<Utc>,
    pub token_rotated_at: Option<DateTime<Utc>>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl TenantView {
    fn new(record: TenantRecord, config: &Config) -> TenantView {
        let t = record.row;
        let status = if t.deleted_at.is_some() {
            "deleted"
        } else if t.suspended_at.is_some() {
            "suspended"
        } else {
            "active"
        };
        TenantView {
            tenant_id: t.id,
            scim_base_url: config.scim_base_url(t.id),
            name: t.name,
            external_ref: record.external_ref,
            features: t.features,
            status: status.into(),
            created_at: t.created_at,
            token_rotated_at: t.token_rotated_at,
            suspended_at: t.suspended_at,
            deleted_at: t.deleted_at,
        }
    }
}

/// What creating a tenant needs.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Plan features: `voice`, `listener`.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub features: Vec<String>,
    /// The product's own reference: a second create with the same one
    /// returns the tenant that has it instead of making another.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub external_ref: Option<String>,
}

/// A created (or, by its reference, found) tenant.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Created {
    pub tenant: TenantView,
    /// The bearer token, shown this once; absent when the tenant already
    /// existed with this reference.
    pub token: Option<String>,
    /// False when the reference named an existing tenant.
    pub created: bool,
}

/// The known features among `raw`, in order, each once; an unknown one is
/// refused.
pub fn parse_features(raw: &[String]) -> Result<Vec<String>> {
    if raw.len() > 16 {
        return Err(ServiceError::Invalid("at most 16 features".into()));
    }
    let mut out: Vec<String> = Vec::new();
    for f in raw.iter().map(|f| f.trim()).filter(|f| !f.is_empty()) {
        match Feature::parse(f) {
            Some(feature) => {
                let name = feature.as_str().to_string();
                if !out.contains(&name) {
                    out.push(name);
                }
            }
            None => {
                let shown: String = f.chars().take(40).collect();
                return Err(ServiceError::Invalid(format!(
                    "unknown plan feature {shown:?} (known: voice, listener)"
                )));
            }
        }
    }
    Ok(out)
}

fn no_tenant(id: Uuid) -> ServiceError {
    ServiceError::NotFound(format!("no tenant {id}"))
}

pub fn create(conn: &mut PgConnection, config: &Config, new: NewTenant) -> Result<Created> {
    let name = text("name", &new.name, MAX_NAME)?;
    let features = parse_features(&new.features)?;
    let external_ref = new
        .external_ref
        .as_deref()
        .map(|r| text("external_ref", r, MAX_REF))
        .transpose()?;
    if let Some(reference) = &external_ref {
        if let Some(existing) = tenants::find_by_external_ref(conn, reference)? {
            return Ok(found(existing, config));
        }
    }
    let secret = token::generate();
    let row = TenantRow {
        id: Uuid::now_v7(),
        name,
        token_hash: token::hash(&secret),
        features,
        created_at: Utc::now(),
        token_rotated_at: None,
        suspended_at: None,
        deleted_at: None,
    };
    match tenants::insert_with_ref(conn, &row, external_ref.as_deref()) {
        Ok(()) => {}
        // Another create with the same reference won the race.
        Err(e) if e.is_unique_violation() => {
            if let Some(reference) = &external_ref {
                if let Some(existing) = tenants::find_by_external_ref(conn, reference)? {
                    return Ok(found(existing, config));
                }
            }
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Created {
        tenant: TenantView::new(TenantRecord { row, external_ref }, config),
        token: Some(secret),
        created: true,
    })
}

fn found(existing: TenantRecord, config: &Config) -> Created {
    Created {
        tenant: TenantView::new(existing, config),
        token: None,
        created: false,
    }
}

/// A page of tenants, oldest first, and how many there are.
pub fn list(
    conn: &mut PgConnection,
    config: &Config,
    page: Page,
) -> Result<(i64, Vec<TenantView>)> {
    let total = tenants::count(conn)?;
    let rows = tenants::list(conn, page.offset, page.limit)?;
    Ok((
        total,
        rows.into_iter()
            .map(|r| TenantView::new(r, config))
            .collect(),
    ))
}

/// The longest search text.
pub const MAX_SEARCH: usize = 200;

/// A tenant and its provisioning at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct TenantSummary {
    pub tenant: TenantView,
    /// Live users.
    pub users: i64,
    pub groups: i64,
    pub last_request_at: Option<DateTime<Utc>>,
    /// Requests answered 400 or above in the last 24 hours.
    pub errors_last_day: i64,
    /// Dead letters open or being replayed.
    pub open_dead_letters: i64,
}

/// A page of the tenants whose name, external reference or id contains
/// `search` (case-insensitive; blank: every tenant), oldest first, and how
/// many match.
pub fn search(
    conn: &mut PgConnection,
    config: &Config,
    search: &str,
    page: Page,
) -> Result<(i64, Vec<TenantSummary>)> {
    let search = if search.trim().is_empty() {
        String::new()
    } else {
        text("search", search, MAX_SEARCH)?
    };
    let (total, rows) = tenants::overview(conn, &search, page.offset, page.limit)?;
    Ok((
        total,
        rows.into_iter()
            .map(|r| TenantSummary {
                tenant: TenantView::new(r.record, config),
                users: r.glance.users,
                groups: r.glance.groups,
                last_request_at: r.glance.last_request_at,
                errors_last_day: r.glance.errors_last_day,
                open_dead_letters: r.glance.open_dead_letters,
            })
            .collect(),
    ))
}

pub fn get(conn: &mut PgConnection, config: &Config, id: Uuid) -> Result<TenantView> {
    let record = tenants::find_record(conn, id)?.ok_or_else(|| no_tenant(id))?;
    Ok(TenantView::new(record, config))
}

/// Replace the plan's features; returns them as stored.
pub fn set_features(conn: &mut PgConnection, id: Uuid, raw: &[String]) -> Result<Vec<String>> {
    let features = parse_features(raw)?;
    if !tenants::set_features(conn, id, &features)? {
        return Err(no_tenant(id));
    }
    Ok(features)
}

/// A new token, shown once; the old one stops working at once.
pub fn rotate_token(conn: &mut PgConnection, id: Uuid) -> Result<String> {
    let secret = token::generate();
    if !tenants::set_token_hash(conn, id, &token::hash(&secret))? {
        return Err(no_tenant(id));
    }
    Ok(secret)
}

/// The token is refused and queued commands are held until resumed.
pub fn suspend(conn: &mut PgConnection, id: Uuid) -> Result<()> {
    if !tenants::set_suspended(conn, id, true)? {
        return Err(no_tenant(id));
    }
    Ok(())
}

/// Resume, and replay what was held meanwhile, in order; returns the dead
/// letters replayed.
pub fn resume(conn: &mut PgConnection, id: Uuid, actor: &str) -> Result<Vec<i64>> {
    if !tenants::set_suspended(conn, id, false)? {
        return Err(no_tenant(id));
    }
    Ok(dead_letters::replay_held_for_suspension(conn, id, actor)?.replayed)
}

/// Revoke the token and purge every row of the tenant. Irreversible, so
/// it must be confirmed.
pub fn delete(
    conn: &mut PgConnection,
    config: &Config,
    id: Uuid,
    confirmed: bool,
) -> Result<Purged> {
    if !confirmed {
        return Err(ServiceError::Invalid(
            "deleting a tenant purges all its data; confirm it to do it (--confirm, or \"confirm\": true)".into(),
        ));
    }
    let topics = scimflow_bus::Topics::new(&config.topic_prefix);
    tenants::delete(conn, id, &[topics.user_changes(), topics.group_changes()])?
        .ok_or_else(|| no_tenant(id))
}

/// Is provisioning healthy: what the tenant holds, what its IdP did
/// lately, and what waits for an operator.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProvisioningStatus {
    pub tenant_id: Uuid,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    pub users: UserCounts,
    pub groups: i64,
    /// The last SCIM request its IdP made with a valid token.
    pub last_request_at: Option<DateTime<Utc>>,
    /// Writes that succeeded and requests refused (status 400 or above).
    pub writes_last_hour: i64,
    pub writes_last_day: i64,
    pub rejections_last_hour: i64,
    pub rejections_last_day: i64,
    /// Dead letters still open or being replayed.
    pub open_dead_letters: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserCounts {
    pub active: i64,
    pub inactive: i64,
    pub deleted: i64,
}

pub fn status(conn: &mut PgConnection, config: &Config, id: Uuid) -> Result<ProvisioningStatus> {
    let tenant = get(conn, config, id)?;
    let counts = users::count_by_state(conn, id)?;
    let stats = activity::stats(conn, id, Utc::now())?;
    Ok(ProvisioningStatus {
        tenant_id: id,
        status: tenant.status,
        users: UserCounts {
            active: counts.active,
            inactive: counts.inactive,
            deleted: counts.deleted,
        },
        groups: groups::count(conn, id)?,
        last_request_at: stats.last_request_at,
        writes_last_hour: stats.writes_last_hour,
        writes_last_day: stats.writes_last_day,
        rejections_last_hour: stats.rejections_last_hour,
        rejections_last_day: stats.rejections_last_day,
        open_dead_letters: dead_letters::count_open(conn, id)?,
    })
}

/// One SCIM request of the tenant, as the ingress recorded it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActivityEntry {
    /// Its place in the log: the next page starts before it.
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub method: String,
    /// `User`, `Group`, `Bulk`, ... as the path named it.
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub status: i16,
    /// The IdP's request id (or the one the ingress minted).
    pub request_id: Option<String>,
    pub user_id: Option<Uuid>,
    /// For a refused request: the SCIM error's scimType and detail.
    pub scim_type: Option<String>,
    pub detail: Option<String>,
    /// The product rule that refused it (`R8`), when the detail cites one.
    pub rule: Option<String>,
}

impl From<ActivityRow> for ActivityEntry {
    fn from(r: ActivityRow) -> Self {
        let e = r.entry;
        ActivityEntry {
            id: r.id,
            occurred_at: e.occurred_at,
            method: e.method,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            status: e.status,
            request_id: e.request_id,
            user_id: e.user_id,
            scim_type: e.scim_type,
            rule: e.detail.as_deref().and_then(cited_rule).map(str::to_string),
            detail: e.detail,
        }
    }
}

/// Which statuses a filter names: one (`409`) or a class (`4xx`).
pub fn parse_status_filter(text: &str) -> Result<(i16, i16)> {
    let bad = || {
        ServiceError::Invalid(
            "status must be a status code (100 to 599) or a class (1xx to 5xx)".into(),
        )
    };
    let text = text.trim();
    if let Some(class) = text.strip_suffix("xx").or_else(|| text.strip_suffix("XX")) {
        let c: i16 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&c) || class.len() != 1 {
            return Err(bad());
        }
        return Ok((c * 100, c * 100 + 99));
    }
    let code: i16 = text.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&code) || text.len() != 3 {
        return Err(bad());
    }
    Ok((code, code))
}

/// Which entries of a tenant's log to show.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// A status (`409`) or a class (`4xx`).
    pub status: Option<String>,
    pub user_id: Option<Uuid>,
    /// One IdP request id.
    pub request_id: Option<String>,
    /// At or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
    /// Older than this entry (the previous page's last id).
    pub before: Option<i64>,
    pub limit: Option<i64>,
}

/// The longest request id a filter names (as long as the log keeps).
pub const MAX_REQUEST_ID: usize = 128;

/// A tenant's log, newest first: `before` is the last id of the page
/// before.
pub fn activity(
    conn: &mut PgConnection,
    config: &Config,
    id: Uuid,
    filter: ActivityFilter,
) -> Result<Vec<ActivityEntry>> {
    let page = Page::new(None, filter.limit)?;
    let status = filter
        .status
        .as_deref()
        .map(parse_status_filter)
        .transpose()?;
    let request_id = filter
        .request_id
        .as_deref()
        .map(|r| text("request id", r, MAX_REQUEST_ID))
        .transpose()?;
    if let (Some(since), Some(until)) = (filter.since, filter.until) {
        if since >= until {
            return Err(ServiceError::Invalid(
                "the start of the period must be before its end".into(),
            ));
        }
    }
    get(conn, config, id)?;
    let rows = activity::list(
        conn,
        id,
        &ActivityQuery {
            status,
            user_id: filter.user_id,
            request_id,
            since: filter.since,
            until: filter.until,
            before: filter.before,
            limit: page.limit,
        },
    )?;
    Ok(rows.into_iter().map(ActivityEntry::from).collect())
}

/// How many days of a tenant's writes and rejections the chart covers.
pub const CHART_DAYS: i64 = 7;

/// A tenant's writes and rejections per hour.
#[derive(Debug, Clone)]
pub struct Hourly {
    /// Each of the last `CHART_DAYS` days' hours, oldest first, the
    /// current hour last.
    pub hours: Vec<HourCounts>,
    /// When the kept log begins, if within those hours: earlier hours
    /// were pruned (the log keeps a number of entries per tenant), not
    /// quiet.
    pub log_begins: Option<DateTime<Utc>>,
}

pub fn hourly(
    conn: &mut PgConnection,
    config: &Config,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Hourly> {
    get(conn, config, id)?;
    let hours = CHART_DAYS * 24;
    let first = hour_of(now) - chrono::Duration::hours(hours - 1);
    let counted = activity::hourly(conn, id, first)?;
    // Pruned by rows: full, and its oldest entry inside the chart.
    let pruned = activity::count(conn, id)? >= config.activity_max_rows;
    let oldest = if pruned {
        activity::oldest(conn, id)?
    } else {
        None
    };
    Ok(Hourly {
        hours: every_hour(first, hours, &counted),
        log_begins: oldest.filter(|t| *t > first),
    })
}

/// The start of the hour `at` falls in.
fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(3600), 0).unwrap_or(at)
}

/// `hours` hours from `first`, each with its counts or zeros.
fn every_hour(first: DateTime<Utc>, hours: i64, counted: &[HourCounts]) -> Vec<HourCounts> {
    (0..hours)
        .map(|i| {
            let hour = first + chrono::Duration::hours(i);
            counted
                .iter()
                .find(|c| c.hour == hour)
                .cloned()
                .unwrap_or(HourCounts {
                    hour,
                    writes: 0,
                    rejections: 0,
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_known_names_once_each() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], Option<&[&str]>); 5] = [
            (
                &["voice", " Listener ", "voice"],
                Some(&["voice", "listener"]),
            ),
            (&[], Some(&[])),
            (&["", " "], Some(&[])),
            (&["video"], None),
            (&["voice"; 17], None),
        ];
        for (raw, want) in cases {
            let got = parse_features(&s(raw)).ok();
            assert_eq!(got, want.map(s), "{raw:?}");
        }
    }

    #[test]
    fn every_hour_of_the_chart_has_counts() {
        let at = |h: u32, m: u32| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .and_then(|d| d.and_hms_opt(h, m, 7))
                .map(|t| t.and_utc())
                .expect("a valid time")
        };
        assert_eq!(
            hour_of(at(13, 59)),
            at(13, 0) - chrono::Duration::seconds(7)
        );
        let first = hour_of(at(10, 0));
        let counted = [
            HourCounts {
                hour: first,
                writes: 3,
                rejections: 1,
            },
            HourCounts {
                hour: first + chrono::Duration::hours(2),
                writes: 0,
                rejections: 5,
            },
        ];
        let got: Vec<(i64, i64)> = every_hour(first, 4, &counted)
            .iter()
            .map(|h| (h.writes, h.rejections))
            .collect();
        assert_eq!(got, [(3, 1), (0, 0), (0, 5), (0, 0)]);
        let hours: Vec<_> = every_hour(first, 4, &counted)
            .iter()
            .map(|h| h.hour)
            .collect();
        assert_eq!(hours.last(), Some(&(first + chrono::Duration::hours(3))));
    }

    #[test]
    fn status_filters_are_a_code_or_a_class() {
        let cases = [
            ("409", Some((409, 409))),
            ("4xx", Some((400, 499))),
            ("2XX", Some((200, 299))),
            ("0xx", None),
            ("6xx", None),
            ("99", None),
            ("600", None),
            ("+409", None),
            ("40x", None),
            ("", None),
            ("x", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_status_filter(text).ok(), want, "{text:?}");
        }
    }
}
