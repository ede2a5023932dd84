//! PostgreSQL access: a connection pool, migrations, and one function per query.
//!
//! Rows come back as plain structs; the API layer turns them into Cal.com-shaped JSON. This
//! file holds the pool and [`StoreError`]; each resource has its file (`orgs`, `keys`,
//! `users`, `schedules`, `event_types`, `slot_context`, `bookings`, `webhooks`, `ics`,
//! `calendars`), each
//! adding its queries to [`Store`].

pub mod batch;
mod booker;
pub mod bookings;
pub mod cache;
pub mod calendars;
mod event_types;
pub mod ics;
mod keys;
pub mod mail;
pub mod migrations;
pub mod notify;
mod orgs;
mod schedules;
mod slot_context;
mod users;
pub mod webhooks;

pub use event_types::{EventType, NewEventType};
pub use keys::{KeyRow, NewApiKey};
pub use orgs::{NewOrg, Org, OrgPatch};
pub use schedules::{NewSchedule, Schedule, SchedulePatch};
pub use slot_context::{BusyRow, ScheduleHours, SlotContext};
pub use users::User;

use crate::pg::Connector;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// What can go wrong talking to the database, as the API needs to tell it apart.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint said no (duplicate slug, e-mail, ...): the client's mistake.
    #[error("{0}")]
    Conflict(String),
    /// A referenced row is missing or a check failed: the client's mistake.
    #[error("{0}")]
    Invalid(String),
    /// No connection could be had in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// An exclusion constraint refused an overlap (SQLSTATE 23P01).
    #[error("{0}")]
    BookingConflict(String),
    /// Deadlock or serialization failure: nothing was written; the transaction may be retried.
    #[error("transient database conflict: {0}")]
    Transient(String),
    /// The booking is not accepted (cancelled, rescheduled) and cannot change.
    #[error("{0}")]
    NotActive(String),
    /// A presented reservation does not hold the slot.
    #[error("{0}")]
    ReservationInvalid(String),
    /// An idempotency key came back with a different request.
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

pub(crate) fn classify(e: tokio_postgres::Error, what: &str) -> StoreError {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Transient(db_message(&e))
        }
        Some(c) if *c == SqlState::EXCLUSION_VIOLATION => StoreError::BookingConflict(format!(
            "{what} overlaps a booking or a held slot of the same host"
        )),
        Some(c) if *c == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(format!("{what} already exists"))
        }
        Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION || *c == SqlState::CHECK_VIOLATION => {
            StoreError::Invalid(format!("{what}: {}", db_message(&e)))
        }
        _ => StoreError::Db(e),
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    /// How every connection is made (the pool's, the batch writer's, the LISTEN ones).
    connector: Connector,
    pool: Pool,
    /// What slot queries read (in use once [`Store::keep_cache_fresh`] listens).
    cache: std::sync::Arc<cache::SlotCache>,
    /// Booking ids taken from the sequence ahead of use (see [`Store::book_directly`]).
    booking_ids: std::sync::Arc<tokio::sync::Mutex<Vec<i64>>>,
    /// Group commit of direct bookings (see [`batch`]).
    batcher: std::sync::Arc<batch::Batcher>,
}

/// Pool size and usage, for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Store {
    /// A pool for `url`, without TLS (local databases, tests); connections are made lazily.
    pub fn new(url: &str, max_size: usize) -> anyhow::Result<Store> {
        let connector =
            Connector::plain(url).map_err(|e| anyhow::anyhow!("invalid database URL: {e}"))?;
        Store::connect(connector, max_size)
    }

    /// A pool of connections made by `connector` (TLS as it says); made lazily.
    pub fn connect(connector: Connector, max_size: usize) -> anyhow::Result<Store> {
        let batcher = std::sync::Arc::new(batch::Batcher::new(connector.clone()));
        let mgr = Manager::from_config(
            connector.config().clone(),
            connector.tls(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()?;
        Ok(Store {
            connector,
            pool,
            cache: std::sync::Arc::new(cache::SlotCache::new()),
            booking_ids: Default::default(),
            batcher,
        })
    }

    /// How this store connects.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    pub fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            waiting: s.waiting,
        }
    }

    async fn conn(&self) -> Result<Object> {
        Ok(self.pool.get().await?)
    }

    /// Every row of `table` that belongs to the organization, by id. `table` and `cols` are
    /// this module's constants, never input.
    async fn org_rows<T>(
        &self,
        cols: &str,
        table: &str,
        org_id: i64,
        from_row: fn(&Row) -> T,
    ) -> Result<Vec<T>> {
        let sql = format!("SELECT {cols} FROM {table} WHERE org_id = $1 ORDER BY id");
        let rows = self.conn().await?.query(&sql, &[&org_id]).await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// One row of `table` by id, when it belongs to the organization.
    async fn org_row<T>(
        &self,
        cols: &str,
        table: &str,
        org_id: i64,
        id: i64,
        from_row: fn(&Row) -> T,
    ) -> Result<Option<T>> {
        let sql = format!("SELECT {cols} FROM {table} WHERE org_id = $1 AND id = $2");
        let row = self.conn().await?.query_opt(&sql, &[&org_id, &id]).await?;
        Ok(row.as_ref().map(from_row))
    }

    /// Apply pending migrations (under an advisory lock); returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>> {
        let mut c = self.conn().await?;
        let client: &mut tokio_postgres::Client = &mut c;
        Ok(migrations::run(client).await?)
    }

    /// A round trip, for /health.
    pub async fn ping(&self) -> Result<()> {
        let c = self.conn().await?;
        c.simple_query("SELECT 1").await?;
        Ok(())
    }
}
