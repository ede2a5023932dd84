//! `/v2/bookings` in Cal.com's two shapes:
//!
//! - `2024-08-13` ([`Current`]): `{start, eventTypeId | eventTypeSlug + username,
//!   attendee: {name, email, timeZone, phoneNumber, language}, guests, location, metadata,
//!   bookingFieldsResponses, lengthInMinutes}`, bookings as `{uid, start, end, hosts,
//!   attendees, ...}`, `GET` with Cal.com's filters and `take`/`skip` paging;
//! - the older shapes (`2024-04-15`, `2024-06-11`, `2024-06-14` and no header: [`Legacy`]):
//!   `{start, end, eventTypeId, timeZone, language, metadata, responses: {name, email,
//!   guests, location, notes}}`, rescheduling by `rescheduleUid` in the same call, bookings as
//!   `{uid, startTime, endTime, status: "ACCEPTED", user, attendees, responses, ...}`, `GET`
//!   with `filters[status]`, `limit` and `cursor`.
//!
//! Sources: Cal.com's `packages/platform/types/bookings/2024-08-13/inputs/*.ts`,
//! `apps/api/v2/src/ee/bookings/2024-04-15/inputs/create-booking.input.ts`, and the pages of
//! <https://cal.com/docs/api-reference/v2/bookings>.

use super::super::error::ApiError;
use super::super::input::{self, iso, Params, Warning};
use super::{fields_of, Family, Resource, Shape, BOOKINGS_2024_08_13, BOOKINGS_LEGACY};
use crate::service::domain::booking::Booking;
use crate::service::domain::hours::time_zone;
use crate::service::domain::FieldError;
use crate::service::store::bookings::{BookingFilter, SortKey};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// How a request names the event type to book.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypeRef {
    Id(i64),
    /// Cal.com's `eventTypeSlug` + `username` (+ `organizationSlug`).
    Slug {
        slug: String,
        username: String,
        organization: Option<String>,
    },
}

/// A booking to make, whatever the version.
#[derive(Debug, Clone)]
pub struct BookingRequest {
    pub start: Timestamp,
    pub event_type: EventTypeRef,
    /// `{name, email?, timeZone, language?, phoneNumber?}`
    pub attendee: Value,
    pub guests: Vec<String>,
    /// A length other than the event type's (one of its `lengthInMinutes` options).
    pub length: Option<i64>,
    pub metadata: Value,
    pub location: Option<String>,
    pub booking_fields_responses: Value,
    pub reservation_uid: Option<Uuid>,
    /// Legacy shapes reschedule through create: this booking moves.
    pub reschedule_of: Option<Uuid>,
    pub rescheduling_reason: Option<String>,
}

/// A cancellation. `uid` and `id`, when the body repeats them, must name the booking.
#[derive(Debug, Clone, Default)]
pub struct CancelRequest {
    pub reason: Option<String>,
    pub uid: Option<String>,
    pub id: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RescheduleRequest {
    pub start: Timestamp,
    pub reason: Option<String>,
    pub reservation_uid: Option<Uuid>,
}

/// Parsers and writers of one shape of `/v2/bookings`.
pub trait BookingApi: Send + Sync {
    fn family(&self) -> &'static Family;
    fn create(&self, body: Value, w: &mut Vec<Warning>) -> Result<BookingRequest, ApiError>;
    fn cancel(&self, body: Value, w: &mut Vec<Warning>) -> Result<CancelRequest, ApiError>;
    fn reschedule(&self, body: Value, w: &mut Vec<Warning>) -> Result<RescheduleRequest, ApiError>;
    fn filter(&self, query: Vec<(String, String)>) -> Result<BookingFilter, ApiError>;
    fn booking(&self, b: &Booking) -> Value;
    /// The whole body of a list (shapes differ outside `data` too).
    fn list(&self, rows: &[Booking], total: i64, f: &BookingFilter) -> Value;
    /// What a cancellation answers with.
    fn cancelled(&self, b: &Booking) -> Value;
}

pub struct Bookings;

impl Resource for Bookings {
    type Api = dyn BookingApi;
    fn api(shape: Shape) -> &'static dyn BookingApi {
        match shape {
            Shape::Legacy => &Legacy,
            Shape::Current => &Current,
        }
    }
}

/// The `2024-08-13` shapes.
pub struct Current;
/// The shapes before `2024-08-13`.
pub struct Legacy;

// ---------------------------------------------------------------------------------------
// Checks both shapes share.

/// Locales Cal.com accepts for an attendee's `language` (`BookingLanguage`,
/// `SUPPORTED_LOCALES`).
const LANGUAGES: &[&str] = &[
    "ar", "az", "bg", "bn", "ca", "cs", "da", "de", "el", "en", "es", "es-419", "et", "eu", "fi",
    "fr", "he", "hr", "hu", "id", "it", "iw", "ja", "km", "ko", "lv", "nl", "no", "pl", "pt",
    "pt-BR", "ro", "ru", "sk", "sk-SK", "sr", "sv", "ta", "th", "tr", "uk", "vi", "zh-CN", "zh-TW",
];

/// An international phone number: `+` then 7 to 15 digits (spaces, dashes, dots and
/// parentheses between them are fine).
pub fn valid_phone(p: &str) -> bool {
    let p = p.trim();
    let Some(rest) = p.strip_prefix('+') else {
        return false;
    };
    let digits = rest.chars().filter(char::is_ascii_digit).count();
    rest.chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        && (7..=15).contains(&digits)
}

/// The attendee as stored: `{name, email?, timeZone, language?, phoneNumber?}`.
fn attendee(
    prefix: &str,
    name: &str,
    email: Option<&str>,
    tz: &str,
    language: Option<&str>,
    phone: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Value {
    let at = |f: &str| {
        if prefix.is_empty() {
            f.to_string()
        } else {
            format!("{prefix}.{f}")
        }
    };
    if name.trim().is_empty() {
        errors.push(FieldError::new(at("name"), "required"));
    }
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    let phone = phone.map(str::trim).filter(|p| !p.is_empty());
    match email {
        Some(e) if !input::valid_email(e) => {
            errors.push(FieldError::new(at("email"), refused_address(e)))
        }
        None if phone.is_none() => errors.push(FieldError::new(
            at("email"),
            "required (or a phoneNumber): at least one way to reach the attendee",
        )),
        _ => {}
    }
    if let Some(p) = phone {
        if !valid_phone(p) {
            errors.push(FieldError::new(
                at("phoneNumber"),
                format!(
                    "{p:?} is not a phone number in international format, such as +14155550123"
                ),
            ));
        }
    }
    if time_zone(tz).is_none() {
        errors.push(FieldError::new(
            at("timeZone"),
            format!("unknown time zone {tz:?}: use an IANA name such as \"Europe/Berlin\""),
        ));
    }
    if let Some(l) = language {
        if !LANGUAGES.contains(&l) {
            errors.push(FieldError::new(
                at("language"),
                format!(
                    "{l:?} is not a language Cal.com knows: use one of {}",
                    LANGUAGES.join(", ")
                ),
            ));
        }
    }
    let mut a = json!({"name": name.trim(), "timeZone": tz});
    if let Some(e) = email {
        a["email"] = json!(e);
    }
    if let Some(l) = language {
        a["language"] = json!(l);
    }
    if let Some(p) = phone {
        a["phoneNumber"] = json!(p);
    }
    a
}

/// What to do about an address mail cannot be sent to.
const NOT_AN_ADDRESS: &str =
    "give one address such as ann@example.com (no spaces, no two dots in a row, a domain with a dot)";

/// Why address `e` is refused, and what to do.
fn refused_address(e: &str) -> String {
    use crate::service::domain::address::{check, Refusal};
    match check(e) {
        Err(Refusal::NonAsciiLocalPart) => format!(
            "{e:?} has letters outside ASCII before the @, which calops' mail cannot carry (no SMTPUTF8): give an address whose part before the @ is plain ASCII, such as ann@example.com (the domain may have other letters, e.g. ann@bücher.example)"
        ),
        _ => format!("{e:?} is not an e-mail address mail can be sent to: {NOT_AN_ADDRESS}"),
    }
}

/// Guests' e-mail addresses, trimmed (at most 30); `field` names the list in errors
/// (`guests`, `responses.guests`).
pub fn guests(field: &str, list: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    for (i, g) in list.iter().enumerate() {
        if !input::valid_email(g.trim()) {
            errors.push(FieldError::new(
                format!("{field}[{i}]"),
                refused_address(g.trim()),
            ));
        }
    }
    if list.len() > 30 {
        errors.push(FieldError::new(field, "at most 30 guests"));
    }
    list.iter().map(|g| g.trim().to_string()).collect()
}

/// Cal.com's metadata rule: an object of at most 50 keys, each up to 40 characters, string
/// values up to 500 characters.
pub fn metadata(field: &str, m: Option<Value>, errors: &mut Vec<FieldError>) -> Value {
    let Some(m) = m else { return json!({}) };
    match m.as_object() {
        None => errors.push(FieldError::new(field, "must be an object")),
        Some(o) => {
            if o.len() > 50 {
                errors.push(FieldError::new(field, "at most 50 keys"));
            }
            for (k, v) in o {
                if k.chars().count() > 40 {
                    errors.push(FieldError::new(
                        format!("{field}.{k}"),
                        "keys are at most 40 characters",
                    ));
                }
                if v.as_str().is_some_and(|s| s.chars().count() > 500) {
                    errors.push(FieldError::new(
                        format!("{field}.{k}"),
                        "string values are at most 500 characters",
                    ));
                }
            }
        }
    }
    m
}

fn object(field: &str, v: Option<Value>, errors: &mut Vec<FieldError>) -> Value {
    match v {
        None => json!({}),
        Some(v) if v.is_object() => v,
        Some(_) => {
            errors.push(FieldError::new(field, "must be an object"));
            json!({})
        }
    }
}

fn length(field: &str, n: Option<i64>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let n = n?;
    if !(1..=1440).contains(&n) {
        errors.push(FieldError::new(field, "must be 1 to 1440 minutes"));
    }
    Some(n)
}

const NO_SEATS: &str = "calops has no seated event types";

// ---------------------------------------------------------------------------------------
// 2024-08-13

/// Cal.com's 2024-08-13 attendee (calops' composite bookings take it too).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttendeeIn {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub time_zone: String,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
}

/// The attendee as stored, its problems (under `prefix`) in `errors`.
pub fn check_attendee(prefix: &str, a: &AttendeeIn, errors: &mut Vec<FieldError>) -> Value {
    attendee(
        prefix,
        &a.name,
        a.email.as_deref(),
        &a.time_zone,
        a.language.as_deref(),
        a.phone_number.as_deref(),
        errors,
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateIn {
    start: String,
    #[serde(default)]
    event_type_id: Option<i64>,
    #[serde(default)]
    event_type_slug: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    team_slug: Option<String>,
    #[serde(default)]
    organization_slug: Option<String>,
    attendee: AttendeeIn,
    #[serde(default)]
    guests: Vec<String>,
    #[serde(default)]
    meeting_url: Option<String>,
    #[serde(default)]
    location: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    length_in_minutes: Option<i64>,
    #[serde(default)]
    booking_fields_responses: Option<Value>,
    #[serde(default)]
    routing: Option<Value>,
    #[serde(default)]
    email_verification_code: Option<String>,
    #[serde(default)]
    instant: Option<bool>,
    #[serde(default)]
    recurrence_count: Option<i64>,
    /// calops: a hold of this slot (`POST /v2/slots/reservations`) to use up.
    #[serde(default)]
    reservation_uid: Option<Uuid>,
}

/// A `location` of 2024-08-13: a string (kept for backward compatibility) or one of the
/// location objects; its text, and a warning when it says nothing calops can show.
fn location(v: Value, w: &mut Vec<Warning>, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
            let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            let (field, allowed): (Option<&str>, &[&str]) = match kind {
                "address" | "attendeeAddress" => (Some("address"), &["type", "address"]),
                "link" => (Some("link"), &["type", "link"]),
                "phone" | "attendeePhone" => (Some("phone"), &["type", "phone"]),
                "attendeeDefined" => (Some("location"), &["type", "location"]),
                "integration" => (None, &["type", "integration"]),
                "organizersDefaultApp" => (None, &["type"]),
                _ => {
                    errors.push(FieldError::new(
                        "location.type",
                        "use address, attendeeAddress, link, phone, attendeePhone, attendeeDefined, integration or organizersDefaultApp",
                    ));
                    return None;
                }
            };
            for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
                errors.push(FieldError::new(
                    format!("location.{k}"),
                    format!(
                        "unknown field of a {kind:?} location (expected {})",
                        allowed.join(", ")
                    ),
                ));
            }
            match field {
                Some(f) => match text(f) {
                    Some(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
                    _ => {
                        errors.push(FieldError::new(format!("location.{f}"), "required"));
                        None
                    }
                },
                None => {
                    let app =
                        text("integration").unwrap_or_else(|| "the organizer's default app".into());
                    w.push(Warning::no_effect(
                        "location",
                        &format!("calops creates no conference links ({app}); give an address, link or phone"),
                    ));
                    None
                }
            }
        }
        _ => {
            errors.push(FieldError::new(
                "location",
                "must be a string or a location object",
            ));
            None
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelIn {
    #[serde(default)]
    cancellation_reason: Option<String>,
    #[serde(default)]
    cancel_subsequent_bookings: Option<bool>,
    #[serde(default)]
    seat_uid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RescheduleIn {
    start: String,
    #[serde(default)]
    rescheduling_reason: Option<String>,
    #[serde(default)]
    rescheduled_by: Option<String>,
    #[serde(default)]
    seat_uid: Option<String>,
    /// calops: a hold of the new slot to use up.
    #[serde(default)]
    reservation_uid: Option<Uuid>,
}

const LIST_2024_08_13: &[&str] = &[
    "status",
    "attendeeEmail",
    "attendeeName",
    "bookingUid",
    "eventTypeIds",
    "eventTypeId",
    "teamsIds",
    "teamId",
    "afterStart",
    "beforeEnd",
    "afterCreatedAt",
    "beforeCreatedAt",
    "afterUpdatedAt",
    "beforeUpdatedAt",
    "sortStart",
    "sortEnd",
    "sortCreated",
    "sortUpdatedAt",
    "take",
    "skip",
];

impl BookingApi for Current {
    fn family(&self) -> &'static Family {
        &BOOKINGS_2024_08_13
    }

    fn create(&self, body: Value, w: &mut Vec<Warning>) -> Result<BookingRequest, ApiError> {
        let b: CreateIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let start = input::instant("start", &b.start, &mut errors);
        let event_type = match (b.event_type_id, b.event_type_slug, b.username, b.team_slug) {
            (Some(id), None, None, None) => Some(EventTypeRef::Id(id)),
            (None, Some(slug), Some(username), None) => Some(EventTypeRef::Slug {
                slug,
                username,
                organization: b.organization_slug.clone(),
            }),
            (None, Some(_), None, Some(team)) => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "team_not_found",
                    format!("no team {team:?}: calops has no teams; book by eventTypeId, or eventTypeSlug and username"),
                ))
            }
            (None, _, _, _) => {
                errors.push(FieldError::new(
                    "eventTypeId",
                    "required, or eventTypeSlug with username (and organizationSlug)",
                ));
                None
            }
            (Some(_), ..) => {
                errors.push(FieldError::new(
                    "eventTypeSlug",
                    "give eventTypeId or eventTypeSlug with username, not both",
                ));
                None
            }
        };
        if b.organization_slug.is_some() && !matches!(event_type, Some(EventTypeRef::Slug { .. })) {
            w.push(Warning::no_effect(
                "organizationSlug",
                "only used with eventTypeSlug and username",
            ));
        }
        let attendee = check_attendee("attendee", &b.attendee, &mut errors);
        let guests = guests("guests", &b.guests, &mut errors);
        let metadata = metadata("metadata", b.metadata, &mut errors);
        let responses = object(
            "bookingFieldsResponses",
            b.booking_fields_responses,
            &mut errors,
        );
        let length = length("lengthInMinutes", b.length_in_minutes, &mut errors);
        let mut location = b.location.and_then(|l| location(l, w, &mut errors));
        if let Some(url) = b.meeting_url {
            w.push(Warning::new(
                "meetingUrl",
                "deprecated by Cal.com: use location; kept as the location when none is given",
            ));
            location = location.or(Some(url));
        }
        if b.routing.is_some() {
            w.push(Warning::no_effect("routing", "calops has no routing forms"));
        }
        if b.email_verification_code.is_some() {
            w.push(Warning::no_effect(
                "emailVerificationCode",
                "calops does not verify bookers' e-mail addresses",
            ));
        }
        if b.recurrence_count.is_some() {
            w.push(Warning::no_effect(
                "recurrenceCount",
                "calops has no recurring event types; one booking is made",
            ));
        }
        if b.instant == Some(true) {
            errors.push(FieldError::new(
                "instant",
                "instant meetings are for team event types, which calops does not have",
            ));
        }
        input::check(errors)?;
        Ok(BookingRequest {
            start: start.ok_or_else(ApiError::internal)?,
            event_type: event_type.ok_or_else(ApiError::internal)?,
            attendee,
            guests,
            length,
            metadata,
            location,
            booking_fields_responses: responses,
            reservation_uid: b.reservation_uid,
            reschedule_of: None,
            rescheduling_reason: None,
        })
    }

    fn cancel(&self, body: Value, w: &mut Vec<Warning>) -> Result<CancelRequest, ApiError> {
        let b: CancelIn = input::typed(body, &fields_of(self.family()))?;
        if b.seat_uid.is_some() {
            return Err(ApiError::validation(vec![FieldError::new(
                "seatUid", NO_SEATS,
            )]));
        }
        if b.cancel_subsequent_bookings.is_some() {
            w.push(Warning::no_effect(
                "cancelSubsequentBookings",
                "calops has no recurring bookings",
            ));
        }
        Ok(CancelRequest {
            reason: b.cancellation_reason,
            ..CancelRequest::default()
        })
    }

    fn reschedule(&self, body: Value, w: &mut Vec<Warning>) -> Result<RescheduleRequest, ApiError> {
        let b: RescheduleIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let start = input::instant("start", &b.start, &mut errors);
        if b.seat_uid.is_some() {
            errors.push(FieldError::new("seatUid", NO_SEATS));
        }
        if let Some(by) = &b.rescheduled_by {
            if !input::valid_email(by) {
                errors.push(FieldError::new("rescheduledBy", "is not an e-mail address"));
            }
            w.push(Warning::no_effect(
                "rescheduledBy",
                "calops does not record who rescheduled",
            ));
        }
        input::check(errors)?;
        Ok(RescheduleRequest {
            start: start.ok_or_else(ApiError::internal)?,
            reason: b.rescheduling_reason,
            reservation_uid: b.reservation_uid,
        })
    }

    fn filter(&self, query: Vec<(String, String)>) -> Result<BookingFilter, ApiError> {
        let q = Params::new(query, LIST_2024_08_13, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let mut f = BookingFilter {
            take: 100,
            ..BookingFilter::default()
        };
        for part in q.list("status") {
            statuses(&mut f, part, "status", &mut errors);
        }
        f.attendee_email = q.get("attendeeEmail").map(str::to_string);
        f.attendee_name = q.get("attendeeName").map(str::to_string);
        if let Some(u) = q.get("bookingUid") {
            // A uid calops never made matches nothing.
            match Uuid::parse_str(u) {
                Ok(u) => f.booking_uid = Some(u),
                Err(_) => f.matches_nothing = true,
            }
        }
        f.event_type_ids = q.ids("eventTypeIds", &mut errors);
        f.event_type_ids.extend(q.ids("eventTypeId", &mut errors));
        // Bookings of teams: calops has none.
        if !q.ids("teamsIds", &mut errors).is_empty() || !q.ids("teamId", &mut errors).is_empty() {
            f.matches_nothing = true;
        }
        f.after_start = q.time("afterStart", &mut errors);
        f.before_end = q.time("beforeEnd", &mut errors);
        f.after_created = q.time("afterCreatedAt", &mut errors);
        f.before_created = q.time("beforeCreatedAt", &mut errors);
        f.after_updated = q.time("afterUpdatedAt", &mut errors);
        f.before_updated = q.time("beforeUpdatedAt", &mut errors);
        for (name, key) in [
            ("sortStart", SortKey::Start),
            ("sortEnd", SortKey::End),
            ("sortCreated", SortKey::Created),
            ("sortUpdatedAt", SortKey::Updated),
        ] {
            match q.get(name) {
                None => {}
                Some("asc") => f.sort.push((key, false)),
                Some("desc") => f.sort.push((key, true)),
                Some(other) => errors.push(FieldError::new(
                    name,
                    format!("{other:?}: use \"asc\" or \"desc\""),
                )),
            }
        }
        if let Some(t) = q.int("take", 1, 250, &mut errors) {
            f.take = t;
        }
        if let Some(s) = q.int("skip", 0, i64::MAX / 2, &mut errors) {
            f.skip = s;
        }
        input::check(errors)?;
        Ok(f)
    }

    fn booking(&self, b: &Booking) -> Value {
        let mut attendee = b.attendee.clone();
        if let Some(a) = attendee.as_object_mut() {
            a.insert("absent".into(), json!(false));
            a.entry("language").or_insert(json!("en"));
        }
        let url = b
            .location
            .as_deref()
            .filter(|l| l.starts_with("https://") || l.starts_with("http://"));
        json!({
            "id": b.id,
            "uid": b.uid,
            "title": b.title,
            "description": notes(b),
            "hosts": [{"id": b.host_id, "name": b.host_name, "email": b.host_email,
                       "username": b.host_username, "timeZone": b.host_time_zone}],
            "status": b.status,
            "cancellationReason": b.cancellation_reason,
            // calops does not record who cancelled or rescheduled, nor ratings.
            "cancelledByEmail": null,
            "reschedulingReason": b.rescheduling_reason,
            "rescheduledByEmail": null,
            "rescheduledFromUid": b.rescheduled_from_uid,
            "rescheduledToUid": b.rescheduled_to_uid,
            "start": iso(b.start),
            "end": iso(b.end),
            "duration": (b.end.as_second() - b.start.as_second()) / 60,
            "eventTypeId": b.event_type_id,
            "eventType": {"id": b.event_type_id, "slug": b.event_type_slug},
            "meetingUrl": url,
            "location": b.location,
            "absentHost": false,
            "createdAt": iso(b.created_at),
            "updatedAt": iso(b.updated_at),
            "metadata": b.metadata,
            "rating": null,
            "icsUid": b.ical_uid,
            "attendees": [attendee],
            "guests": b.guests,
            "bookingFieldsResponses": responses(b),
        })
    }

    fn list(&self, rows: &[Booking], total: i64, f: &BookingFilter) -> Value {
        let returned = rows.len() as i64;
        json!({
            "status": "success",
            "data": rows.iter().map(|b| self.booking(b)).collect::<Vec<_>>(),
            "pagination": {
                "totalItems": total,
                "returnedItems": returned,
                "remainingItems": (total - f.skip - returned).max(0),
                "itemsPerPage": f.take,
                "currentPage": if f.take > 0 { f.skip / f.take + 1 } else { 1 },
                "totalPages": if f.take > 0 { (total + f.take - 1) / f.take } else { 1 },
                "skip": f.skip,
                "hasNextPage": f.skip + returned < total,
                "hasPreviousPage": f.skip > 0,
            }
        })
    }

    fn cancelled(&self, b: &Booking) -> Value {
        self.booking(b)
    }
}

/// Cal.com's `upcoming`, `recurring`, `past`, `cancelled`, `unconfirmed` (and calops'
/// `accepted`) into the filter.
fn statuses(f: &mut BookingFilter, part: &str, field: &str, errors: &mut Vec<FieldError>) {
    match part {
        "accepted" => f.statuses.push(part.to_string()),
        // As Cal.com: cancelled covers rejected too; unconfirmed is pending.
        "cancelled" => f.statuses.extend(["cancelled".into(), "rejected".into()]),
        "unconfirmed" => f.statuses.push("pending".into()),
        // calops has no recurring bookings: a status no booking has.
        "recurring" => f.statuses.push("recurring".into()),
        "upcoming" => f.upcoming = true,
        "past" => f.past = true,
        other => errors.push(FieldError::new(
            field,
            format!("{other:?}: use upcoming, recurring, past, cancelled, unconfirmed or accepted (comma-separated for several)"),
        )),
    }
}

/// The booker's notes (Cal.com's booking `description`).
fn notes(b: &Booking) -> Value {
    b.booking_fields_responses
        .get("notes")
        .filter(|n| n.is_string())
        .cloned()
        .unwrap_or(Value::String(String::new()))
}

/// `bookingFieldsResponses` as Cal.com shows them: the stored answers with the attendee's
/// name and e-mail address (and the guests, when there are any).
fn responses(b: &Booking) -> Value {
    let mut out = Map::new();
    for k in ["name", "email"] {
        if let Some(v) = b.attendee.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if b.guests.as_array().is_some_and(|g| !g.is_empty()) {
        out.insert("guests".into(), b.guests.clone());
    }
    if let Some(o) = b.booking_fields_responses.as_object() {
        out.extend(o.clone());
    }
    Value::Object(out)
}

// ---------------------------------------------------------------------------------------
// Before 2024-08-13

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LocationL {
    option_value: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ResponsesL {
    /// A string, or `{firstName, lastName}`.
    name: Value,
    email: String,
    #[serde(default)]
    guests: Vec<String>,
    #[serde(default)]
    location: Option<LocationL>,
    #[serde(default)]
    notes: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateL {
    start: String,
    #[serde(default)]
    end: Option<String>,
    event_type_id: i64,
    #[serde(default)]
    event_type_slug: Option<String>,
    #[serde(default)]
    reschedule_uid: Option<String>,
    #[serde(default)]
    rescheduled_by: Option<String>,
    time_zone: String,
    #[serde(default)]
    user: Option<Value>,
    language: String,
    #[serde(default)]
    booking_uid: Option<String>,
    metadata: Value,
    #[serde(default)]
    has_hashed_booking_link: Option<bool>,
    #[serde(default)]
    hashed_link: Option<Value>,
    #[serde(default)]
    seat_reference_uid: Option<String>,
    responses: ResponsesL,
    #[serde(default)]
    org_slug: Option<String>,
    #[serde(default)]
    location_url: Option<String>,
    #[serde(default)]
    team_member_email: Option<String>,
    #[serde(default)]
    crm_app_slug: Option<String>,
    #[serde(default)]
    crm_owner_record_type: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelL {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    all_remaining_bookings: Option<bool>,
    #[serde(default)]
    cancellation_reason: Option<String>,
    #[serde(default)]
    seat_reference_uid: Option<String>,
}

const LIST_LEGACY: &[&str] = &[
    "filters[status]",
    "filters[teamsIds]",
    "filters[teamsIds][]",
    "filters[userIds]",
    "filters[userIds][]",
    "filters[eventTypeIds]",
    "filters[eventTypeIds][]",
    "attendeeEmail",
    "attendeeName",
    "limit",
    "cursor",
];

/// A legacy name: a string, or `{firstName, lastName}` joined with a space.
fn legacy_name(v: &Value, errors: &mut Vec<FieldError>) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let part = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").trim();
            if let Some(k) = o
                .keys()
                .find(|k| !["firstName", "lastName"].contains(&k.as_str()))
            {
                errors.push(FieldError::new(
                    format!("responses.name.{k}"),
                    "unknown field (expected firstName, lastName)",
                ));
            }
            format!("{} {}", part("firstName"), part("lastName"))
                .trim()
                .to_string()
        }
        _ => {
            errors.push(FieldError::new(
                "responses.name",
                "must be a string or {firstName, lastName}",
            ));
            String::new()
        }
    }
}

impl BookingApi for Legacy {
    fn family(&self) -> &'static Family {
        &BOOKINGS_LEGACY
    }

    fn create(&self, body: Value, w: &mut Vec<Warning>) -> Result<BookingRequest, ApiError> {
        let b: CreateL = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let start = input::instant("start", &b.start, &mut errors);
        let end = b
            .end
            .as_deref()
            .and_then(|e| input::instant("end", e, &mut errors));
        let length = match (start, end) {
            (Some(s), Some(e)) if e > s => Some((e.as_second() - s.as_second()) / 60),
            (Some(_), Some(_)) => {
                errors.push(FieldError::new("end", "must be after start"));
                None
            }
            _ => None,
        };
        let r = &b.responses;
        let name = legacy_name(&r.name, &mut errors);
        let attendee = attendee(
            "responses",
            &name,
            Some(&r.email),
            &b.time_zone,
            None,
            None,
            &mut errors,
        );
        let mut attendee = attendee;
        // Legacy bookings take any language text (`IsString`).
        attendee["language"] = json!(b.language);
        let guests = guests("responses.guests", &r.guests, &mut errors);
        if !b.metadata.is_object() {
            errors.push(FieldError::new("metadata", "must be an object"));
        }
        let location = r
            .location
            .as_ref()
            .map(|l| l.option_value.trim().to_string())
            .filter(|l| !l.is_empty())
            .or_else(|| b.location_url.clone());
        // What the booker answered besides name, e-mail and guests, kept to show it back.
        let mut responses = Map::new();
        if let Some(l) = &r.location {
            responses.insert(
                "location".into(),
                json!({"value": l.value, "optionValue": l.option_value}),
            );
        }
        if let Some(n) = &r.notes {
            responses.insert("notes".into(), json!(n));
        }
        let reschedule_of = match b.reschedule_uid.as_deref() {
            None => None,
            Some(u) => match Uuid::parse_str(u) {
                Ok(u) => Some(u),
                Err(_) => {
                    return Err(ApiError::not_found(&format!("booking {u:?}")));
                }
            },
        };
        for (field, given, why) in [
            (
                "eventTypeSlug",
                b.event_type_slug.is_some(),
                "eventTypeId names the event type",
            ),
            (
                "user",
                b.user.is_some(),
                "calops has no dynamic group bookings",
            ),
            (
                "bookingUid",
                b.booking_uid.is_some(),
                "calops makes the booking's uid",
            ),
            (
                "hasHashedBookingLink",
                b.has_hashed_booking_link.is_some(),
                "calops has no private links",
            ),
            (
                "hashedLink",
                b.hashed_link.is_some(),
                "calops has no private links",
            ),
            (
                "orgSlug",
                b.org_slug.is_some(),
                "eventTypeId names the event type",
            ),
            (
                "teamMemberEmail",
                b.team_member_email.is_some(),
                "calops has no teams",
            ),
            (
                "crmAppSlug",
                b.crm_app_slug.is_some(),
                "calops has no CRM integration",
            ),
            (
                "crmOwnerRecordType",
                b.crm_owner_record_type.is_some(),
                "calops has no CRM integration",
            ),
            (
                "rescheduledBy",
                b.rescheduled_by.is_some(),
                "calops does not record who rescheduled",
            ),
        ] {
            if given {
                w.push(Warning::no_effect(field, why));
            }
        }
        if b.seat_reference_uid.is_some() {
            errors.push(FieldError::new("seatReferenceUid", NO_SEATS));
        }
        input::check(errors)?;
        Ok(BookingRequest {
            start: start.ok_or_else(ApiError::internal)?,
            event_type: EventTypeRef::Id(b.event_type_id),
            attendee,
            guests,
            length,
            metadata: b.metadata,
            location,
            booking_fields_responses: Value::Object(responses),
            reservation_uid: None,
            reschedule_of,
            rescheduling_reason: None,
        })
    }

    fn cancel(&self, body: Value, w: &mut Vec<Warning>) -> Result<CancelRequest, ApiError> {
        let b: CancelL = input::typed(body, &fields_of(self.family()))?;
        if b.seat_reference_uid.is_some() {
            return Err(ApiError::validation(vec![FieldError::new(
                "seatReferenceUid",
                NO_SEATS,
            )]));
        }
        if b.all_remaining_bookings.is_some() {
            w.push(Warning::no_effect(
                "allRemainingBookings",
                "calops has no recurring bookings",
            ));
        }
        Ok(CancelRequest {
            reason: b.cancellation_reason,
            uid: b.uid,
            id: b.id,
        })
    }

    fn reschedule(&self, _: Value, _: &mut Vec<Warning>) -> Result<RescheduleRequest, ApiError> {
        // Routed for 2024-08-13 only (`versions::ROUTES`); older clients reschedule with
        // `rescheduleUid` in POST /v2/bookings.
        Err(ApiError::internal())
    }

    fn filter(&self, query: Vec<(String, String)>) -> Result<BookingFilter, ApiError> {
        let q = Params::new(query, LIST_LEGACY, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let mut f = BookingFilter {
            take: 10,
            ..BookingFilter::default()
        };
        // As Cal.com's 2024-04-15 controller: one status, `upcoming` when none is given.
        statuses(
            &mut f,
            q.get("filters[status]").unwrap_or("upcoming"),
            "filters[status]",
            &mut errors,
        );
        f.event_type_ids = q.ids("filters[eventTypeIds]", &mut errors);
        f.host_ids = q.ids("filters[userIds]", &mut errors);
        if !q.ids("filters[teamsIds]", &mut errors).is_empty() {
            f.matches_nothing = true;
        }
        f.attendee_email = q.get("attendeeEmail").map(str::to_string);
        f.attendee_name = q.get("attendeeName").map(str::to_string);
        if let Some(n) = q.int("limit", 1, 100, &mut errors) {
            f.take = n;
        }
        if let Some(c) = q.int("cursor", 0, i64::MAX / 2, &mut errors) {
            f.skip = c;
        }
        input::check(errors)?;
        Ok(f)
    }

    fn booking(&self, b: &Booking) -> Value {
        let a = &b.attendee;
        let mut attendee = json!({
            "name": a.get("name"),
            "email": a.get("email"),
            "timeZone": a.get("timeZone"),
            "locale": a.get("language").cloned().unwrap_or(json!("en")),
        });
        if let Some(p) = a.get("phoneNumber") {
            attendee["phoneNumber"] = p.clone();
        }
        let mut responses = Map::new();
        responses.insert("name".into(), a.get("name").cloned().unwrap_or(Value::Null));
        responses.insert(
            "email".into(),
            a.get("email").cloned().unwrap_or(Value::Null),
        );
        if b.guests.as_array().is_some_and(|g| !g.is_empty()) {
            responses.insert("guests".into(), b.guests.clone());
        }
        if let Some(o) = b.booking_fields_responses.as_object() {
            responses.extend(o.clone());
        }
        json!({
            "id": b.id,
            "uid": b.uid,
            "userId": b.host_id,
            "userPrimaryEmail": b.host_email,
            "eventTypeId": b.event_type_id,
            "eventType": {"id": b.event_type_id, "slug": b.event_type_slug},
            "title": b.title,
            "description": b.booking_fields_responses.get("notes").cloned().unwrap_or(Value::Null),
            "startTime": iso(b.start),
            "endTime": iso(b.end),
            "status": b.status.to_uppercase(),
            "location": b.location,
            "metadata": b.metadata,
            "responses": responses,
            "attendees": [attendee],
            "user": {"id": b.host_id, "name": b.host_name, "email": b.host_email,
                     "username": b.host_username, "timeZone": b.host_time_zone},
            "fromReschedule": b.rescheduled_from_uid,
            "rescheduled": b.rescheduled_to_uid.is_some(),
            "cancellationReason": b.cancellation_reason,
            "createdAt": iso(b.created_at),
            "updatedAt": iso(b.updated_at),
        })
    }

    fn list(&self, rows: &[Booking], total: i64, f: &BookingFilter) -> Value {
        let next = f.skip + f.take;
        json!({
            "status": "success",
            "data": {
                "bookings": rows.iter().map(|b| self.booking(b)).collect::<Vec<_>>(),
                "recurringInfo": [],
                "totalCount": total,
                "nextCursor": if total > next { Some(next) } else { None },
            }
        })
    }

    fn cancelled(&self, b: &Booking) -> Value {
        json!({"bookingId": b.id, "bookingUid": b.uid, "onlyRemovedAttendee": false})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(e: &ApiError) -> Vec<String> {
        e.details["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn create_requests_report_every_problem() {
        let mut w = Vec::new();
        let e = Current
            .create(
                json!({
                    "start": "tomorrow", "eventTypeId": 1,
                    "attendee": {"name": " ", "email": "nope", "timeZone": "Mars/Olympus",
                                 "phoneNumber": "12", "language": "xx"},
                    "guests": ["a@b.example", "bad"], "metadata": [1], "lengthInMinutes": 0
                }),
                &mut w,
            )
            .unwrap_err();
        assert_eq!(e.code, "validation_error");
        assert_eq!(
            fields(&e),
            [
                "start",
                "attendee.name",
                "attendee.email",
                "attendee.phoneNumber",
                "attendee.timeZone",
                "attendee.language",
                "guests[1]",
                "metadata",
                "lengthInMinutes"
            ]
        );
        let ok = Current
            .create(
                json!({"start": "2031-03-03T09:00:00+01:00", "eventTypeSlug": "intro",
                       "username": "ann", "organizationSlug": "acme",
                       "attendee": {"name": "Bo", "phoneNumber": "+44 20 7946 0958", "timeZone": "UTC"},
                       "location": {"type": "address", "address": "1 Main St"},
                       "bookingFieldsResponses": {"company": "Acme"}}),
                &mut w,
            )
            .unwrap();
        assert_eq!(ok.start.to_string(), "2031-03-03T08:00:00Z");
        assert_eq!(
            ok.event_type,
            EventTypeRef::Slug {
                slug: "intro".into(),
                username: "ann".into(),
                organization: Some("acme".into())
            }
        );
        assert_eq!(ok.location.as_deref(), Some("1 Main St"));
        assert_eq!(ok.attendee["phoneNumber"], "+44 20 7946 0958");
        assert!(ok.attendee.get("email").is_none());
        assert!(w.is_empty(), "{w:?}");
        let e = Current
            .create(
                json!({"start": "2031-03-03T09:00:30Z", "eventTypeId": 1,
                       "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}}),
                &mut w,
            )
            .unwrap_err();
        assert!(e.message.contains("whole minute"), "{}", e.message);
    }

    #[test]
    fn documented_fields_without_effect_are_warned_about() {
        let mut w = Vec::new();
        Current
            .create(
                json!({"start": "2031-03-03T09:00:00Z", "eventTypeId": 1,
                       "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"},
                       "routing": {"responseId": 1}, "emailVerificationCode": "123456",
                       "recurrenceCount": 2, "meetingUrl": "https://example.com/m"}),
                &mut w,
            )
            .unwrap();
        let named: Vec<&str> = w.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "meetingUrl",
                "routing",
                "emailVerificationCode",
                "recurrenceCount"
            ]
        );
    }

    #[test]
    fn legacy_bookings_read_responses_and_an_end() {
        let mut w = Vec::new();
        let r = Legacy
            .create(
                json!({"start": "2040-05-21T09:30:00.000Z", "end": "2040-05-21T10:30:00.000Z",
                       "eventTypeId": 7, "timeZone": "Europe/London", "language": "en",
                       "metadata": {"timeFormat": "12"}, "hashedLink": "",
                       "rescheduleUid": "7f0a7b1e-0000-4000-8000-000000000001",
                       "responses": {"name": {"firstName": "John", "lastName": "Doe"},
                                     "email": "tester@example.com",
                                     "location": {"value": "link", "optionValue": ""},
                                     "notes": "test"}}),
                &mut w,
            )
            .unwrap();
        assert_eq!(r.length, Some(60));
        assert_eq!(r.attendee["name"], "John Doe");
        assert_eq!(r.event_type, EventTypeRef::Id(7));
        assert!(r.reschedule_of.is_some());
        assert_eq!(r.booking_fields_responses["notes"], "test");
        assert_eq!(w[0].field, "hashedLink");
        let e = Legacy
            .create(
                json!({"start": "2040-05-21T09:30:00Z", "eventTypeId": 7, "timeZone": "UTC",
                       "language": "en", "metadata": {}, "attendee": {},
                       "responses": {"name": "a", "email": "a@b.example"}}),
                &mut w,
            )
            .unwrap_err();
        assert_eq!(
            fields(&e),
            ["attendee"],
            "a 2024-08-13 field is not a legacy one"
        );
    }

    #[test]
    fn list_queries_are_checked() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let f = Current
            .filter(p(&[
                ("status", "accepted,cancelled"),
                ("take", "10"),
                ("skip", "20"),
                ("afterStart", "2031-01-02T10:00:00.123+01:00"),
                ("sortStart", "desc"),
                ("attendeeEmail", "Ann@Example.com"),
                ("eventTypeIds", "3,4"),
            ]))
            .unwrap();
        assert_eq!(f.statuses, ["accepted", "cancelled", "rejected"]);
        assert_eq!((f.take, f.skip), (10, 20));
        assert_eq!(
            f.after_start.unwrap().to_string(),
            "2031-01-02T09:00:00.123Z"
        );
        assert_eq!(f.sort, [(SortKey::Start, true)]);
        assert_eq!(f.event_type_ids, [3, 4]);
        let e = Current
            .filter(p(&[
                ("status", "recurring,bogus"),
                ("take", "1000"),
                ("sortEnd", "up"),
            ]))
            .unwrap_err();
        assert_eq!(fields(&e), ["status", "sortEnd", "take"]);
        let e = Current
            .filter(p(&[("filters[status]", "upcoming")]))
            .unwrap_err();
        assert_eq!(fields(&e), ["filters[status]"]);
        let f = Legacy
            .filter(p(&[
                ("filters[status]", "past"),
                ("limit", "5"),
                ("cursor", "10"),
            ]))
            .unwrap();
        assert!(f.past && !f.upcoming);
        assert_eq!((f.take, f.skip), (5, 10));
        assert!(
            Legacy.filter(p(&[])).unwrap().upcoming,
            "upcoming by default"
        );
    }
}
