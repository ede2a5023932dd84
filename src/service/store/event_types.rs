//! Event types: what can be booked with a host, for how long, with which buffers and limits.

use super::{classify, Result, Store, StoreError};
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

const EVENT_TYPE_COLS: &str = "id, org_id, user_id, schedule_id, title, slug, description, length_minutes, slot_interval, minimum_booking_notice, before_event_buffer, after_event_buffer, booking_window, per_day_limit, created_at, offset_start, length_options, locations, disable_guests, mail_enabled, mail_reminders";
pub(super) const EVENT_TYPE_COLS_E: &str = "e.id, e.org_id, e.user_id, e.schedule_id, e.title, e.slug, e.description, e.length_minutes, e.slot_interval, e.minimum_booking_notice, e.before_event_buffer, e.after_event_buffer, e.booking_window, e.per_day_limit, e.created_at, e.offset_start, e.length_options, e.locations, e.disable_guests, e.mail_enabled, e.mail_reminders";
/// How many columns [`EVENT_TYPE_COLS_E`] selects (what a joined query reads after them
/// starts at this index).
pub(super) const EVENT_TYPE_NCOLS: usize = 21;

impl Store {
    pub async fn create_event_type(&self, e: &NewEventType) -> Result<EventType> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO event_types (org_id, user_id, schedule_id, title, slug, description,
                       length_minutes, slot_interval, minimum_booking_notice, before_event_buffer,
                       after_event_buffer, booking_window, per_day_limit, offset_start,
                       length_options, locations, disable_guests, mail_enabled, mail_reminders)
                     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)
                     RETURNING {EVENT_TYPE_COLS}"
                ),
                &e.params([&e.org_id, &e.user_id]),
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
                       per_day_limit = $13, offset_start = $14, length_options = $15,
                       locations = $16, disable_guests = $17, mail_enabled = $18,
                       mail_reminders = $19
                     WHERE org_id = $1 AND id = $2 RETURNING {EVENT_TYPE_COLS}"
                ),
                &e.params([&e.org_id, &id]),
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

    /// The event type `slug` of user `user_id` in the organization.
    pub async fn find_event_type_by_slug(
        &self,
        org_id: i64,
        user_id: i64,
        slug: &str,
    ) -> Result<Option<EventType>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {EVENT_TYPE_COLS} FROM event_types
                     WHERE org_id = $1 AND user_id = $2 AND slug = $3"
                ),
                &[&org_id, &user_id, &slug],
            )
            .await?;
        Ok(row.as_ref().map(EventType::from_row))
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

    /// A host's event types (their booking pages), by title.
    pub async fn user_event_types(&self, org_id: i64, user_id: i64) -> Result<Vec<EventType>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {EVENT_TYPE_COLS} FROM event_types WHERE org_id = $1 AND user_id = $2
                 ORDER BY title, id"
            ))
            .await?;
        let rows = c.query(&stmt, &[&org_id, &user_id]).await?;
        Ok(rows.iter().map(EventType::from_row).collect())
    }

    /// A host's event type by its slug, in one organization only.
    pub async fn event_type_by_slug(
        &self,
        org_id: i64,
        user_id: i64,
        slug: &str,
    ) -> Result<Option<EventType>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {EVENT_TYPE_COLS} FROM event_types
                 WHERE org_id = $1 AND user_id = $2 AND slug = $3"
            ))
            .await?;
        let row = c.query_opt(&stmt, &[&org_id, &user_id, &slug]).await?;
        Ok(row.as_ref().map(EventType::from_row))
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
    pub offset_start: i32,
    pub length_options: Option<Vec<i32>>,
    pub locations: Value,
    pub disable_guests: bool,
    /// Whether bookings of this type send e-mail.
    pub mail_enabled: bool,
    /// Reminder offsets, minutes before the start (none by default).
    pub mail_reminders: Vec<i32>,
}

/// A query parameter.
type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

impl NewEventType {
    /// `first` ($1, $2), then every field from `schedule_id` to `mail_reminders` ($3 to $19),
    /// in the column order both the insert and the update use.
    fn params<'a>(&'a self, first: [Param<'a>; 2]) -> [Param<'a>; 19] {
        [
            first[0],
            first[1],
            &self.schedule_id,
            &self.title,
            &self.slug,
            &self.description,
            &self.length_minutes,
            &self.slot_interval,
            &self.minimum_booking_notice,
            &self.before_event_buffer,
            &self.after_event_buffer,
            &self.booking_window,
            &self.per_day_limit,
            &self.offset_start,
            &self.length_options,
            &self.locations,
            &self.disable_guests,
            &self.mail_enabled,
            &self.mail_reminders,
        ]
    }
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
    /// Minutes every slot start moves later (Cal.com's `offsetStart`).
    pub offset_start: i32,
    /// Lengths a booker may pick instead of `length_minutes` (Cal.com's
    /// `lengthInMinutesOptions`); `None` when only the one.
    pub length_options: Option<Vec<i32>>,
    /// Cal.com location objects (`{"type":"address","address":...}`, ...): the first is a
    /// booking's location when the booking names none.
    pub locations: Value,
    /// Bookings of this type take no guests.
    pub disable_guests: bool,
    /// Whether bookings of this type send e-mail (Cal.com-style `sendEmails`).
    pub mail_enabled: bool,
    /// Reminder offsets, minutes before the start (none by default).
    pub mail_reminders: Vec<i32>,
}

impl EventType {
    pub(super) fn from_row(r: &Row) -> EventType {
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
            offset_start: r.get(15),
            length_options: r.get(16),
            locations: r.get(17),
            disable_guests: r.get(18),
            mail_enabled: r.get(19),
            mail_reminders: r.get(20),
        }
    }
}
