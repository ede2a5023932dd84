//! `/v2/bookings` (create, read, list, cancel, reschedule) and `/v2/slots/reservations`
//! (slot holds). The request and response shapes of each `cal-api-version` are
//! `versions::bookings`'; these handlers get them as a [`BookingApi`].
//!
//! A start must be one of the event type's slots (422 otherwise). Whether the time is still
//! free is decided by PostgreSQL's exclusion constraint at insert time (409
//! `booking_conflict`); the slot check beforehand only answers early.

use super::error::{success, ApiError, ApiResult, Path, Query};
use super::input::{self, reply, JsonBody, Warning};
use super::slots::{event_type_id, event_type_not_found};
use super::versions::bookings::{BookingApi, BookingRequest, Bookings, Current};
use super::versions::slots::{ReservationRequest, Slots, SlotsApi};
use super::versions::Versioned;
use crate::service::domain::booking::Booking;
use crate::service::domain::instant;
use crate::service::domain::slots;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::bookings::{
    retry_transient, BookOutcome, IdempotencyKey, NewBooking, Replay, Reschedule,
};
use crate::service::store::EventType;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long a slot hold lasts unless the request asks otherwise (minutes).
pub const DEFAULT_RESERVATION_MINUTES: i64 = 5;
/// The longest hold a request may ask for (minutes).
pub const MAX_RESERVATION_MINUTES: i64 = 60;

/// The length of a booking of `et`: its own, or `requested` when that is one of its lengths
/// (`lengthInMinutesOptions`). 400 otherwise.
pub fn booking_length(et: &EventType, requested: Option<i64>) -> Result<i64, ApiError> {
    let own = i64::from(et.length_minutes);
    let options: Vec<i64> = et
        .length_options
        .iter()
        .flatten()
        .map(|&l| i64::from(l))
        .collect();
    match requested {
        None => Ok(own),
        Some(l) if l == own || options.contains(&l) => Ok(l),
        Some(_) => {
            let allowed = if options.is_empty() {
                own.to_string()
            } else {
                options
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(ApiError::validation(vec![FieldError::new(
                "lengthInMinutes",
                format!("this event type lasts {allowed} minutes; leave lengthInMinutes out or send one of them"),
            )]))
        }
    }
}

/// Is `start` one of the event type's slots? 422 when it never is (outside hours, not on the
/// grid, too soon, outside the window); 409 when it is but a booking or hold has taken it.
/// Returns the end and the booking's length in minutes.
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
    let (from, to) = match (instant::add(start, -before), instant::add(start, margin)) {
        (Some(from), Some(to)) => (from, to),
        _ => return Err(out_of_range("start")),
    };
    let mut ctx = state
        .store
        .fresh_slot_context(org, event_type_id, from, to, mine)
        .await?
        .ok_or_else(not_found)?;
    let busy_from = Timestamp::now() - margin;
    if super::slots::rolls(&ctx.event_type) && busy_from < from {
        // A rolling window counts bookable dates from today on.
        ctx = state
            .store
            .fresh_slot_context(org, event_type_id, busy_from, to, mine)
            .await?
            .ok_or_else(not_found)?;
    }
    let p = Prepared::new(&ctx, event_type_id, start, length)?;
    p.judge(start, check_busy)?;
    Ok((p.end, p.own))
}

/// 422: `start` is not one of the event type's slots.
/// 400: the arithmetic on a start left the instants the service can represent (the range
/// check where instants enter should make this unreachable).
pub(super) fn out_of_range(field: &str) -> ApiError {
    ApiError::validation(vec![FieldError::new(
        field,
        instant::out_of_range_message(),
    )])
}

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
    /// 400 when a `lengthInMinutes` is not one of the event type's; 422 when the host has no
    /// hours.
    fn new(
        ctx: &crate::service::store::SlotContext,
        event_type_id: i64,
        start: Timestamp,
        length: Option<i64>,
    ) -> Result<Prepared, ApiError> {
        let own = booking_length(&ctx.event_type, length)?;
        if ctx.schedule.is_none() {
            return Err(unavailable(start, event_type_id));
        }
        let (avail, rules, busy) = super::slots::prepare(ctx, own)?;
        let end = instant::add_minutes(start, own).ok_or_else(|| out_of_range("start"))?;
        Ok(Prepared {
            avail,
            rules,
            busy,
            own,
            end,
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

/// The attendee of a booking made on a booking page (`service::web`).
#[derive(Debug, Clone)]
pub struct Attendee {
    pub name: String,
    pub email: String,
    pub time_zone: String,
    pub language: Option<String>,
}

/// A booking made on a booking page: read exactly as the newest API shape (2024-08-13) reads
/// it, so that a page and an API client are held to the same rules.
#[derive(Debug, Clone)]
pub struct CreateBooking {
    pub start: String,
    pub event_type_id: i64,
    pub attendee: Attendee,
    pub guests: Vec<String>,
    pub length_in_minutes: Option<i64>,
    pub metadata: Option<Value>,
    pub reservation_uid: Option<Uuid>,
}

impl CreateBooking {
    fn parsed(&self) -> Result<BookingRequest, ApiError> {
        let mut attendee = json!({"name": self.attendee.name, "email": self.attendee.email,
                                  "timeZone": self.attendee.time_zone});
        if let Some(l) = &self.attendee.language {
            attendee["language"] = json!(l);
        }
        let mut body = json!({"start": self.start, "eventTypeId": self.event_type_id,
                              "attendee": attendee, "guests": self.guests});
        for (k, v) in [
            ("lengthInMinutes", self.length_in_minutes.map(|n| json!(n))),
            ("metadata", self.metadata.clone()),
            ("reservationUid", self.reservation_uid.map(|u| json!(u))),
        ] {
            if let Some(v) = v {
                body[k] = v;
            }
        }
        Current.create(body, &mut Vec::new())
    }
}

/// A page's booking checked as the API checks it; its start.
pub fn validate_create(req: &CreateBooking) -> Result<Timestamp, ApiError> {
    Ok(req.parsed()?.start)
}

/// Book a page's request (see [`book_request`]); its replayed answer is in the newest shape.
pub async fn book(
    state: &AppState,
    org: i64,
    req: &CreateBooking,
    _start: Timestamp,
    idem: Option<IdempotencyKey>,
) -> Result<Booked, ApiError> {
    book_request(state, org, &Current, req.parsed()?, idem).await
}

/// A booking made now, or the first result of its idempotency key.
pub enum Booked {
    Created(Box<Booking>),
    Replayed(Replay),
}

impl Booked {
    fn respond(self, api: &dyn BookingApi, warnings: &[Warning]) -> Response {
        match self {
            Booked::Created(b) => reply(StatusCode::CREATED, api.booking(&b), warnings),
            Booked::Replayed(r) => replayed(r),
        }
    }
}

/// An `Idempotency-Key` with a fingerprint of the request: its body and the shape it was
/// read in (the same key with another `cal-api-version` is another request).
pub(super) fn idempotency_key(
    headers: &HeaderMap,
    raw: &[u8],
    shape: &str,
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
    let mut h = Sha256::new();
    h.update(shape.as_bytes());
    h.update(b"\n");
    h.update(raw);
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        request_hash: h.finalize().to_vec(),
    }))
}

fn uid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found("booking"))
}

/// The location text of an event type's first location that has one (address, link, phone).
fn default_location(et: &EventType) -> Option<String> {
    et.locations.as_array()?.iter().find_map(|l| {
        ["address", "link", "phone"]
            .iter()
            .find_map(|k| l.get(k).and_then(Value::as_str))
            .map(str::to_string)
    })
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Bookings>,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let mut warnings = Vec::new();
    let raw = body.raw;
    let req = api.create(body.value, &mut warnings)?;
    if let Some(old) = req.reschedule_of {
        // Cal.com's older shapes reschedule through create.
        who.require("reschedule")?;
        return reschedule_by_create(&state, &who, api, old, req, &warnings).await;
    }
    let idem = idempotency_key(&headers, &raw, api.family().names().as_str())?;
    Ok(book_request(&state, org, api, req, idem)
        .await?
        .respond(api, &warnings))
}

/// Book a parsed request for the organization (its answers stored in `api`'s shape for the
/// idempotency key): what `POST /v2/bookings` and the booking pages share. 409
/// `booking_conflict` when the slot was taken, 422 `slot_unavailable` when it is not a slot.
pub async fn book_request(
    state: &AppState,
    org: i64,
    api: &'static dyn BookingApi,
    req: BookingRequest,
    idem: Option<IdempotencyKey>,
) -> Result<Booked, ApiError> {
    if let Some(k) = &idem {
        if let Some(r) = state.store.idempotent_replay(org, k).await? {
            return Ok(Booked::Replayed(r));
        }
    }
    let et_id = event_type_id(state, org, &req.event_type).await?;
    let config = state
        .store
        .slot_config(org, et_id)
        .await?
        .ok_or_else(|| event_type_not_found(et_id))?;
    let et = &config.event_type;
    if et.disable_guests && !req.guests.is_empty() {
        return Err(ApiError::validation(vec![FieldError::new(
            "guests",
            "this event type takes no guests (disableGuests)",
        )]));
    }
    booking_length(et, req.length)?;
    let nb = NewBooking {
        org_id: org,
        event_type_id: et_id,
        start: req.start,
        end: req.start,
        location: req.location.clone().or_else(|| default_location(et)),
        attendee: req.attendee,
        guests: json!(req.guests),
        metadata: req.metadata,
        reservation_uid: req.reservation_uid,
        booking_fields_responses: req.booking_fields_responses,
    };
    if nb.reservation_uid.is_none() {
        if let Some(done) = book_directly(
            state,
            api,
            config.clone(),
            nb.clone(),
            req.length,
            idem.as_ref(),
        )
        .await?
        {
            return Ok(done);
        }
    }
    let checked = check_slot(
        state,
        org,
        et_id,
        nb.start,
        req.length,
        nb.reservation_uid,
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
    let lock = crate::service::ratelimit::lock::slot_key(
        org,
        &format!("h{}", et.user_id),
        nb.start.as_second(),
        end.as_second(),
    );
    let lock = state.booking_locks.acquire(&lock).await.into_guard();
    let nb = NewBooking { end, ..nb };
    let render = |b: &Booking| api.booking(b);
    let outcome = retry_transient(|| state.store.create_booking(&nb, idem.as_ref(), render));
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

/// Book in one database statement ([`crate::service::store::Store::book_directly`]) when busy
/// time can only take the slot away by overlapping it (`slots::busy_only_overlaps`): then the
/// slot is checked against the (cached) hours alone and the exclusion constraint decides the
/// rest. `Ok(None)` when that does not apply; the caller takes the general path.
async fn book_directly(
    state: &AppState,
    api: &'static dyn BookingApi,
    config: std::sync::Arc<crate::service::store::cache::Config>,
    nb: NewBooking,
    length: Option<i64>,
    idem: Option<&IdempotencyKey>,
) -> Result<Option<Booked>, ApiError> {
    if config.host.has_calendars {
        // Busy time from connected calendars is not under the exclusion constraint: the
        // general path checks the slot against it.
        return Ok(None);
    }
    let (org, start) = (nb.org_id, nb.start);
    let ctx = crate::service::store::SlotContext {
        event_type: config.event_type.clone(),
        schedule: config.schedule.clone(),
        busy: Vec::new(),
    };
    // A wrong length or a host without hours is refused on either path.
    let p = Prepared::new(&ctx, nb.event_type_id, start, length)?;
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
    let nb = NewBooking { end, ..nb };
    let render = |b: &Booking| api.booking(b);
    let outcome = retry_transient(|| state.store.book_directly(&config, &nb, idem, render)).await;
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

/// A booking the key may see: of its organization, and of its user for a user's key (else
/// 404, as if absent).
async fn visible_booking(
    state: &AppState,
    who: &Principal,
    uid: Uuid,
) -> Result<Booking, ApiError> {
    let org = who.org()?;
    state
        .store
        .get_booking(org, uid)
        .await?
        .filter(|b| who.sees_user(b.host_id))
        .ok_or_else(|| ApiError::not_found("booking"))
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Bookings>,
    Path(id): Path<String>,
) -> ApiResult {
    who.require("read")?;
    let b = visible_booking(&state, &who, uid(&id)?).await?;
    Ok(success(StatusCode::OK, api.booking(&b)))
}

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Bookings>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let mut f = api.filter(params)?;
    // A user's key lists the bookings it hosts.
    if let Some(own) = who.user() {
        if f.host_ids.is_empty() || f.host_ids.contains(&own) {
            f.host_ids = vec![own];
        } else {
            f.matches_nothing = true;
        }
    }
    let (rows, total) = state.store.list_bookings(org, &f).await?;
    Ok((StatusCode::OK, axum::Json(api.list(&rows, total, &f))).into_response())
}

pub async fn cancel(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Bookings>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("cancel")?;
    let uid = uid(&id)?;
    let mut warnings = Vec::new();
    let req = api.cancel(body.value, &mut warnings)?;
    let old = visible_booking(&state, &who, uid).await?;
    // A body may repeat the booking (Cal.com's older cancel takes `uid` and `id`); it must
    // be this one.
    let mut errors = Vec::new();
    if req
        .uid
        .as_deref()
        .is_some_and(|u| u != id && Uuid::parse_str(u).ok() != Some(uid))
    {
        errors.push(FieldError::new(
            "uid",
            format!("must be the booking of the path, {uid}"),
        ));
    }
    if req.id.is_some_and(|i| i != old.id) {
        errors.push(FieldError::new(
            "id",
            format!("must be the booking of the path, {}", old.id),
        ));
    }
    input::check(errors)?;
    let b = state
        .store
        .cancel_booking(org, uid, req.reason.as_deref())
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))?;
    Ok(reply(StatusCode::OK, api.cancelled(&b), &warnings))
}

/// Move booking `uid` (visible to the key) to `start` (its length kept), with what `changes`
/// replace.
async fn move_visible(
    state: &AppState,
    who: &Principal,
    uid: Uuid,
    changes: Reschedule,
) -> Result<Booking, ApiError> {
    let old = visible_booking(state, who, uid).await?;
    move_to(state, who.org()?, old, changes).await
}

/// Move a booking of the organization to `start` in one transaction (the old one is cancelled
/// and linked to the new one; when the new time is taken nothing changes): what the booking
/// pages' reschedule uses.
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
    let changes = Reschedule {
        start,
        end: start,
        reason: reason.map(str::to_string),
        reservation_uid,
        ..Reschedule::default()
    };
    move_to(state, org, old, changes).await
}

async fn move_to(
    state: &AppState,
    org: i64,
    old: Booking,
    mut changes: Reschedule,
) -> Result<Booking, ApiError> {
    let uid = old.uid;
    let length = (old.end.as_second() - old.start.as_second()) / 60;
    let et = state
        .store
        .get_event_type(org, old.event_type_id)
        .await?
        .ok_or_else(|| event_type_not_found(old.event_type_id))?;
    let length = booking_length(&et, Some(length)).ok();
    // The old booking still occupies its time here, so only "is this ever a slot" is checked;
    // whether the new time is free is the database's call inside the transaction.
    let (end, _) = check_slot(
        state,
        org,
        old.event_type_id,
        changes.start,
        length,
        changes.reservation_uid,
        false,
    )
    .await?;
    changes.end = end;
    retry_transient(|| state.store.reschedule_booking(org, uid, &changes))
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))
}

pub async fn reschedule(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Bookings>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult {
    who.org()?;
    who.require("reschedule")?;
    let uid = uid(&id)?;
    let mut warnings = Vec::new();
    let req = api.reschedule(body.value, &mut warnings)?;
    let changes = Reschedule {
        start: req.start,
        end: req.start,
        reason: req.reason,
        reservation_uid: req.reservation_uid,
        ..Reschedule::default()
    };
    let b = move_visible(&state, &who, uid, changes).await?;
    Ok(reply(StatusCode::CREATED, api.booking(&b), &warnings))
}

/// `POST /v2/bookings` with `rescheduleUid` (Cal.com before 2024-08-13): the booking moves to
/// the new start and takes the new request's attendee, guests, metadata and answers.
async fn reschedule_by_create(
    state: &AppState,
    who: &Principal,
    api: &'static dyn BookingApi,
    old: Uuid,
    req: BookingRequest,
    warnings: &[Warning],
) -> ApiResult {
    let org = who.org()?;
    let et_id = event_type_id(state, org, &req.event_type).await?;
    let current = visible_booking(state, who, old).await?;
    if current.event_type_id != et_id {
        return Err(ApiError::validation(vec![FieldError::new(
            "eventTypeId",
            format!(
                "booking {old} is of event type {}; a reschedule keeps the event type",
                current.event_type_id
            ),
        )]));
    }
    let changes = Reschedule {
        start: req.start,
        end: req.start,
        reason: req.rescheduling_reason,
        reservation_uid: req.reservation_uid,
        attendee: Some(req.attendee),
        guests: Some(json!(req.guests)),
        metadata: Some(req.metadata),
        location: req.location.map(Some),
        booking_fields_responses: Some(req.booking_fields_responses),
    };
    let b = move_visible(state, who, old, changes).await?;
    Ok(reply(StatusCode::CREATED, api.booking(&b), warnings))
}

/// Hold a slot: `POST /v2/slots/reservations` (2024-09-04) and `POST /v2/slots/reserve`
/// (before it).
pub async fn reserve(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let mut warnings = Vec::new();
    let req = api.reservation(body.value, &mut warnings)?;
    let r = hold(&state, org, &req, None).await?;
    Ok(reply(StatusCode::CREATED, api.reserved(&r), &warnings))
}

/// `PATCH /v2/slots/reservations/{uid}`: the hold moves to the given slot (and duration),
/// keeping its uid.
pub async fn update_reservation(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let uid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("reservation"))?;
    let mut warnings = Vec::new();
    let req = api.reservation(body.value, &mut warnings)?;
    let r = hold(&state, org, &req, Some(uid)).await?;
    Ok(reply(StatusCode::OK, api.reserved(&r), &warnings))
}

/// A hold of `req`'s slot (in place of the hold `replaces`); 422 when the slot is not
/// available or held by another.
async fn hold(
    state: &AppState,
    org: i64,
    req: &ReservationRequest,
    replaces: Option<Uuid>,
) -> Result<crate::service::store::bookings::Reservation, ApiError> {
    let minutes = req.minutes.unwrap_or(DEFAULT_RESERVATION_MINUTES);
    if !(1..=MAX_RESERVATION_MINUTES).contains(&minutes) {
        return Err(ApiError::validation(vec![FieldError::new(
            "reservationDuration",
            format!("must be 1 to {MAX_RESERVATION_MINUTES} minutes"),
        )]));
    }
    let held = |m: String| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable", m);
    let (end, _) = match check_slot(
        state,
        org,
        req.event_type_id,
        req.start,
        req.length,
        None,
        true,
    )
    .await
    {
        Err(e) if e.status == StatusCode::CONFLICT => return Err(held(e.message)),
        other => other?,
    };
    match retry_transient(|| {
        state.store.create_reservation(
            org,
            req.event_type_id,
            req.start,
            end,
            minutes * 60,
            replaces,
        )
    })
    .await
    {
        Err(crate::service::store::StoreError::BookingConflict(m)) => Err(held(m)),
        other => other?.ok_or_else(|| match replaces {
            Some(_) => ApiError::not_found("reservation"),
            None => event_type_not_found(req.event_type_id),
        }),
    }
}

/// `GET /v2/slots/reservations/{uid}`
pub async fn get_reservation(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let uid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("reservation"))?;
    let r = state
        .store
        .get_reservation(org, uid)
        .await?
        .ok_or_else(|| ApiError::not_found("reservation"))?;
    Ok(success(StatusCode::OK, api.reserved(&r)))
}

/// Release a hold early: `DELETE /v2/slots/reservations/{uid}` (2024-09-04).
pub async fn release(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    Path(id): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    release_hold(&state, &who, api, Some(id), params).await
}

/// `DELETE /v2/slots/selected-slot?uid=` (Cal.com before 2024-09-04).
pub async fn release_selected(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    release_hold(&state, &who, api, None, params).await
}

async fn release_hold(
    state: &AppState,
    who: &Principal,
    api: &'static dyn SlotsApi,
    path: Option<String>,
    params: Vec<(String, String)>,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let id = api.released_uid(path, params)?;
    let uid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("reservation"))?;
    if !state.store.delete_reservation(org, uid).await? {
        return Err(ApiError::not_found("reservation"));
    }
    Ok((StatusCode::OK, axum::Json(api.released(uid))).into_response())
}
