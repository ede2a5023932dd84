//! PostgreSQL access: a connection pool, migrations, and one function per query.
//!
//! Rows come back as plain structs; the API layer turns them into Cal.com-shaped JSON.

pub mod batch;
pub mod bookings;
pub mod cache;
pub mod ics;
pub mod migrations;
pub mod notify;
pub mod webhooks;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use jiff::Timestamp;
use serde_json::Value;
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

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
    pool: Pool,
    /// What slot queries read (in use once [`Store::keep_cache_fresh`] listens).
    cache: std::sync::Arc<cache::SlotCache>,
    /// Booking ids taken from the sequence ahead of use (see [`Store::book_directly`]).
    booking_ids: std::sync::Arc<tokio::sync::Mutex<Vec<i64>>>,
    /// Group commit of direct bookings (see [`batch`]).
    batcher: std::sync::Arc<batch::Batcher>,
}

/// Pool size and usage, for /metrics.
#[derive(Debug, Clone, Copy)]
pub struct PoolStatus {
    pub max_size: usize,
    pub size: usize,
    pub available: usize,
    pub waiting: usize,
}

impl Store {
    /// A pool for `url`; connections are made lazily.
    pub fn new(url: &str, max_size: usize) -> anyhow::Result<Store> {
        let cfg = tokio_postgres::Config::from_str(url)
            .map_err(|e| anyhow::anyhow!("invalid database URL: {e}"))?;
        let batcher = std::sync::Arc::new(batch::Batcher::new(cfg.clone()));
        let mgr = Manager::from_config(
            cfg,
            NoTls,
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
            pool,
            cache: std::sync::Arc::new(cache::SlotCache::new()),
            booking_ids: Default::default(),
            batcher,
        })
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

    // ---- organizations -------------------------------------------------------------------

    pub async fn create_org(&self, o: &NewOrg) -> Result<Org> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO organizations (parent_id, name, slug, metadata) VALUES ($1, $2, $3, $4)
                     RETURNING {ORG_COLS}"
                ),
                &[&o.parent_id, &o.name, &o.slug, &o.metadata],
            )
            .await
            .map_err(|e| classify(e, &format!("an organization with slug {:?}", o.slug)))?;
        Ok(Org::from_row(&row))
    }

    pub async fn get_org(&self, id: i64) -> Result<Option<Org>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(Org::from_row))
    }

    pub async fn list_child_orgs(&self, parent: i64) -> Result<Vec<Org>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE parent_id = $1 ORDER BY id"),
                &[&parent],
            )
            .await?;
        Ok(rows.iter().map(Org::from_row).collect())
    }

    /// Apply the fields that are `Some`; returns the updated organization.
    pub async fn update_org(&self, id: i64, p: &OrgPatch) -> Result<Option<Org>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE organizations SET
                       name = COALESCE($2, name),
                       brand_color = CASE WHEN $3 THEN $4 ELSE brand_color END,
                       dark_brand_color = CASE WHEN $5 THEN $6 ELSE dark_brand_color END,
                       logo_url = CASE WHEN $7 THEN $8 ELSE logo_url END,
                       theme = CASE WHEN $9 THEN $10 ELSE theme END,
                       hide_branding = COALESCE($11, hide_branding),
                       metadata = COALESCE($12, metadata)
                     WHERE id = $1 RETURNING {ORG_COLS}"
                ),
                &[
                    &id,
                    &p.name,
                    &p.brand_color.is_some(),
                    &p.brand_color.clone().flatten(),
                    &p.dark_brand_color.is_some(),
                    &p.dark_brand_color.clone().flatten(),
                    &p.logo_url.is_some(),
                    &p.logo_url.clone().flatten(),
                    &p.theme.is_some(),
                    &p.theme.clone().flatten(),
                    &p.hide_branding,
                    &p.metadata,
                ],
            )
            .await?;
        Ok(row.as_ref().map(Org::from_row))
    }

    /// Is `org` the organization `ancestor` or one below it?
    pub async fn org_within(&self, ancestor: i64, org: i64) -> Result<bool> {
        if ancestor == org {
            return Ok(self.get_org(org).await?.is_some());
        }
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "WITH RECURSIVE up(id, parent_id, depth) AS (
                   SELECT id, parent_id, 0 FROM organizations WHERE id = $1
                   UNION ALL
                   SELECT o.id, o.parent_id, up.depth + 1 FROM organizations o
                     JOIN up ON o.id = up.parent_id WHERE up.depth < 64)
                 SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
            )
            .await?;
        Ok(c.query_one(&stmt, &[&org, &ancestor]).await?.get(0))
    }

    // ---- API keys ------------------------------------------------------------------------

    pub async fn create_api_key(
        &self,
        org_id: i64,
        hash: &[u8],
        prefix: &str,
        name: Option<&str>,
        scopes: &[String],
        expires_at: Option<Timestamp>,
    ) -> Result<i64> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO api_keys (org_id, key_hash, key_prefix, name, scopes, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&org_id, &hash, &prefix, &name, &scopes, &expires_at],
            )
            .await
            .map_err(|e| classify(e, "the API key"))?;
        Ok(row.get(0))
    }

    /// The organization and scopes of a live key with this hash.
    pub async fn find_api_key(&self, hash: &[u8]) -> Result<Option<KeyRow>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, org_id, scopes FROM api_keys WHERE key_hash = $1
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            )
            .await?;
        let row = c.query_opt(&stmt, &[&hash]).await?;
        Ok(row.map(|r| KeyRow {
            id: r.get(0),
            org_id: r.get(1),
            scopes: r.get(2),
        }))
    }

    // ---- users ---------------------------------------------------------------------------

    pub async fn create_user(
        &self,
        org_id: i64,
        name: &str,
        email: &str,
        tz: &str,
    ) -> Result<User> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO users (org_id, name, email, time_zone) VALUES ($1, $2, $3, $4)
                     RETURNING {USER_COLS}"
                ),
                &[&org_id, &name, &email, &tz],
            )
            .await
            .map_err(|e| classify(e, "a user with this e-mail address"))?;
        Ok(User::from_row(&row))
    }

    pub async fn list_users(&self, org_id: i64) -> Result<Vec<User>> {
        self.org_rows(USER_COLS, "users", org_id, User::from_row)
            .await
    }

    pub async fn get_user(&self, org_id: i64, id: i64) -> Result<Option<User>> {
        self.org_row(USER_COLS, "users", org_id, id, User::from_row)
            .await
    }

    // ---- schedules -----------------------------------------------------------------------

    /// Create a schedule; the first one of a user (or one marked default) becomes the default.
    pub async fn create_schedule(&self, s: &NewSchedule) -> Result<Schedule> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // Serialise default changes per user.
        tx.execute(
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
            &[&s.user_id],
        )
        .await?;
        let has_default: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schedules WHERE user_id = $1 AND is_default)",
                &[&s.user_id],
            )
            .await?
            .get(0);
        let is_default = s.is_default || !has_default;
        if is_default && has_default {
            tx.execute(
                "UPDATE schedules SET is_default = false WHERE user_id = $1 AND is_default",
                &[&s.user_id],
            )
            .await?;
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO schedules (org_id, user_id, name, time_zone, is_default, availability, overrides)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SCHEDULE_COLS}"
                ),
                &[
                    &s.org_id,
                    &s.user_id,
                    &s.name,
                    &s.time_zone,
                    &is_default,
                    &s.availability,
                    &s.overrides,
                ],
            )
            .await
            .map_err(|e| classify(e, "the schedule"))?;
        tx.commit().await?;
        self.cache.invalidate_config();
        Ok(Schedule::from_row(&row))
    }

    pub async fn list_schedules(&self, org_id: i64) -> Result<Vec<Schedule>> {
        self.org_rows(SCHEDULE_COLS, "schedules", org_id, Schedule::from_row)
            .await
    }

    pub async fn get_schedule(&self, org_id: i64, id: i64) -> Result<Option<Schedule>> {
        self.org_row(SCHEDULE_COLS, "schedules", org_id, id, Schedule::from_row)
            .await
    }

    /// Replace the given fields; returns the updated schedule.
    pub async fn update_schedule(
        &self,
        org_id: i64,
        id: i64,
        p: &SchedulePatch,
    ) -> Result<Option<Schedule>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if p.is_default == Some(true) {
            tx.execute(
                "UPDATE schedules SET is_default = false
                 WHERE user_id = (SELECT user_id FROM schedules WHERE org_id = $1 AND id = $2)
                   AND is_default AND id <> $2",
                &[&org_id, &id],
            )
            .await?;
        }
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE schedules SET name = COALESCE($3, name), time_zone = COALESCE($4, time_zone),
                       availability = COALESCE($5, availability), overrides = COALESCE($6, overrides),
                       is_default = COALESCE($7, is_default)
                     WHERE org_id = $1 AND id = $2 RETURNING {SCHEDULE_COLS}"
                ),
                &[&org_id, &id, &p.name, &p.time_zone, &p.availability, &p.overrides, &p.is_default],
            )
            .await
            .map_err(|e| classify(e, "the schedule"))?;
        tx.commit().await?;
        self.cache.invalidate_config();
        Ok(row.as_ref().map(Schedule::from_row))
    }

    pub async fn delete_schedule(&self, org_id: i64, id: i64) -> Result<bool> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "DELETE FROM schedules WHERE org_id = $1 AND id = $2",
                &[&org_id, &id],
            )
            .await?;
        self.cache.invalidate_config();
        Ok(n > 0)
    }

    // ---- event types ---------------------------------------------------------------------

    pub async fn create_event_type(&self, e: &NewEventType) -> Result<EventType> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO event_types (org_id, user_id, schedule_id, title, slug, description,
                       length_minutes, slot_interval, minimum_booking_notice, before_event_buffer,
                       after_event_buffer, booking_window, per_day_limit)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING {EVENT_TYPE_COLS}"
                ),
                &[
                    &e.org_id,
                    &e.user_id,
                    &e.schedule_id,
                    &e.title,
                    &e.slug,
                    &e.description,
                    &e.length_minutes,
                    &e.slot_interval,
                    &e.minimum_booking_notice,
                    &e.before_event_buffer,
                    &e.after_event_buffer,
                    &e.booking_window,
                    &e.per_day_limit,
                ],
            )
            .await
            .map_err(|err| classify(err, &format!("an event type with slug {:?} for this host", e.slug)))?;
        Ok(EventType::from_row(&row))
    }

    /// Replace every field of event type `id` (in `e.org_id`) with `e`'s.
    pub async fn update_event_type(&self, id: i64, e: &NewEventType) -> Result<Option<EventType>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE event_types SET schedule_id = $3, title = $4, slug = $5, description = $6,
                       length_minutes = $7, slot_interval = $8, minimum_booking_notice = $9,
                       before_event_buffer = $10, after_event_buffer = $11, booking_window = $12,
                       per_day_limit = $13
                     WHERE org_id = $1 AND id = $2 RETURNING {EVENT_TYPE_COLS}"
                ),
                &[
                    &e.org_id,
                    &id,
                    &e.schedule_id,
                    &e.title,
                    &e.slug,
                    &e.description,
                    &e.length_minutes,
                    &e.slot_interval,
                    &e.minimum_booking_notice,
                    &e.before_event_buffer,
                    &e.after_event_buffer,
                    &e.booking_window,
                    &e.per_day_limit,
                ],
            )
            .await
            .map_err(|err| classify(err, &format!("an event type with slug {:?} for this host", e.slug)))?;
        self.cache.invalidate_config();
        Ok(row.as_ref().map(EventType::from_row))
    }

    pub async fn list_event_types(&self, org_id: i64) -> Result<Vec<EventType>> {
        self.org_rows(EVENT_TYPE_COLS, "event_types", org_id, EventType::from_row)
            .await
    }

    pub async fn get_event_type(&self, org_id: i64, id: i64) -> Result<Option<EventType>> {
        self.org_row(
            EVENT_TYPE_COLS,
            "event_types",
            org_id,
            id,
            EventType::from_row,
        )
        .await
    }

    pub async fn delete_event_type(&self, org_id: i64, id: i64) -> Result<bool> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "DELETE FROM event_types e WHERE org_id = $1 AND id = $2
                   AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.event_type_id = e.id)",
                &[&org_id, &id],
            )
            .await?;
        self.cache.invalidate_config();
        if n == 0 && self.get_event_type(org_id, id).await?.is_some() {
            return Err(StoreError::Conflict(
                "the event type has bookings and cannot be deleted".into(),
            ));
        }
        Ok(n > 0)
    }

    // ---- slots ---------------------------------------------------------------------------

    /// Everything a slots query needs: the event type, the schedule it uses (its own, else the
    /// host's default), and the host's accepted bookings and live slot holds overlapping
    /// `[from, to)` with their buffers. `None` when the event type is not in `org_id`. Served
    /// from the cache when it holds the event type and the host's busy time over the range;
    /// otherwise loaded in one round trip (and kept when the cache is in use).
    pub async fn slot_context(
        &self,
        org_id: i64,
        event_type_id: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<SlotContext>> {
        let assemble =
            |config: &cache::Config, busy: &cache::HostBusy| busy.context(config, from, to, None);
        let lookup = || {
            let config = self.cache.config(org_id, event_type_id);
            let busy = config
                .as_ref()
                .and_then(|c| self.cache.busy(c.event_type.user_id));
            match (&config, &busy) {
                (Some(c), Some(b)) if b.covers(from, to) => Ok(assemble(c, b)),
                _ => Err(busy),
            }
        };
        let cached = match lookup() {
            Ok(ctx) => {
                self.cache.record(true);
                return Ok(Some(ctx));
            }
            Err(cached) => cached,
        };
        if !self.cache.is_active() {
            return self
                .fresh_slot_context(org_id, event_type_id, from, to, None)
                .await;
        }
        // Queue behind a load of the same event type already under way, then look again.
        let flight = self.cache.flight(org_id, event_type_id);
        let _flight = flight.lock().await;
        let cached = match lookup() {
            Ok(ctx) => {
                self.cache.record(true);
                return Ok(Some(ctx));
            }
            Err(again) => again.or(cached),
        };
        let ticket = self.cache.ticket();
        if ticket.is_some() {
            self.cache.record(false);
        }
        let (lo, hi) = cache::load_range(cached.as_deref(), from, to);
        let Some((config, busy)) = self.load_slot_data(org_id, event_type_id, lo, hi).await? else {
            return Ok(None);
        };
        let (config, busy) = (std::sync::Arc::new(config), std::sync::Arc::new(busy));
        let ctx = assemble(&config, &busy);
        if let Some(t) = ticket {
            self.cache.put(t, org_id, config, Some(busy));
        }
        Ok(Some(ctx))
    }

    /// [`Store::slot_context`] read from the database, never from the cache, leaving out the
    /// hold `mine` (the one a booking presents): what a booking checks right before it writes.
    pub async fn fresh_slot_context(
        &self,
        org_id: i64,
        event_type_id: i64,
        from: Timestamp,
        to: Timestamp,
        mine: Option<uuid::Uuid>,
    ) -> Result<Option<SlotContext>> {
        Ok(self
            .load_slot_data(org_id, event_type_id, from, to)
            .await?
            .map(|(c, b)| b.context(&c, from, to, mine)))
    }

    /// The event type with its host and the host's hours, from the cache when it has them.
    /// `None` when the event type is not in the organization.
    pub async fn slot_config(
        &self,
        org_id: i64,
        event_type_id: i64,
    ) -> Result<Option<std::sync::Arc<cache::Config>>> {
        if let Some(c) = self.cache.config(org_id, event_type_id) {
            self.cache.record(true);
            return Ok(Some(c));
        }
        let ticket = self.cache.ticket();
        if ticket.is_some() {
            self.cache.record(false);
        }
        // An empty range: no busy time to read.
        let now = Timestamp::now();
        let Some((config, _)) = self.load_slot_data(org_id, event_type_id, now, now).await? else {
            return Ok(None);
        };
        let config = std::sync::Arc::new(config);
        if let Some(t) = ticket {
            self.cache.put(t, org_id, config.clone(), None);
        }
        Ok(Some(config))
    }

    /// The event type, its host's hours, and the host's accepted bookings and live holds that
    /// overlap `[from, to)`, in one query.
    async fn load_slot_data(
        &self,
        org_id: i64,
        event_type_id: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Option<(cache::Config, cache::HostBusy)>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {EVENT_TYPE_COLS_E}, s.time_zone, s.availability, s.overrides,
                        busy.starts, busy.ends, busy.befores, busy.afters, busy.types,
                        busy.holds, busy.expires, u.name, u.email, u.time_zone
                 FROM event_types e
                 JOIN users u ON u.id = e.user_id
                 LEFT JOIN schedules s ON s.id = COALESCE(e.schedule_id,
                   (SELECT d.id FROM schedules d WHERE d.user_id = e.user_id AND d.is_default LIMIT 1))
                 LEFT JOIN LATERAL (
                   -- Aggregates of one query level see the rows in the same order, so the
                   -- arrays line up; slot computation sorts busy time itself.
                   SELECT array_agg(b.start_at) AS starts,
                          array_agg(b.end_at) AS ends,
                          array_agg(b.before_buffer_minutes) AS befores,
                          array_agg(b.after_buffer_minutes) AS afters,
                          array_agg(b.event_type_id) AS types,
                          array_agg(b.hold) AS holds,
                          array_agg(b.expires_at) AS expires
                   FROM (SELECT start_at, end_at, before_buffer_minutes, after_buffer_minutes,
                                event_type_id, NULL::uuid AS hold, NULL::timestamptz AS expires_at
                         FROM bookings
                         WHERE host_user_id = e.user_id AND status = 'accepted'
                           AND start_at < $4 AND end_at > $3
                           -- A booking lasts at most a day (length_minutes <= 1440): this
                           -- bounds the index range scan from below too.
                           AND start_at > $3::timestamptz - interval '1 day'
                         UNION ALL
                         SELECT start_at, end_at, before_buffer_minutes, after_buffer_minutes,
                                NULL, uid, expires_at
                         FROM slot_reservations
                         WHERE host_user_id = e.user_id AND expires_at > now()
                           AND start_at < $4 AND end_at > $3) b) busy ON true
                 WHERE e.org_id = $1 AND e.id = $2"
            ))
            .await?;
        let row = c
            .query_opt(&stmt, &[&org_id, &event_type_id, &from, &to])
            .await?;
        Ok(row.map(|r| {
            let event_type = EventType::from_row(&r);
            let schedule = r.get::<_, Option<String>>(15).map(|tz| ScheduleHours {
                time_zone: tz,
                availability: r.get(16),
                overrides: r.get(17),
            });
            let starts: Vec<Timestamp> = r.get::<_, Option<_>>(18).unwrap_or_default();
            let ends: Vec<Timestamp> = r.get::<_, Option<_>>(19).unwrap_or_default();
            let befores: Vec<i32> = r.get::<_, Option<_>>(20).unwrap_or_default();
            let afters: Vec<i32> = r.get::<_, Option<_>>(21).unwrap_or_default();
            let types: Vec<Option<i64>> = r.get::<_, Option<_>>(22).unwrap_or_default();
            let holds: Vec<Option<uuid::Uuid>> = r.get::<_, Option<_>>(23).unwrap_or_default();
            let expires: Vec<Option<Timestamp>> = r.get::<_, Option<_>>(24).unwrap_or_default();
            let n = [
                starts.len(),
                ends.len(),
                befores.len(),
                afters.len(),
                types.len(),
                holds.len(),
                expires.len(),
            ]
            .into_iter()
            .min()
            .unwrap_or(0);
            let rows = (0..n)
                .map(|i| cache::RawBusy {
                    start: starts[i],
                    end: ends[i],
                    before_buffer: befores[i],
                    after_buffer: afters[i],
                    event_type_id: types[i],
                    hold: holds[i].zip(expires[i]),
                })
                .collect();
            (
                cache::Config {
                    event_type,
                    schedule,
                    host: cache::Host {
                        name: r.get(25),
                        email: r.get(26),
                        time_zone: r.get(27),
                    },
                },
                cache::HostBusy { from, to, rows },
            )
        }))
    }

    /// The cache of what slot queries read.
    pub fn cache(&self) -> &std::sync::Arc<cache::SlotCache> {
        &self.cache
    }

    /// Keep the cache fresh from the database's notifications (see [`cache`]) until `stopped`
    /// turns true; the cache is in use only while this listens.
    pub async fn keep_cache_fresh(
        &self,
        database_url: String,
        stopped: tokio::sync::watch::Receiver<bool>,
    ) {
        let cache = self.cache.clone();
        notify::listen(database_url, &[cache::CHANNEL], stopped, move |e| match e {
            notify::Event::Listening => cache.set_active(true),
            notify::Event::Notification { payload, .. } => cache.apply(payload),
            notify::Event::Lost => cache.set_active(false),
        })
        .await;
        self.cache.set_active(false);
    }

    // ---- bookings (part 1 only stores them for busy time; the API comes in part 2) ---------

    /// Insert an accepted booking of `event_type_id` at `[start, end)`, copying the type's
    /// buffers and host. Returns the booking's uid.
    pub async fn insert_accepted_booking(
        &self,
        org_id: i64,
        event_type_id: i64,
        start: Timestamp,
        end: Timestamp,
        attendee: &Value,
    ) -> Result<uuid::Uuid> {
        let c = self.conn().await?;
        let uid = uuid::Uuid::new_v4();
        let n = c
            .execute(
                "INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at,
                   status, before_buffer_minutes, after_buffer_minutes, attendee)
                 SELECT $1, org_id, id, user_id, $3, $4, 'accepted', before_event_buffer,
                   after_event_buffer, $5
                 FROM event_types WHERE org_id = $2 AND id = $6",
                &[&uid, &org_id, &start, &end, attendee, &event_type_id],
            )
            .await
            .map_err(|e| classify(e, "the booking"))?;
        self.cache.flush_all();
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "event type {event_type_id} not found in organization {org_id}"
            )));
        }
        Ok(uid)
    }
}

const ORG_COLS: &str = "id, parent_id, name, slug, brand_color, dark_brand_color, logo_url, theme, hide_branding, metadata, created_at";
const USER_COLS: &str = "id, org_id, name, email, time_zone, created_at";
const SCHEDULE_COLS: &str =
    "id, org_id, user_id, name, time_zone, is_default, availability, overrides";
const EVENT_TYPE_COLS: &str = "id, org_id, user_id, schedule_id, title, slug, description, length_minutes, slot_interval, minimum_booking_notice, before_event_buffer, after_event_buffer, booking_window, per_day_limit, created_at";
const EVENT_TYPE_COLS_E: &str = "e.id, e.org_id, e.user_id, e.schedule_id, e.title, e.slug, e.description, e.length_minutes, e.slot_interval, e.minimum_booking_notice, e.before_event_buffer, e.after_event_buffer, e.booking_window, e.per_day_limit, e.created_at";

#[derive(Debug, Clone)]
pub struct NewOrg {
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub metadata: Value,
}

#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the field.
    pub brand_color: Option<Option<String>>,
    pub dark_brand_color: Option<Option<String>>,
    pub logo_url: Option<Option<String>>,
    pub theme: Option<Option<String>>,
    pub hide_branding: Option<bool>,
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub brand_color: Option<String>,
    pub dark_brand_color: Option<String>,
    pub logo_url: Option<String>,
    pub theme: Option<String>,
    pub hide_branding: bool,
    pub metadata: Value,
    pub created_at: Timestamp,
}

impl Org {
    fn from_row(r: &Row) -> Org {
        Org {
            id: r.get(0),
            parent_id: r.get(1),
            name: r.get(2),
            slug: r.get(3),
            brand_color: r.get(4),
            dark_brand_color: r.get(5),
            logo_url: r.get(6),
            theme: r.get(7),
            hide_branding: r.get(8),
            metadata: r.get(9),
            created_at: r.get(10),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i64,
    pub org_id: i64,
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub email: String,
    pub time_zone: String,
    pub created_at: Timestamp,
}

impl User {
    fn from_row(r: &Row) -> User {
        User {
            id: r.get(0),
            org_id: r.get(1),
            name: r.get(2),
            email: r.get(3),
            time_zone: r.get(4),
            created_at: r.get(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub org_id: i64,
    pub user_id: i64,
    pub name: String,
    pub time_zone: String,
    pub is_default: bool,
    pub availability: Value,
    pub overrides: Value,
}

#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub availability: Option<Value>,
    pub overrides: Option<Value>,
    pub is_default: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    pub name: String,
    pub time_zone: String,
    pub is_default: bool,
    pub availability: Value,
    pub overrides: Value,
}

impl Schedule {
    fn from_row(r: &Row) -> Schedule {
        Schedule {
            id: r.get(0),
            org_id: r.get(1),
            user_id: r.get(2),
            name: r.get(3),
            time_zone: r.get(4),
            is_default: r.get(5),
            availability: r.get(6),
            overrides: r.get(7),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEventType {
    pub org_id: i64,
    pub user_id: i64,
    pub schedule_id: Option<i64>,
    pub title: String,
    pub slug: String,
    pub description: Option<String>,
    pub length_minutes: i32,
    pub slot_interval: Option<i32>,
    pub minimum_booking_notice: i32,
    pub before_event_buffer: i32,
    pub after_event_buffer: i32,
    pub booking_window: Option<Value>,
    pub per_day_limit: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct EventType {
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    pub schedule_id: Option<i64>,
    pub title: String,
    pub slug: String,
    pub description: Option<String>,
    pub length_minutes: i32,
    pub slot_interval: Option<i32>,
    pub minimum_booking_notice: i32,
    pub before_event_buffer: i32,
    pub after_event_buffer: i32,
    pub booking_window: Option<Value>,
    pub per_day_limit: Option<i32>,
    pub created_at: Timestamp,
}

impl EventType {
    fn from_row(r: &Row) -> EventType {
        EventType {
            id: r.get(0),
            org_id: r.get(1),
            user_id: r.get(2),
            schedule_id: r.get(3),
            title: r.get(4),
            slug: r.get(5),
            description: r.get(6),
            length_minutes: r.get(7),
            slot_interval: r.get(8),
            minimum_booking_notice: r.get(9),
            before_event_buffer: r.get(10),
            after_event_buffer: r.get(11),
            booking_window: r.get(12),
            per_day_limit: r.get(13),
            created_at: r.get(14),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ScheduleHours {
    pub time_zone: String,
    pub availability: Value,
    pub overrides: Value,
}

#[derive(Debug, Clone)]
pub struct SlotContext {
    pub event_type: EventType,
    /// `None` when the host has no schedule at all.
    pub schedule: Option<ScheduleHours>,
    /// The host's accepted bookings in the asked-for window (in no particular order).
    pub busy: Vec<BusyRow>,
}

#[derive(Debug, Clone, Copy)]
pub struct BusyRow {
    pub start: Timestamp,
    pub end: Timestamp,
    pub before_buffer: i32,
    pub after_buffer: i32,
    pub same_event_type: bool,
}
