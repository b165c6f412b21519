//! The one place that owns SQL: schema, migrations, pool, and every query
//! the ingress, the processor and the CLI run. Callers get typed rows and
//! typed errors; no SQL text leaves this module.

pub mod activity;
pub mod commands;
pub mod console_sessions;
pub mod dead_letters;
pub mod filter_sql;
pub mod groups;
pub mod outbox;
mod pool;
pub mod schema;
pub mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod test_db;
pub mod users;

use diesel::pg::PgConnection;
use diesel::r2d2::{Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::scim::filter::Filter;

diesel::define_sql_function! {
    /// PostgreSQL's `lower`, as an expression diesel can keep prepared (a
    /// `sql("lower(..)")` literal is re-planned on every call).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

pub type PgPool = Pool<pool::Manager>;
pub type PgPooled = PooledConnection<pool::Manager>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] DieselError),
    #[error("database connection: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("database pool: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("migrations: {0}")]
    Migration(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// A uniqueness index refused the write (another writer won a race).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            StoreError::Db(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// The connection itself is gone: nothing more can be done in this
    /// transaction, whatever the command.
    pub fn is_connection_lost(&self) -> bool {
        matches!(
            self,
            StoreError::Pool(_)
                | StoreError::Connection(_)
                | StoreError::Db(DieselError::BrokenTransactionManager)
                | StoreError::Db(DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                    _
                ))
        )
    }

    /// Nothing about any command caused it, and it passes: the connection
    /// is gone, or the server is in a state that ends on its own (a
    /// failover's read-only primary, SQLSTATE 25006; a serialization
    /// failure or a deadlock between processors, 40001 and 40P01; a full
    /// disk or memory, class 53; a server shutting down or starting, class
    /// 57P). The processor retries these without end instead of
    /// dead-lettering every command in flight during an outage. diesel
    /// names only some of these; the rest are told by the server's message
    /// (the default English locale).
    pub fn is_outage(&self) -> bool {
        if self.is_connection_lost() {
            return true;
        }
        let StoreError::Db(DieselError::DatabaseError(kind, info)) = self else {
            return false;
        };
        match kind {
            DatabaseErrorKind::SerializationFailure | DatabaseErrorKind::ReadOnlyTransaction => {
                true
            }
            DatabaseErrorKind::Unknown => {
                const PASSING: &[&str] = &[
                    "deadlock detected",
                    "could not serialize access",
                    "read-only transaction",
                    "No space left on device",
                    "out of memory",
                    "the database system is",
                    "terminating connection",
                    "conflict with recovery",
                ];
                let message = info.message();
                PASSING.iter().any(|p| message.contains(p))
            }
            _ => false,
        }
    }

    /// PostgreSQL cancelled the statement at the connection's
    /// `statement_timeout` (SQLSTATE 57014, which diesel does not name: the
    /// server's message tells, in the default English locale).
    pub fn is_statement_timeout(&self) -> bool {
        matches!(
            self,
            StoreError::Db(DieselError::DatabaseError(DatabaseErrorKind::Unknown, info))
                if info.message().contains("statement timeout")
        )
    }
}

/// A connection pool. A connection is checked (`SELECT 1`) before it is
/// handed out only when it has been idle for a while or its last query
/// failed, so a database restart costs failed attempts, not a broken pool,
/// and a busy pool does not pay a round trip per checkout (HikariCP's
/// "alive bypass window").
///
/// Every statement on its connections is cancelled by PostgreSQL after
/// `statement_timeout` (`Config::db_statement_timeout`).
pub fn connect_pool(
    url: &str,
    size: u32,
    statement_timeout: std::time::Duration,
) -> Result<PgPool, StoreError> {
    Ok(Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        .connection_timeout(std::time::Duration::from_secs(5))
        .test_on_check_out(true)
        .build(pool::Manager::new(url, statement_timeout))?)
}

/// Apply pending migrations (embedded in the binary).
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|m| m.to_string()).collect())
}

/// Is the database answering?
pub fn ping(conn: &mut PgConnection) -> Result<(), StoreError> {
    use diesel::RunQueryDsl;
    diesel::sql_query("SELECT 1").execute(conn)?;
    Ok(())
}

/// One page of a listing: the rows of `table` within `scope` (the tenant,
/// live rows) that match the request's filter, sorted as asked. A bad
/// filter or sort is `Ok(Err(..))`: the caller's mistake, not the
/// database's.
pub(crate) fn list_page<T>(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    mut scope: filter_sql::SqlFragment,
    condition: fn(
        &crate::scim::filter::Filter,
    ) -> Result<filter_sql::SqlFragment, crate::ScimError>,
    sort: fn(&crate::scim::filter::AttrPath) -> Result<String, crate::ScimError>,
    params: &crate::scim::query::ListParams,
) -> Result<Result<(i64, Vec<T>), crate::ScimError>, StoreError>
where
    T: diesel::deserialize::QueryableByName<diesel::pg::Pg> + 'static,
{
    if let Some(f) = &params.filter {
        match condition(f) {
            Ok(cond) => {
                scope.push(" AND (");
                scope.append(cond);
                scope.push(")");
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    let order = match params.sort_by.as_ref().map(sort).transpose() {
        Ok(order) => order,
        Err(e) => return Ok(Err(e)),
    };
    // One comparison (what IdPs send: `userName eq "..."`, `externalId eq
    // "..."`) gives one of a bounded set of SQL texts; those are kept
    // prepared. Combined filters can be any shape: planned each time.
    let prepared = matches!(
        params.filter,
        None | Some(Filter::Compare(..)) | Some(Filter::Present(_))
    );
    Ok(Ok(page(
        conn,
        table,
        columns,
        scope,
        order.as_deref(),
        params,
        prepared,
    )?))
}

/// One page of `table` rows matching `where_sql`, ordered by `order_by`
/// (if any) then creation time and id, so that paging is stable; and the
/// total number of matches.
fn page<T>(
    conn: &mut PgConnection,
    table: &str,
    columns: &str,
    where_sql: filter_sql::SqlFragment,
    order_by: Option<&str>,
    params: &crate::scim::query::ListParams,
    prepared: bool,
) -> Result<(i64, Vec<T>), StoreError>
where
    T: diesel::deserialize::QueryableByName<diesel::pg::Pg> + 'static,
{
    use diesel::RunQueryDsl;
    use filter_sql::{Bind, SqlFragment};

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let count =
        |conn: &mut PgConnection, where_sql: filter_sql::SqlFragment| -> Result<i64, StoreError> {
            let mut count_sql = SqlFragment::default();
            count_sql.push(&format!("SELECT count(*) AS count FROM {table} WHERE "));
            count_sql.append(where_sql);
            let row: Count = if prepared {
                count_sql.into_prepared().get_result(conn)?
            } else {
                count_sql.into_query().get_result(conn)?
            };
            Ok(row.count)
        };
    if params.count == 0 {
        return Ok((count(conn, where_sql)?, Vec::new()));
    }
    let direction = if params.descending { "DESC" } else { "ASC" };
    let mut q = SqlFragment::default();
    let where_sql_for_count = where_sql.clone();
    // Columns by name, not `*`: a prepared `*` would fail ("cached plan
    // must not change result type") once a migration adds a column.
    q.push(&format!("SELECT {columns} FROM {table} WHERE "));
    q.append(where_sql);
    q.push(" ORDER BY ");
    if let Some(expr) = order_by {
        q.push(&format!("{expr} {direction} NULLS LAST, "));
    }
    q.push(&format!(
        "{table}.created_at {direction}, {table}.id {direction} OFFSET "
    ));
    q.push_bind(Bind::BigInt(params.start_index - 1));
    q.push(" LIMIT ");
    q.push_bind(Bind::BigInt(params.count));
    let rows: Vec<T> = if prepared {
        q.into_prepared().load(conn)?
    } else {
        q.into_query().load(conn)?
    };
    // The common lookup (first page, fewer matches than the page size)
    // knows its total without counting.
    let total = if params.start_index == 1 && (rows.len() as i64) < params.count {
        rows.len() as i64
    } else {
        count(conn, where_sql_for_count)?
    };
    Ok((total, rows))
}

#[cfg(test)]
mod outage_tests {
    use super::*;

    struct Info(&'static str);
    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn db(kind: DatabaseErrorKind, message: &'static str) -> StoreError {
        StoreError::Db(DieselError::DatabaseError(kind, Box::new(Info(message))))
    }

    /// What passes by itself is an outage (retried without end); what a
    /// command's own data causes is not (it becomes that command's dead
    /// letter after its attempts).
    #[test]
    fn outages_are_what_passes_by_itself() {
        use DatabaseErrorKind as K;
        let cases = [
            (
                db(K::ClosedConnection, "server closed the connection"),
                true,
            ),
            (
                db(
                    K::SerializationFailure,
                    "could not serialize access due to concurrent update",
                ),
                true,
            ),
            (
                db(
                    K::ReadOnlyTransaction,
                    "cannot execute UPDATE in a read-only transaction",
                ),
                true,
            ),
            (db(K::Unknown, "deadlock detected"), true),
            (
                db(
                    K::Unknown,
                    "could not extend file \"base/1/2\": No space left on device",
                ),
                true,
            ),
            (db(K::Unknown, "the database system is shutting down"), true),
            (
                db(
                    K::Unknown,
                    "terminating connection due to administrator command",
                ),
                true,
            ),
            (
                db(
                    K::Unknown,
                    "canceling statement due to conflict with recovery",
                ),
                true,
            ),
            (
                db(
                    K::UniqueViolation,
                    "duplicate key value violates unique constraint",
                ),
                false,
            ),
            (
                db(K::CheckViolation, "new row violates check constraint"),
                false,
            ),
            (
                db(
                    K::Unknown,
                    "invalid byte sequence for encoding \"UTF8\": 0x00",
                ),
                false,
            ),
            (
                db(K::Unknown, "canceling statement due to statement timeout"),
                false,
            ),
        ];
        for (e, outage) in cases {
            assert_eq!(e.is_outage(), outage, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::groups::GroupRow;
    use super::schema::{groups, users};
    use super::users::UserRow;

    /// The SQL diesel renders for selecting `S`, unquoted: `a.b, a.c`.
    fn selected<S: diesel::query_builder::QueryFragment<diesel::pg::Pg>>(select: S) -> String {
        diesel::debug_query::<diesel::pg::Pg, _>(&select)
            .to_string()
            .replace('"', "")
            .split(" -- ")
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn listing_columns_are_the_row_structs_columns() {
        let cases = [
            (
                UserRow::COLUMNS,
                selected(users::table.select(UserRow::as_select())),
            ),
            (
                GroupRow::COLUMNS,
                selected(groups::table.select(GroupRow::as_select())),
            ),
        ];
        for (columns, diesel_sql) in cases {
            let table = diesel_sql.rsplit(" FROM ").next().unwrap_or_default();
            assert_eq!(
                format!("SELECT {columns} FROM {table}"),
                diesel_sql,
                "a column was added to the row struct but not to its COLUMNS"
            );
        }
    }
}
