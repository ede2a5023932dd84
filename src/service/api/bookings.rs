//! `/v2/bookings` (create, read, list, cancel, reschedule) and `/v2/slots/reservations`
//! (slot holds), in Cal.com API v2 shapes.
//!
//! A start must be one of the event type's slots (422 otherwise). Whether the time is still
//! free is decided by PostgreSQL's exclusion constraint at insert time (409
//! `booking_conflict`); the slot check beforehand only answers early.

use super::error::{success, ApiError, ApiResult, Path, Query};
use crate::service::domain::booking::Booking;
use crate::service::domain::hours::time_zone;
use crate::service::domain::slots;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::bookings::{
    retry_transient, BookOutcome, BookingFilter, IdempotencyKey, NewBooking, Replay,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use uuid::Uuid;

/// How long a slot hold lasts unless the request asks otherwise (minutes).
pub const DEFAULT_RESERVATION_MINUTES: i64 = 5;
/// The longest hold a request may ask for (minutes).
pub const MAX_RESERVATION_MINUTES: i64 = 60;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Attendee {
    pub name: String,
    pub email: String,
    pub time_zone: String,
    #[serde(default)]
    pub language: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBooking {
    pub start: String,
    pub event_type_id: i64,
    pub attendee: Attendee,
    #[serde(default)]
    pub guests: Vec<String>,
    #[serde(default)]
    pub length_in_minutes: Option<i64>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub reservation_uid: Option<Uuid>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelBooking {
    #[serde(default)]
    pub cancellation_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RescheduleBooking {
    pub start: String,
    #[serde(default)]
    pub rescheduling_reason: Option<String>,
    #[serde(default)]
    pub reservation_uid: Option<Uuid>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateReservation {
    pub event_type_id: i64,
    pub slot_start: String,
    #[serde(default)]
    pub slot_duration: Option<i64>,
    #[serde(default)]
    pub reservation_duration: Option<i64>,
}

/// A JSON body (empty counts as `{}`), with our error shape on failure.
pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    serde_json::from_value(v).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "validation_error",
            format!("the body does not match the expected shape: {e}"),
        )
    })
}

/// An ISO 8601 instant with an offset or `Z`; a problem goes to `errors`.
pub(super) fn any_instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let t = s.trim().parse::<Timestamp>().ok();
    if t.is_none() {
        errors.push(FieldError::new(
            field,
            format!("{s:?} is not an ISO 8601 time with an offset, such as 2026-06-01T09:00:00Z"),
        ));
    }
    t
}

/// [`any_instant`] on a whole minute (a slot start).
pub(super) fn instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let t = any_instant(field, s, errors)?;
    if t.as_second() % 60 == 0 && t.subsec_nanosecond() == 0 {
        Some(t)
    } else {
        errors.push(FieldError::new(field, "must be on a whole minute"));
        None
    }
}

fn valid_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Check a create request; every problem at once.
pub fn validate_create(b: &CreateBooking) -> Result<Timestamp, ApiError> {
    let mut errors = Vec::new();
    let start = instant("start", &b.start, &mut errors);
    if b.attendee.name.trim().is_empty() {
        errors.push(FieldError::new("attendee.name", "required"));
    }
    if !valid_email(&b.attendee.email) {
        errors.push(FieldError::new(
            "attendee.email",
            format!("{:?} is not an e-mail address", b.attendee.email),
        ));
    }
    if time_zone(&b.attendee.time_zone).is_none() {
        errors.push(FieldError::new(
            "attendee.timeZone",
            format!(
                "unknown time zone {:?}: use an IANA name such as \"Europe/Berlin\"",
                b.attendee.time_zone
            ),
        ));
    }
    for (i, g) in b.guests.iter().enumerate() {
        if !valid_email(g) {
            errors.push(FieldError::new(
                format!("guests[{i}]"),
                format!("{g:?} is not an e-mail address"),
            ));
        }
    }
    if b.guests.len() > 30 {
        errors.push(FieldError::new("guests", "at most 30 guests"));
    }
    if let Some(m) = &b.metadata {
        if !m.is_object() {
            errors.push(FieldError::new("metadata", "must be an object"));
        }
    }
    if let Some(n) = b.length_in_minutes {
        if !(1..=1440).contains(&n) {
            errors.push(FieldError::new("lengthInMinutes", "must be 1 to 1440"));
        }
    }
    match (errors.is_empty(), start) {
        (true, Some(s)) => Ok(s),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Is `start` one of the event type's slots? 422 when it never is (outside hours, not on the
/// grid, too soon, outside the window); 409 when it is but a booking or hold has taken it.
/// Returns the end and the event type's length in minutes.
pub(super) async fn check_slot(
    state: &AppState,
    org: i64,
    event_type_id: i64,
    start: Timestamp,
    length: Option<i64>,
    mine: Option<Uuid>,
    check_busy: bool,
) -> Result<(Timestamp, i64), ApiError> {
    // Busy time matters when it ends less than two days before the start (buffers are at most
    // a day each) or starts less than three days after it (a day of length plus buffers); the
    // per-day limit looks at the start's local date, well inside both.
    let margin = jiff::SignedDuration::from_hours(72);
    let before = jiff::SignedDuration::from_hours(50);
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "event_type_not_found",
            format!("event type {event_type_id} not found"),
        )
    };
    let mut ctx = state
        .store
        .fresh_slot_context(org, event_type_id, start - before, start + margin, mine)
        .await?
        .ok_or_else(not_found)?;
    let busy_from = Timestamp::now() - margin;
    if super::slots::rolls(&ctx.event_type) && busy_from < start - before {
        // A rolling window counts bookable dates from today on.
        ctx = state
            .store
            .fresh_slot_context(org, event_type_id, busy_from, start + margin, mine)
            .await?
            .ok_or_else(not_found)?;
    }
    let p = Prepared::new(&ctx, event_type_id, start, length)?;
    p.judge(start, check_busy)?;
    Ok((p.end, p.own))
}

/// 422: `start` is not one of the event type's slots.
fn unavailable(start: Timestamp, event_type_id: i64) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "slot_unavailable",
        format!(
            "{start} is not an available slot of event type {event_type_id}; GET /v2/slots lists them"
        ),
    )
}

/// A start's event type rules, ready to judge it: the host's hours, the rules, the busy time
/// of the context, the length in minutes and the end.
struct Prepared {
    avail: slots::Availability,
    rules: slots::Rules,
    busy: Vec<slots::Busy>,
    own: i64,
    end: Timestamp,
    event_type_id: i64,
}

impl Prepared {
    /// 422 when a `lengthInMinutes` differs from the event type's, or the host has no hours.
    fn new(
        ctx: &crate::service::store::SlotContext,
        event_type_id: i64,
        start: Timestamp,
        length: Option<i64>,
    ) -> Result<Prepared, ApiError> {
        let own = i64::from(ctx.event_type.length_minutes);
        if let Some(l) = length {
            if l != own {
                return Err(ApiError::validation(vec![FieldError::new(
                    "lengthInMinutes",
                    format!(
                    "this event type lasts {own} minutes; leave lengthInMinutes out or send {own}"
                ),
                )]));
            }
        }
        if ctx.schedule.is_none() {
            return Err(unavailable(start, event_type_id));
        }
        let (avail, rules, busy) = super::slots::prepare(ctx, own)?;
        Ok(Prepared {
            avail,
            rules,
            busy,
            own,
            end: start + jiff::SignedDuration::from_mins(own),
            event_type_id,
        })
    }

    /// Is `start` a slot? 422 when it is not; with `check_busy`, 409 when it is one only
    /// without the busy time (taken).
    fn judge(&self, start: Timestamp, check_busy: bool) -> Result<(), ApiError> {
        let q = slots::Query {
            start: start.as_second(),
            end: start.as_second() + 1,
            now: Timestamp::now().as_second(),
        };
        // Busy time can also make a start a slot (the grid restarts after it), so a slot with
        // busy time counts first; a start that is one only without busy time has been taken.
        let (avail, rules) = (&self.avail, &self.rules);
        if check_busy && !slots::compute(avail, rules, &self.busy, &q).is_empty() {
            return Ok(());
        }
        if slots::compute(avail, rules, &[], &q).is_empty() {
            return Err(unavailable(start, self.event_type_id));
        }
        if check_busy {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "booking_conflict",
                format!("{start} has been booked or is held by someone else; pick another slot"),
            ));
        }
        Ok(())
    }
}

fn iso(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// The Cal.com v2 booking object.
pub fn booking_json(b: &Booking) -> Value {
    let attendee = &b.attendee;
    json!({
        "id": b.id,
        "uid": b.uid,
        "title": b.title,
        "status": b.status,
        "start": iso(b.start),
        "end": iso(b.end),
        "duration": (b.end.as_second() - b.start.as_second()) / 60,
        "eventTypeId": b.event_type_id,
        "eventType": {"id": b.event_type_id, "slug": b.event_type_slug},
        "hosts": [{"id": b.host_id, "name": b.host_name, "email": b.host_email, "timeZone": b.host_time_zone}],
        "attendees": [attendee],
        "guests": b.guests,
        "metadata": b.metadata,
        "rescheduledFromUid": b.rescheduled_from_uid,
        "rescheduledToUid": b.rescheduled_to_uid,
        "cancellationReason": b.cancellation_reason,
        "createdAt": iso(b.created_at),
        "updatedAt": iso(b.updated_at),
    })
}

pub fn idempotency_key(
    headers: &HeaderMap,
    raw: &[u8],
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            )
        })?;
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        request_hash: Sha256::digest(raw).to_vec(),
    }))
}

fn uid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found("booking"))
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let req: CreateBooking = body(&raw)?;
    let start = validate_create(&req)?;
    let idem = idempotency_key(&headers, &raw)?;
    Ok(book(&state, org, &req, start, idem).await?.response())
}

/// What booking gave: a new booking, or the first answer to the same idempotency key.
pub enum Booked {
    Created(Box<Booking>),
    Replayed(Replay),
}

impl Booked {
    /// The API's answer: 201 with the booking, or the first answer replayed.
    pub fn response(self) -> axum::response::Response {
        match self {
            Booked::Created(b) => success(StatusCode::CREATED, booking_json(&b)),
            Booked::Replayed(r) => replayed(r),
        }
    }
}

/// Book a checked request ([`validate_create`] gave `start`) for the organization: the path
/// `POST /v2/bookings` and the booking pages share. 409 `booking_conflict` when the slot was
/// taken, 422 `slot_unavailable` when it is not a slot.
pub async fn book(
    state: &AppState,
    org: i64,
    req: &CreateBooking,
    start: Timestamp,
    idem: Option<IdempotencyKey>,
) -> Result<Booked, ApiError> {
    if let Some(k) = &idem {
        if let Some(r) = state.store.idempotent_replay(org, k).await? {
            return Ok(Booked::Replayed(r));
        }
    }
    if req.reservation_uid.is_none() {
        if let Some(done) = book_directly(state, org, req, start, idem.as_ref()).await? {
            return Ok(done);
        }
    }
    let checked = check_slot(
        state,
        org,
        req.event_type_id,
        start,
        req.length_in_minutes,
        req.reservation_uid,
        true,
    )
    .await;
    let end = match (checked, &idem) {
        (Ok((end, _)), _) => end,
        // The first request with this key may have just taken the slot.
        (Err(e), Some(k)) => match state.store.idempotent_replay(org, k).await? {
            Some(r) => return Ok(Booked::Replayed(r)),
            None => return Err(e),
        },
        (Err(e), None) => return Err(e),
    };
    // The Redis lock only spares the database a crowd of conflicting inserts (waiters hold no
    // database connection while the first request books); the exclusion constraint decides.
    let host = state
        .store
        .slot_config(org, req.event_type_id)
        .await?
        .map_or(0, |c| c.event_type.user_id);
    let lock = crate::service::ratelimit::lock::slot_key(
        org,
        &format!("h{host}"),
        start.as_second(),
        end.as_second(),
    );
    let lock = state.booking_locks.acquire(&lock).await.into_guard();
    let nb = new_booking(org, req, start, end);
    let outcome = retry_transient(|| state.store.create_booking(&nb, idem.as_ref(), booking_json));
    let outcome = outcome.await;
    if let Some(g) = lock {
        g.release().await;
    }
    match outcome? {
        BookOutcome::Created(b) => {
            state.metrics.booked(false);
            Ok(Booked::Created(b))
        }
        BookOutcome::Replayed(r) => Ok(Booked::Replayed(r)),
    }
}

/// The booking a create request asks for, once its slot is known.
fn new_booking(org: i64, req: &CreateBooking, start: Timestamp, end: Timestamp) -> NewBooking {
    let mut attendee = json!({
        "name": req.attendee.name.trim(),
        "email": req.attendee.email.trim(),
        "timeZone": req.attendee.time_zone,
    });
    if let Some(l) = &req.attendee.language {
        attendee["language"] = json!(l);
    }
    NewBooking {
        org_id: org,
        event_type_id: req.event_type_id,
        start,
        end,
        attendee,
        guests: json!(req.guests),
        metadata: req.metadata.clone().unwrap_or_else(|| json!({})),
        reservation_uid: req.reservation_uid,
    }
}

/// Book in one database statement ([`crate::service::store::Store::book_directly`]) when busy
/// time can only take the slot away by overlapping it (`slots::busy_only_overlaps`): then the
/// slot is checked against the (cached) hours alone and the exclusion constraint decides the
/// rest. `Ok(None)` when that does not apply; the caller takes the general path.
async fn book_directly(
    state: &AppState,
    org: i64,
    req: &CreateBooking,
    start: Timestamp,
    idem: Option<&IdempotencyKey>,
) -> Result<Option<Booked>, ApiError> {
    let Some(config) = state.store.slot_config(org, req.event_type_id).await? else {
        return Ok(None);
    };
    if config.host.has_calendars {
        // Busy time from connected calendars is not under the exclusion constraint: the
        // general path checks the slot against it.
        return Ok(None);
    }
    let ctx = crate::service::store::SlotContext {
        event_type: config.event_type.clone(),
        schedule: config.schedule.clone(),
        busy: Vec::new(),
    };
    // A wrong length or a host without hours is refused on either path.
    let p = Prepared::new(&ctx, req.event_type_id, start, req.length_in_minutes)?;
    if !slots::busy_only_overlaps(&p.rules, &p.avail.tz, start.as_second()) {
        return Ok(None);
    }
    // Busy time can only remove slots here, so "not a slot without it" is final.
    p.judge(start, false)?;
    let end = p.end;
    // As in the general path: the host's slot, whichever of its event types books it.
    let lock = crate::service::ratelimit::lock::slot_key(
        org,
        &format!("h{}", config.event_type.user_id),
        start.as_second(),
        end.as_second(),
    );
    let lock = state.booking_locks.acquire(&lock).await.into_guard();
    let nb = new_booking(org, req, start, end);
    let outcome =
        retry_transient(|| state.store.book_directly(&config, &nb, idem, booking_json)).await;
    if let Some(g) = lock {
        g.release().await;
    }
    Ok(match outcome? {
        Some(BookOutcome::Created(b)) => {
            state.metrics.booked(true);
            Some(Booked::Created(b))
        }
        Some(BookOutcome::Replayed(r)) => Some(Booked::Replayed(r)),
        None => None,
    })
}

pub(super) fn replayed(r: Replay) -> axum::response::Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut res = success(status, r.body);
    res.headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    res
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let b = state
        .store
        .get_booking(org, uid(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))?;
    Ok(success(StatusCode::OK, booking_json(&b)))
}

/// Check the list query; every problem at once.
pub fn parse_list(q: &HashMap<String, String>) -> Result<BookingFilter, ApiError> {
    let mut errors = Vec::new();
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut f = BookingFilter {
        take: 100,
        ..BookingFilter::default()
    };
    if let Some(s) = get("status") {
        for part in s.split(',').map(str::trim) {
            match part {
                "accepted" => f.statuses.push(part.to_string()),
                // As Cal.com: cancelled covers rejected too; unconfirmed is pending.
                "cancelled" => f.statuses.extend(["cancelled".into(), "rejected".into()]),
                "unconfirmed" => f.statuses.push("pending".into()),
                "upcoming" => f.upcoming = true,
                "past" => f.past = true,
                other => errors.push(FieldError::new(
                    "status",
                    format!("{other:?}: use upcoming, past, cancelled, unconfirmed or accepted (comma-separated for several)"),
                )),
            }
        }
    }
    f.after_start = get("afterStart").and_then(|v| instant("afterStart", v, &mut errors));
    f.before_end = get("beforeEnd").and_then(|v| instant("beforeEnd", v, &mut errors));
    let mut int = |k: &str, lo: i64, hi: i64| {
        get(k).and_then(|v| match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    k,
                    format!("must be a number from {lo} to {hi}"),
                ));
                None
            }
        })
    };
    f.event_type_id = int("eventTypeId", 1, i64::MAX);
    if let Some(t) = int("take", 1, 250) {
        f.take = t;
    }
    if let Some(s) = int("skip", 0, i64::MAX / 2) {
        f.skip = s;
    }
    if let (Some(a), Some(b)) = (f.after_start, f.before_end) {
        if b <= a {
            errors.push(FieldError::new("beforeEnd", "must be after afterStart"));
        }
    }
    if errors.is_empty() {
        Ok(f)
    } else {
        Err(ApiError::validation(errors))
    }
}

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let f = parse_list(&params)?;
    let (rows, total) = state.store.list_bookings(org, &f).await?;
    let returned = rows.len() as i64;
    let data: Vec<Value> = rows.iter().map(booking_json).collect();
    let body = json!({
        "status": "success",
        "data": data,
        "pagination": {
            "totalItems": total,
            "returnedItems": returned,
            "remainingItems": (total - f.skip - returned).max(0),
            "itemsPerPage": f.take,
            "skip": f.skip,
            "hasNextPage": f.skip + returned < total,
            "hasPreviousPage": f.skip > 0,
        }
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let org = who.org()?;
    who.require("cancel")?;
    let uid = uid(&id)?;
    let req: CancelBooking = body(&raw)?;
    let b = state
        .store
        .cancel_booking(org, uid, req.cancellation_reason.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))?;
    Ok(success(StatusCode::OK, booking_json(&b)))
}

pub async fn reschedule(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    raw: Bytes,
) -> ApiResult {
    let org = who.org()?;
    who.require("reschedule")?;
    let uid = uid(&id)?;
    let req: RescheduleBooking = body(&raw)?;
    let mut errors = Vec::new();
    let start = instant("start", &req.start, &mut errors);
    let Some(start) = start.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let b = move_booking(
        &state,
        org,
        uid,
        start,
        req.rescheduling_reason.as_deref(),
        req.reservation_uid,
    )
    .await?;
    Ok(success(StatusCode::CREATED, booking_json(&b)))
}

/// Move a booking to a new start in one transaction (the old one is cancelled and linked to
/// the new one; when the new time is taken nothing changes): the path
/// `POST /v2/bookings/{uid}/reschedule` and the booking pages share.
pub async fn move_booking(
    state: &AppState,
    org: i64,
    uid: Uuid,
    start: Timestamp,
    reason: Option<&str>,
    reservation_uid: Option<Uuid>,
) -> Result<Booking, ApiError> {
    let old = state
        .store
        .get_booking(org, uid)
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))?;
    // The old booking still occupies its time here, so only "is this ever a slot" is checked;
    // whether the new time is free is the database's call inside the transaction.
    let (end, _) = check_slot(
        state,
        org,
        old.event_type_id,
        start,
        None,
        reservation_uid,
        false,
    )
    .await?;
    let b = retry_transient(|| {
        state
            .store
            .reschedule_booking(org, uid, start, end, reason, reservation_uid)
    })
    .await?
    .ok_or_else(|| ApiError::not_found("booking"))?;
    Ok(b)
}

pub async fn reserve(State(state): State<AppState>, who: Principal, raw: Bytes) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let req: CreateReservation = body(&raw)?;
    let mut errors = Vec::new();
    let start = instant("slotStart", &req.slot_start, &mut errors);
    let minutes = req
        .reservation_duration
        .unwrap_or(DEFAULT_RESERVATION_MINUTES);
    if !(1..=MAX_RESERVATION_MINUTES).contains(&minutes) {
        errors.push(FieldError::new(
            "reservationDuration",
            format!("must be 1 to {MAX_RESERVATION_MINUTES} minutes"),
        ));
    }
    let Some(start) = start.filter(|_| errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let held = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable", m);
    let (end, length) = match check_slot(
        &state,
        org,
        req.event_type_id,
        start,
        req.slot_duration,
        None,
        true,
    )
    .await
    {
        Err(e) if e.status == StatusCode::CONFLICT => return Err(held(e.message)),
        other => other?,
    };
    let r = match retry_transient(|| {
        state
            .store
            .create_reservation(org, req.event_type_id, start, end, minutes * 60)
    })
    .await
    {
        Err(crate::service::store::StoreError::BookingConflict(m)) => return Err(held(m)),
        other => other?,
    }
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "event_type_not_found",
            format!("event type {} not found", req.event_type_id),
        )
    })?;
    Ok(success(
        StatusCode::CREATED,
        json!({
            "reservationUid": r.uid,
            "eventTypeId": r.event_type_id,
            "slotStart": iso(r.start),
            "slotEnd": iso(r.end),
            "slotDuration": length,
            "reservationDuration": minutes,
            "reservationUntil": iso(r.expires_at),
        }),
    ))
}

pub async fn release(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let uid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("reservation"))?;
    if !state.store.delete_reservation(org, uid).await? {
        return Err(ApiError::not_found("reservation"));
    }
    Ok(success(StatusCode::OK, json!({"reservationUid": uid})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: Value) -> CreateBooking {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn create_requests_report_every_problem() {
        let e = validate_create(&req(json!({
            "start": "tomorrow", "eventTypeId": 1,
            "attendee": {"name": " ", "email": "nope", "timeZone": "Mars/Olympus"},
            "guests": ["a@b.example", "bad"], "metadata": [1], "lengthInMinutes": 0
        })))
        .unwrap_err();
        assert_eq!(e.code, "validation_error");
        let fields: Vec<&str> = e.details["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "start",
                "attendee.name",
                "attendee.email",
                "attendee.timeZone",
                "guests[1]",
                "metadata",
                "lengthInMinutes"
            ]
        );
        let ok = validate_create(&req(json!({
            "start": "2031-03-03T09:00:00+01:00", "eventTypeId": 1,
            "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "Europe/Berlin"}
        })))
        .unwrap();
        assert_eq!(ok.to_string(), "2031-03-03T08:00:00Z");
        let e = validate_create(&req(json!({
            "start": "2031-03-03T09:00:30Z", "eventTypeId": 1,
            "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}
        })))
        .unwrap_err();
        assert!(e.message.contains("whole minute"), "{}", e.message);
    }

    #[test]
    fn list_queries_are_checked() {
        let p = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let f = parse_list(&p(&[
            ("status", "accepted,cancelled"),
            ("take", "10"),
            ("skip", "20"),
        ]))
        .unwrap();
        assert_eq!(f.statuses, ["accepted", "cancelled", "rejected"]);
        assert!(!f.upcoming && !f.past);
        assert_eq!((f.take, f.skip), (10, 20));
        let f = parse_list(&p(&[("status", "upcoming, past")])).unwrap();
        assert!(f.upcoming && f.past && f.statuses.is_empty());
        let e = parse_list(&p(&[
            ("status", "recurring"),
            ("take", "1000"),
            ("afterStart", "2031-01-02T00:00:00Z"),
            ("beforeEnd", "2031-01-01T00:00:00Z"),
        ]))
        .unwrap_err();
        assert_eq!(e.details["fields"].as_array().unwrap().len(), 3);
    }
}
