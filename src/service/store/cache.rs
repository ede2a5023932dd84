//! What slot queries read, kept in memory: each event type with its host's hours, and each
//! host's busy time (accepted bookings, slot holds, and busy intervals of connected calendars)
//! over the range loaded last.
//!
//! It also keeps what a booking page's path names (see [`Booker`]): the organization chain,
//! the host and the event type, so that the booker reads nothing from the database when the
//! slot data is cached too.
//!
//! Freshness comes from PostgreSQL: triggers (migration 5) send `NOTIFY calops_cache` with
//! `h<host id>` when a host's bookings or holds change and `c` when event types, schedules
//! or users change, or organizations (migration 12) (and `k` when API keys change, for the
//! key cache: migration 7); [`SlotCache::apply`] drops what a notification names, and every
//! replica listens. Writes through this process also drop what they changed before they answer, so
//! a client reads its own writes at once; another replica's writes show up as soon as their
//! notification arrives (the commit sends it).
//!
//! A load that raced an invalidation is not kept: [`SlotCache::ticket`] is taken before the
//! query, and [`SlotCache::put`] refuses the result when what it loaded was invalidated after
//! the ticket. While the LISTEN connection is down nothing is cached or served from the cache
//! (notifications could be missed); when it listens again everything is dropped.
//!
//! The cache only saves reads: bookings are still decided by the database's exclusion
//! constraints.

use super::{EventType, Org, ScheduleHours, User};
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The notification channel.
pub const CHANNEL: &str = "calops_cache";
/// The payload that says API keys changed (revoked, expired by hand, deleted; migration 7):
/// not the slot cache's business, the key cache (`service::principal::KeyCache`) drops
/// everything it holds.
pub const KEYS: &str = "k";

/// Entries kept before a map is emptied and refilled (a crude bound on memory).
const MAX_ENTRIES: usize = 10_000;
/// The widest busy range kept for one host (wider loads are used once, not kept).
const MAX_SPAN_SECS: i64 = 120 * 86_400;

/// An event type with the hours of its host that slots are computed from.
#[derive(Debug, Clone)]
pub struct Config {
    pub event_type: EventType,
    /// `None` when the host has no schedule at all.
    pub schedule: Option<ScheduleHours>,
    /// The host as bookings show it.
    pub host: Host,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub email: String,
    pub time_zone: String,
    pub username: String,
    /// Whether busy time from connected calendars counts for this host (then a booking is
    /// checked against the database's busy time, not by the exclusion constraint alone).
    pub has_calendars: bool,
}

/// What a booking page's path (`/{org path}/{host}/{event type}`) names: the organization
/// chain (nearest first), the host and the event type. Dropped with the configs (`c`).
#[derive(Debug, Clone)]
pub struct Booker {
    pub chain: Vec<Org>,
    pub user: User,
    pub event_type: EventType,
}

/// A booker path: the organization's slug path (`top.child`), the host's and the event
/// type's slugs.
pub type BookerPath = (String, String, String);

/// One accepted booking or slot hold of a host, as loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RawBusy {
    pub start: Timestamp,
    pub end: Timestamp,
    pub before_buffer: i32,
    pub after_buffer: i32,
    /// The booking's event type; `None` for a hold.
    pub event_type_id: Option<i64>,
    /// A hold's uid and expiry; `None` for a booking.
    pub hold: Option<(uuid::Uuid, Timestamp)>,
}

/// A host's busy time overlapping `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostBusy {
    pub from: Timestamp,
    pub to: Timestamp,
    pub rows: Vec<RawBusy>,
}

impl HostBusy {
    pub fn covers(&self, from: Timestamp, to: Timestamp) -> bool {
        self.from <= from && to <= self.to
    }

    /// The slot context of `config`'s event type over `[from, to)`, as of now, leaving out the
    /// hold `mine`.
    pub fn context(
        &self,
        config: &Config,
        from: Timestamp,
        to: Timestamp,
        mine: Option<uuid::Uuid>,
    ) -> super::SlotContext {
        super::SlotContext {
            event_type: config.event_type.clone(),
            schedule: config.schedule.clone(),
            busy: self.rows_for(from, to, Timestamp::now(), config.event_type.id, mine),
        }
    }

    /// The rows that count as busy over `[from, to)` at `now` for event type `event_type_id`,
    /// leaving out the hold `mine`.
    pub fn rows_for(
        &self,
        from: Timestamp,
        to: Timestamp,
        now: Timestamp,
        event_type_id: i64,
        mine: Option<uuid::Uuid>,
    ) -> Vec<super::BusyRow> {
        self.rows
            .iter()
            .filter(|r| r.start < to && r.end > from)
            .filter(|r| match r.hold {
                Some((uid, expires)) => expires > now && Some(uid) != mine,
                None => true,
            })
            .map(|r| super::BusyRow {
                start: r.start,
                end: r.end,
                before_buffer: r.before_buffer,
                after_buffer: r.after_buffer,
                same_event_type: r.event_type_id == Some(event_type_id),
            })
            .collect()
    }
}

/// Taken before a load: what had been invalidated by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

#[derive(Default)]
struct Inner {
    /// Counts invalidations; a ticket is its value.
    seq: u64,
    /// When everything was last dropped.
    all_at: u64,
    /// When configs were last dropped.
    config_at: u64,
    /// When each host's busy time was last dropped.
    host_at: HashMap<i64, u64>,
    configs: HashMap<(i64, i64), Arc<Config>>,
    busy: HashMap<i64, Arc<HostBusy>>,
    bookers: HashMap<BookerPath, Arc<Booker>>,
    /// One load at a time per event type: after an invalidation the first query reloads
    /// and the ones that arrive meanwhile wait for it instead of all reading the database.
    flights: HashMap<(i64, i64), Arc<tokio::sync::Mutex<()>>>,
}

/// See the module documentation.
#[derive(Default)]
pub struct SlotCache {
    active: AtomicBool,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters for /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub active: bool,
    pub hits: u64,
    pub misses: u64,
}

impl SlotCache {
    pub fn new() -> SlotCache {
        SlotCache::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent (every change is
        // a single insert or removal), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a query answered from memory (`true`) or loaded while the cache was in use.
    pub fn record(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            active: self.is_active(),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Is the cache in use (its LISTEN connection is up)?
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Start (after LISTEN took effect) or stop (when the connection is lost) using the
    /// cache; either way everything cached so far is dropped.
    pub fn set_active(&self, on: bool) {
        if on {
            self.flush_all();
            self.active.store(true, Ordering::Release);
        } else {
            self.active.store(false, Ordering::Release);
            self.flush_all();
        }
    }

    /// A ticket for a load that may be kept; `None` while the cache is not in use.
    pub fn ticket(&self) -> Option<Ticket> {
        if !self.is_active() {
            return None;
        }
        Some(Ticket(self.lock().seq))
    }

    pub fn config(&self, org_id: i64, event_type_id: i64) -> Option<Arc<Config>> {
        if !self.is_active() {
            return None;
        }
        self.lock().configs.get(&(org_id, event_type_id)).cloned()
    }

    /// The host's busy time as last loaded (it may not cover the range a caller needs).
    pub fn busy(&self, host: i64) -> Option<Arc<HostBusy>> {
        if !self.is_active() {
            return None;
        }
        self.lock().busy.get(&host).cloned()
    }

    /// The lock that loads of event type `(org_id, event_type_id)` take (see `Inner::flights`).
    pub fn flight(&self, org_id: i64, event_type_id: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut inner = self.lock();
        if inner.flights.len() >= MAX_ENTRIES {
            inner.flights.clear();
        }
        inner
            .flights
            .entry((org_id, event_type_id))
            .or_default()
            .clone()
    }

    /// Keep what a load with `ticket` read, unless it was invalidated since.
    pub fn put(
        &self,
        ticket: Ticket,
        org_id: i64,
        config: Arc<Config>,
        busy: Option<Arc<HostBusy>>,
    ) {
        let mut inner = self.lock();
        let t = ticket.0;
        if inner.all_at > t {
            return;
        }
        if inner.config_at <= t {
            if inner.configs.len() >= MAX_ENTRIES {
                inner.configs.clear();
            }
            inner
                .configs
                .insert((org_id, config.event_type.id), config.clone());
        }
        let host = config.event_type.user_id;
        if let Some(b) = busy {
            let fresh = inner.host_at.get(&host).is_none_or(|&at| at <= t);
            let span = b.to.as_second() - b.from.as_second();
            if fresh && span <= MAX_SPAN_SECS {
                if inner.busy.len() >= MAX_ENTRIES {
                    inner.busy.clear();
                }
                inner.busy.insert(host, b);
            }
        }
    }

    /// What the booker path names, when it is cached.
    pub fn booker(&self, path: &BookerPath) -> Option<Arc<Booker>> {
        if !self.is_active() {
            return None;
        }
        self.lock().bookers.get(path).cloned()
    }

    /// Keep what a load with `ticket` found at a booker path, unless configs (or everything)
    /// were invalidated since.
    pub fn put_booker(&self, ticket: Ticket, path: BookerPath, booker: Arc<Booker>) {
        let mut inner = self.lock();
        let t = ticket.0;
        if inner.all_at > t || inner.config_at > t {
            return;
        }
        if inner.bookers.len() >= MAX_ENTRIES {
            inner.bookers.clear();
        }
        inner.bookers.insert(path, booker);
    }

    /// Drop the host's busy time.
    pub fn invalidate_host(&self, host: i64) {
        let mut inner = self.lock();
        inner.seq += 1;
        let seq = inner.seq;
        inner.busy.remove(&host);
        if inner.host_at.len() >= 10 * MAX_ENTRIES {
            // Forgetting when hosts were invalidated is safe only as "everything just was".
            inner.host_at.clear();
            inner.busy.clear();
            inner.all_at = seq;
        }
        inner.host_at.insert(host, seq);
    }

    /// Drop every event type and its hours, and every booker path (organizations, hosts and
    /// event types).
    pub fn invalidate_config(&self) {
        let mut inner = self.lock();
        inner.seq += 1;
        inner.config_at = inner.seq;
        inner.configs.clear();
        inner.bookers.clear();
    }

    /// Drop everything.
    pub fn flush_all(&self) {
        let mut inner = self.lock();
        inner.seq += 1;
        inner.all_at = inner.seq;
        inner.configs.clear();
        inner.busy.clear();
        inner.bookers.clear();
        inner.host_at.clear();
    }

    /// Act on a notification payload: `h<host id>` or `c`; [`KEYS`] is not about slots;
    /// anything else drops everything.
    pub fn apply(&self, payload: &str) {
        match payload.strip_prefix('h').map(str::parse::<i64>) {
            Some(Ok(host)) => self.invalidate_host(host),
            _ if payload == "c" => self.invalidate_config(),
            _ if payload == KEYS => {}
            _ => self.flush_all(),
        }
    }
}

/// The range to load for a query over `[from, to)` when the host's cached busy time (if any)
/// does not cover it: the union with what is cached when that stays narrow enough, so that
/// neighbouring queries (next week, next month) keep hitting.
pub fn load_range(
    cached: Option<&HostBusy>,
    from: Timestamp,
    to: Timestamp,
) -> (Timestamp, Timestamp) {
    match cached {
        Some(c) => {
            let (lo, hi) = (c.from.min(from), c.to.max(to));
            if hi.as_second() - lo.as_second() <= MAX_SPAN_SECS {
                (lo, hi)
            } else {
                (from, to)
            }
        }
        None => (from, to),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn config(id: i64, host: i64) -> Arc<Config> {
        Arc::new(Config {
            event_type: EventType {
                id,
                org_id: 1,
                user_id: host,
                schedule_id: None,
                title: "Call".into(),
                slug: "call".into(),
                description: None,
                length_minutes: 30,
                slot_interval: None,
                minimum_booking_notice: 0,
                before_event_buffer: 0,
                after_event_buffer: 0,
                booking_window: None,
                per_day_limit: None,
                created_at: ts("2030-01-01T00:00:00Z"),
                offset_start: 0,
                length_options: None,
                locations: serde_json::json!([]),
                disable_guests: false,
                mail_enabled: true,
                mail_reminders: Vec::new(),
            },
            schedule: None,
            host: Host::default(),
        })
    }

    fn busy(from: &str, to: &str) -> Arc<HostBusy> {
        Arc::new(HostBusy {
            from: ts(from),
            to: ts(to),
            rows: vec![],
        })
    }

    fn active() -> SlotCache {
        let c = SlotCache::new();
        c.set_active(true);
        c
    }

    #[test]
    fn nothing_is_cached_or_served_while_inactive() {
        let c = SlotCache::new();
        assert!(c.ticket().is_none());
        c.set_active(true);
        let t = c.ticket().unwrap();
        c.put(
            t,
            1,
            config(5, 9),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        assert!(c.config(1, 5).is_some() && c.busy(9).is_some());
        c.set_active(false);
        assert!(c.config(1, 5).is_none() && c.busy(9).is_none());
        c.set_active(true);
        assert!(
            c.config(1, 5).is_none(),
            "reconnecting drops what was cached before"
        );
    }

    #[test]
    fn a_load_that_raced_an_invalidation_is_not_kept() {
        let c = active();
        let t = c.ticket().unwrap();
        c.invalidate_host(9);
        c.put(
            t,
            1,
            config(5, 9),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        assert!(c.busy(9).is_none(), "host 9 changed after the load began");
        assert!(c.config(1, 5).is_some(), "the config was not invalidated");

        let t = c.ticket().unwrap();
        c.invalidate_host(10);
        c.put(
            t,
            1,
            config(5, 9),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        assert!(c.busy(9).is_some(), "another host's change does not matter");

        let t = c.ticket().unwrap();
        c.apply("c");
        c.put(t, 1, config(6, 9), None);
        assert!(c.config(1, 6).is_none());
        assert!(
            c.config(1, 5).is_none(),
            "a config notification drops every config"
        );

        let t = c.ticket().unwrap();
        c.apply("bogus");
        c.put(
            t,
            1,
            config(7, 11),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        assert!(c.config(1, 7).is_none() && c.busy(11).is_none());
        assert!(c.busy(9).is_none(), "an unknown payload drops everything");
    }

    fn booker() -> Arc<Booker> {
        let org = Org {
            id: 1,
            parent_id: None,
            name: "Acme".into(),
            slug: "acme".into(),
            brand_color: None,
            dark_brand_color: None,
            logo_url: None,
            theme: None,
            hide_branding: false,
            metadata: serde_json::json!({}),
            created_at: ts("2030-01-01T00:00:00Z"),
            embed_origins: None,
        };
        let user = User {
            id: 9,
            org_id: 1,
            name: "Ada".into(),
            email: "ada@example.com".into(),
            time_zone: "UTC".into(),
            created_at: ts("2030-01-01T00:00:00Z"),
            username: "ada".into(),
            slug: "ada".into(),
        };
        Arc::new(Booker {
            chain: vec![org],
            user,
            event_type: config(5, 9).event_type.clone(),
        })
    }

    #[test]
    fn booker_paths_are_dropped_with_the_configs_and_never_kept_from_a_raced_load() {
        let path: BookerPath = ("acme".into(), "ada".into(), "call".into());
        let c = SlotCache::new();
        let t = c.ticket();
        assert!(t.is_none(), "nothing is kept while inactive");
        c.set_active(true);
        let t = c.ticket().unwrap();
        c.put_booker(t, path.clone(), booker());
        assert_eq!(c.booker(&path).unwrap().user.slug, "ada");
        c.apply("h9");
        c.apply(KEYS);
        assert!(
            c.booker(&path).is_some(),
            "bookings and keys leave it alone"
        );
        c.apply("c");
        assert!(
            c.booker(&path).is_none(),
            "organizations, hosts, event types"
        );

        let t = c.ticket().unwrap();
        c.apply("c");
        c.put_booker(t, path.clone(), booker());
        assert!(
            c.booker(&path).is_none(),
            "loaded before the change, not kept"
        );
        let t = c.ticket().unwrap();
        c.apply("*");
        c.put_booker(t, path.clone(), booker());
        assert!(c.booker(&path).is_none());

        let t = c.ticket().unwrap();
        c.put_booker(t, path.clone(), booker());
        c.set_active(false);
        assert!(c.booker(&path).is_none(), "not served while not listening");
    }

    #[test]
    fn notifications_name_the_host() {
        let c = active();
        let t = c.ticket().unwrap();
        c.put(
            t,
            1,
            config(5, 9),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        c.put(
            t,
            1,
            config(6, 12),
            Some(busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z")),
        );
        c.apply("h12");
        assert!(c.busy(12).is_none());
        assert!(c.busy(9).is_some() && c.config(1, 6).is_some());
        c.apply(KEYS);
        assert!(
            c.busy(9).is_some() && c.config(1, 6).is_some(),
            "a key change leaves slots alone"
        );
    }

    #[test]
    fn rows_are_filtered_by_range_expiry_and_the_callers_own_hold() {
        let mine = uuid::Uuid::new_v4();
        let other = uuid::Uuid::new_v4();
        let row = |s: &str, e: &str, et: Option<i64>, hold: Option<(uuid::Uuid, &str)>| RawBusy {
            start: ts(s),
            end: ts(e),
            before_buffer: 5,
            after_buffer: 10,
            event_type_id: et,
            hold: hold.map(|(u, x)| (u, ts(x))),
        };
        let b = HostBusy {
            from: ts("2031-03-01T00:00:00Z"),
            to: ts("2031-03-31T00:00:00Z"),
            rows: vec![
                row(
                    "2031-03-02T09:00:00Z",
                    "2031-03-02T09:30:00Z",
                    Some(5),
                    None,
                ),
                row(
                    "2031-03-02T10:00:00Z",
                    "2031-03-02T10:30:00Z",
                    Some(6),
                    None,
                ),
                row(
                    "2031-03-20T10:00:00Z",
                    "2031-03-20T10:30:00Z",
                    Some(5),
                    None,
                ),
                row(
                    "2031-03-02T11:00:00Z",
                    "2031-03-02T11:30:00Z",
                    None,
                    Some((mine, "2031-03-02T12:00:00Z")),
                ),
                row(
                    "2031-03-02T12:00:00Z",
                    "2031-03-02T12:30:00Z",
                    None,
                    Some((other, "2031-03-02T12:00:00Z")),
                ),
                row(
                    "2031-03-02T13:00:00Z",
                    "2031-03-02T13:30:00Z",
                    None,
                    Some((other, "2031-03-02T12:00:01Z")),
                ),
            ],
        };
        let got = b.rows_for(
            ts("2031-03-02T00:00:00Z"),
            ts("2031-03-03T00:00:00Z"),
            ts("2031-03-02T12:00:00Z"),
            5,
            Some(mine),
        );
        let starts: Vec<String> = got.iter().map(|r| r.start.to_string()).collect();
        assert_eq!(
            starts,
            [
                "2031-03-02T09:00:00Z",
                "2031-03-02T10:00:00Z",
                "2031-03-02T13:00:00Z"
            ],
            "out of range, my own hold and an expired hold are left out"
        );
        assert_eq!(
            got.iter().map(|r| r.same_event_type).collect::<Vec<_>>(),
            [true, false, false]
        );
        assert_eq!((got[0].before_buffer, got[0].after_buffer), (5, 10));
    }

    #[test]
    fn loads_widen_to_neighbouring_ranges_but_not_without_bound() {
        let c = busy("2031-03-01T00:00:00Z", "2031-03-08T00:00:00Z");
        assert!(c.covers(ts("2031-03-02T00:00:00Z"), ts("2031-03-08T00:00:00Z")));
        assert!(!c.covers(ts("2031-03-02T00:00:00Z"), ts("2031-03-09T00:00:00Z")));
        assert_eq!(
            load_range(
                Some(&c),
                ts("2031-03-08T00:00:00Z"),
                ts("2031-03-15T00:00:00Z")
            ),
            (ts("2031-03-01T00:00:00Z"), ts("2031-03-15T00:00:00Z"))
        );
        assert_eq!(
            load_range(
                Some(&c),
                ts("2032-03-08T00:00:00Z"),
                ts("2032-03-15T00:00:00Z")
            ),
            (ts("2032-03-08T00:00:00Z"), ts("2032-03-15T00:00:00Z"))
        );
        assert_eq!(
            load_range(None, ts("2031-03-08T00:00:00Z"), ts("2031-03-15T00:00:00Z")),
            (ts("2031-03-08T00:00:00Z"), ts("2031-03-15T00:00:00Z"))
        );
        // A range too wide to keep is used, not kept.
        let cache = active();
        let t = cache.ticket().unwrap();
        cache.put(
            t,
            1,
            config(5, 9),
            Some(busy("2031-01-01T00:00:00Z", "2031-06-01T00:00:00Z")),
        );
        assert!(cache.busy(9).is_none());
    }
}
