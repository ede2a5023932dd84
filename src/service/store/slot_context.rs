//! What a slots query reads: the event type, the host's hours and busy time (bookings, holds,
//! and the busy intervals of the host's connected calendars), from the slot cache when it has
//! them (see [`super::cache`]), else in one round trip.

use super::event_types::{EventType, EVENT_TYPE_COLS_E, EVENT_TYPE_NCOLS};
use super::{cache, notify, Result, Store};
use jiff::Timestamp;
use serde_json::Value;

impl Store {
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
                        busy.holds, busy.expires, u.name, u.email, u.time_zone, u.username,
                        EXISTS (SELECT 1 FROM connected_calendars k
                                WHERE k.user_id = e.user_id AND k.selected)
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
                           AND start_at < $4 AND end_at > $3
                         UNION ALL
                         -- Busy time from the host's connected calendars (store::calendars):
                         -- no buffers of its own; the queried type's buffers apply to it.
                         SELECT start_at, end_at, 0, 0, NULL, NULL, NULL
                         FROM external_busy
                         WHERE host_user_id = e.user_id AND start_at < $4 AND end_at > $3) b) busy ON true
                 WHERE e.org_id = $1 AND e.id = $2"
            ))
            .await?;
        let row = c
            .query_opt(&stmt, &[&org_id, &event_type_id, &from, &to])
            .await?;
        // The columns after the event type's.
        let at = |i: usize| EVENT_TYPE_NCOLS + i;
        Ok(row.map(|r| {
            let event_type = EventType::from_row(&r);
            let schedule = r.get::<_, Option<String>>(at(0)).map(|tz| ScheduleHours {
                time_zone: tz,
                availability: r.get(at(1)),
                overrides: r.get(at(2)),
            });
            let starts: Vec<Timestamp> = r.get::<_, Option<_>>(at(3)).unwrap_or_default();
            let ends: Vec<Timestamp> = r.get::<_, Option<_>>(at(4)).unwrap_or_default();
            let befores: Vec<i32> = r.get::<_, Option<_>>(at(5)).unwrap_or_default();
            let afters: Vec<i32> = r.get::<_, Option<_>>(at(6)).unwrap_or_default();
            let types: Vec<Option<i64>> = r.get::<_, Option<_>>(at(7)).unwrap_or_default();
            let holds: Vec<Option<uuid::Uuid>> = r.get::<_, Option<_>>(at(8)).unwrap_or_default();
            let expires: Vec<Option<Timestamp>> = r.get::<_, Option<_>>(at(9)).unwrap_or_default();
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
                        name: r.get(at(10)),
                        email: r.get(at(11)),
                        time_zone: r.get(at(12)),
                        username: r.get(at(13)),
                        has_calendars: r.get(at(14)),
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

    /// Keep the caches fresh from the database's notifications (see [`cache`]) until `stopped`
    /// turns true. The slot cache (when `slot_cache`) is in use only while this listens;
    /// `others` sees every event as well (the API key cache acts on [`cache::KEYS`]).
    pub async fn keep_cache_fresh(
        &self,
        stopped: tokio::sync::watch::Receiver<bool>,
        slot_cache: bool,
        mut others: impl FnMut(notify::Event<'_>) + Send,
    ) {
        let cache = self.cache.clone();
        let connector = self.connector().clone();
        let others_ref = &mut others;
        notify::listen(connector, &[cache::CHANNEL], stopped, move |e| {
            if slot_cache {
                match e {
                    notify::Event::Listening => cache.set_active(true),
                    notify::Event::Notification { payload, .. } => cache.apply(payload),
                    notify::Event::Lost => cache.set_active(false),
                }
            }
            others_ref(e);
        })
        .await;
        self.cache.set_active(false);
        others(notify::Event::Lost);
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
