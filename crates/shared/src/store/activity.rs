//! The activity log: what each tenant's IdP asked and what it was
//! answered, written in batches by the ingress, read newest first by the
//! admin API, bounded in rows per tenant and in age. Never a body or a
//! token.

use chrono::{DateTime, Utc};
use diesel::dsl::count_star;
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::activity;
use super::StoreError;

/// The most characters of an error detail kept.
pub const MAX_DETAIL_CHARS: usize = 1024;

/// An entry as recorded; stored, it gains its place in the log
/// (`ActivityRow`).
#[derive(Debug, Clone, Insertable, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = activity)]
pub struct NewActivity {
    pub tenant_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub method: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub status: i16,
    pub request_id: Option<String>,
    pub user_id: Option<Uuid>,
    pub scim_type: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = activity)]
pub struct ActivityRow {
    pub id: i64,
    #[diesel(embed)]
    #[serde(flatten)]
    pub entry: NewActivity,
}

/// Which entries a listing shows.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    /// Statuses from..=to.
    pub status: Option<(i16, i16)>,
    pub user_id: Option<Uuid>,
    /// Only the entries of this IdP request id.
    pub request_id: Option<String>,
    /// Only entries that occurred at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only entries that occurred before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this one (the previous page's last id).
    pub before: Option<i64>,
    pub limit: i64,
}

/// Text for a text column: no NUL, at most `max` characters.
fn bounded(text: &str, max: usize) -> String {
    super::dead_letters::storable(text)
        .chars()
        .take(max)
        .collect()
}

impl NewActivity {
    /// The row as stored: text bounded, so a hostile request id or error
    /// detail cannot grow the table or fail the batch.
    pub fn bounded(mut self) -> Self {
        let b = |t: Option<String>, max| t.map(|t| bounded(&t, max));
        self.method = bounded(&self.method, 16);
        self.resource_type = b(self.resource_type, 64);
        self.resource_id = b(self.resource_id, 256);
        self.request_id = b(self.request_id, 128);
        self.scim_type = b(self.scim_type, 64);
        self.detail = b(self.detail, MAX_DETAIL_CHARS);
        self
    }
}

pub fn insert_batch(conn: &mut PgConnection, rows: &[NewActivity]) -> Result<usize, StoreError> {
    conn.transaction(|conn| {
        // The log is kept at best effort (a full queue drops entries), so
        // its commits do not wait for the WAL to reach the disk: a crash
        // can lose the last fraction of a second of entries, never a
        // command.
        diesel::sql_query("SET LOCAL synchronous_commit = off").execute(conn)?;
        Ok(diesel::insert_into(activity::table)
            .values(rows)
            .execute(conn)?)
    })
}

/// Keep at most `max_rows` entries of each of `tenants` and none older
/// than `max_age`. Returns how many were deleted.
pub fn prune(
    conn: &mut PgConnection,
    tenants: &[Uuid],
    max_rows: i64,
    max_age: chrono::Duration,
) -> Result<usize, StoreError> {
    let mut deleted =
        diesel::delete(activity::table.filter(activity::occurred_at.lt(Utc::now() - max_age)))
            .execute(conn)?;
    for tenant in tenants {
        let oldest_kept: Option<i64> = activity::table
            .filter(activity::tenant_id.eq(tenant))
            .order(activity::id.desc())
            .select(activity::id)
            .offset(max_rows - 1)
            .first(conn)
            .optional()?;
        if let Some(oldest) = oldest_kept {
            deleted += diesel::delete(
                activity::table
                    .filter(activity::tenant_id.eq(tenant))
                    .filter(activity::id.lt(oldest)),
            )
            .execute(conn)?;
        }
    }
    Ok(deleted)
}

/// A tenant's entries, newest first.
pub fn list(
    conn: &mut PgConnection,
    tenant: Uuid,
    q: &ActivityQuery,
) -> Result<Vec<ActivityRow>, StoreError> {
    let mut query = activity::table
        .filter(activity::tenant_id.eq(tenant))
        .order(activity::id.desc())
        .select(ActivityRow::as_select())
        .limit(q.limit)
        .into_boxed();
    if let Some((from, to)) = q.status {
        query = query.filter(activity::status.between(from, to));
    }
    if let Some(user) = q.user_id {
        query = query.filter(activity::user_id.eq(user));
    }
    if let Some(request) = &q.request_id {
        query = query.filter(activity::request_id.eq(request));
    }
    if let Some(since) = q.since {
        query = query.filter(activity::occurred_at.ge(since));
    }
    if let Some(until) = q.until {
        query = query.filter(activity::occurred_at.lt(until));
    }
    if let Some(before) = q.before {
        query = query.filter(activity::id.lt(before));
    }
    Ok(query.load(conn)?)
}

/// When a tenant's oldest kept entry occurred: the log is pruned by rows
/// per tenant, so a busy tenant's log may begin within the chart's week.
pub fn oldest(conn: &mut PgConnection, tenant: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(activity::table
        .filter(activity::tenant_id.eq(tenant))
        .order(activity::id.asc())
        .select(activity::occurred_at)
        .first(conn)
        .optional()?)
}

/// How many entries a tenant's log holds (at most the kept rows).
pub fn count(conn: &mut PgConnection, tenant: Uuid) -> Result<i64, StoreError> {
    Ok(activity::table
        .filter(activity::tenant_id.eq(tenant))
        .select(count_star())
        .first(conn)?)
}

/// One hour of a tenant's log: its writes and its rejections, counted as
/// `stats` counts them.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct HourCounts {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub hour: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub writes: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub rejections: i64,
}

/// A tenant's writes and rejections per hour since `since`, oldest first;
/// hours without a request are absent.
pub fn hourly(
    conn: &mut PgConnection,
    tenant: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<HourCounts>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT date_trunc('hour', occurred_at, 'UTC') AS hour, \
                count(*) FILTER (WHERE method <> 'GET' AND status < 400) AS writes, \
                count(*) FILTER (WHERE status >= 400) AS rejections \
         FROM activity WHERE tenant_id = $1 AND occurred_at >= $2 \
         GROUP BY 1 ORDER BY 1",
    )
    .bind::<diesel::sql_types::Uuid, _>(tenant)
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .load(conn)?)
}

/// What a tenant's IdP did lately, for the provisioning status.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ActivityStats {
    pub last_request_at: Option<DateTime<Utc>>,
    pub writes_last_hour: i64,
    pub writes_last_day: i64,
    pub rejections_last_hour: i64,
    pub rejections_last_day: i64,
}

/// A write is any request but a read (GET) answered with success; a
/// rejection is any request answered 400 or above.
pub fn stats(
    conn: &mut PgConnection,
    tenant: Uuid,
    now: DateTime<Utc>,
) -> Result<ActivityStats, StoreError> {
    let last_request_at: Option<DateTime<Utc>> = activity::table
        .filter(activity::tenant_id.eq(tenant))
        .order(activity::id.desc())
        .select(activity::occurred_at)
        .first(conn)
        .optional()?;
    let mut out = ActivityStats {
        last_request_at,
        ..ActivityStats::default()
    };
    for (since, writes, rejections) in [
        (
            now - chrono::Duration::hours(1),
            &mut out.writes_last_hour,
            &mut out.rejections_last_hour,
        ),
        (
            now - chrono::Duration::days(1),
            &mut out.writes_last_day,
            &mut out.rejections_last_day,
        ),
    ] {
        let recent = || {
            activity::table
                .filter(activity::tenant_id.eq(tenant))
                .filter(activity::occurred_at.ge(since))
        };
        *writes = recent()
            .filter(activity::method.ne("GET"))
            .filter(activity::status.lt(400))
            .select(count_star())
            .first(conn)?;
        *rejections = recent()
            .filter(activity::status.ge(400))
            .select(count_star())
            .first(conn)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_is_bounded_and_holds_no_nul() {
        let row = NewActivity {
            tenant_id: Uuid::nil(),
            occurred_at: Utc::now(),
            method: "PATCH".into(),
            resource_type: Some("User".into()),
            resource_id: Some("x".repeat(1000)),
            status: 400,
            request_id: Some("r\0q".into()),
            user_id: None,
            scim_type: Some("invalidValue".into()),
            detail: Some("é".repeat(5000)),
        }
        .bounded();
        let cases = [
            (row.resource_id.as_deref(), 256),
            (row.request_id.as_deref(), 3),
            (row.detail.as_deref(), MAX_DETAIL_CHARS),
        ];
        for (text, chars) in cases {
            let text = text.unwrap_or_default();
            assert_eq!(text.chars().count(), chars, "{text}");
            assert!(!text.contains('\0'));
        }
    }
}
