//! A booking as handlers, webhook payloads and calendars see it: a plain value (the store
//! maps its row; `api` and `domain::webhooks::payload` turn it into JSON).

use jiff::Timestamp;
use serde_json::Value;
use uuid::Uuid;

/// A booking as the API shows it (joined with its event type and host).
#[derive(Debug, Clone)]
pub struct Booking {
    pub id: i64,
    pub uid: Uuid,
    pub org_id: i64,
    pub event_type_id: i64,
    pub event_type_slug: String,
    pub title: String,
    pub host_id: i64,
    pub host_name: String,
    pub host_email: String,
    pub host_time_zone: String,
    pub host_username: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub status: String,
    pub attendee: Value,
    pub guests: Value,
    pub metadata: Value,
    pub rescheduled_from_uid: Option<Uuid>,
    pub rescheduled_to_uid: Option<Uuid>,
    pub cancellation_reason: Option<String>,
    /// Where it takes place (an address, a link, a phone number), when known.
    pub location: Option<String>,
    /// The booker's answers to the event type's booking fields (Cal.com's
    /// `bookingFieldsResponses`), by field slug.
    pub booking_fields_responses: Value,
    /// The reason given by the reschedule that made this booking.
    pub rescheduling_reason: Option<String>,
    /// The calendar UID (the first booking of its reschedule chain): Cal.com's `icsUid`.
    pub ical_uid: Uuid,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
