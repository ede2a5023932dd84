//! The invitee's self-service pages, reached through a booking's signed link (no API key):
//! `/booking/{uid}` (the booking in the invitee's zone), `/booking/{uid}/ics`,
//! `/booking/{uid}/cancel` (with a reason) and `/booking/{uid}/reschedule` (pick a new slot;
//! one transaction, like the API's reschedule). Every request carries the link token `t`,
//! which names the organization; the booking is read within that organization only.

use super::brand;
use super::links::{booking_path, self_service_urls};
use super::pages::{render_booker, Booker, FormState};
use super::request::{
    internal, invalid_link, message, page, pairs, rate_limit, same_origin, see_other, ClientIp,
    Field, Prefs,
};
use super::token;
use super::view;
use crate::service::domain::booking::Booking;
use crate::service::ratelimit::policy::Class;
use crate::service::state::AppState;
use crate::service::store::{Org, StoreError};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde_json::json;
use uuid::Uuid;

/// The longest cancellation reason kept (characters).
pub const MAX_REASON: usize = 1000;

/// A booking opened through its link: the booking, its organization chain, the token.
struct Opened {
    booking: Booking,
    chain: Vec<Org>,
    token: String,
}

/// What every GET of a link starts with: the preferences from the query and headers, the
/// client's availability rate limit, and [`open`].
async fn open_get(
    state: &AppState,
    query: Option<&str>,
    headers: &HeaderMap,
    ip: &ClientIp,
    uid: &str,
) -> Result<(Prefs, Opened), Response> {
    let prefs = Prefs::new(pairs(query.unwrap_or("")), headers);
    rate_limit(state, Class::Availability, ip, &prefs).await?;
    let o = open(state, &prefs, uid).await?;
    Ok((prefs, o))
}

/// Check the link token and read the booking in the token's organization. Every failure is
/// the same "link is not valid" page.
async fn open(state: &AppState, prefs: &Prefs, uid: &str) -> Result<Opened, Response> {
    let Ok(uid) = Uuid::parse_str(uid) else {
        return Err(invalid_link(prefs));
    };
    let token = prefs.get("t").unwrap_or("").to_string();
    let now = Timestamp::now().as_second();
    let Ok(org) = token::verify_link(state.page_key.bytes(), uid, &token, now) else {
        return Err(invalid_link(prefs));
    };
    let booking = match state.store.get_booking(org, uid).await {
        Ok(Some(b)) => b,
        Ok(None) => return Err(invalid_link(prefs)),
        Err(e) => return Err(internal(prefs, "reading a booking", e)),
    };
    let chain = match state.store.org_chain(org).await {
        Ok(c) => c,
        Err(e) => return Err(internal(prefs, "reading an organization", e)),
    };
    Ok(Opened {
        booking,
        chain,
        token,
    })
}

/// The zone to show a booking in: the invitee's choice, else the zone they booked in.
fn zone(prefs: &Prefs, b: &Booking) -> (String, TimeZone) {
    if let Some((n, z)) = &prefs.tz {
        return (n.clone(), z.clone());
    }
    let name = b.attendee["timeZone"].as_str().unwrap_or("UTC").to_string();
    let z = TimeZone::get(&name).unwrap_or(TimeZone::UTC);
    (name, z)
}

fn active(b: &Booking) -> bool {
    b.status == "accepted" && b.end > Timestamp::now()
}

/// `GET /booking/{uid}?t=`: the booking.
pub async fn view(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let (prefs, o) = match open_get(&state, q.as_deref(), &headers, &ip, &uid).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let b = &o.booking;
    let (tz_name, tz) = zone(&prefs, b);
    let path = booking_path(b.uid, "");
    let with_t = |p: &str| prefs.href(p, &[("t", o.token.clone())]);
    // A moved booking links to its new time, with a link of its own.
    let mut moved_href = None;
    if let Some(next) = b.rescheduled_to_uid {
        if let Ok(Some(n)) = state.store.get_booking(b.org_id, next).await {
            let u = self_service_urls("", state.page_key.bytes(), n.uid, n.org_id, n.end);
            let t = u.view.split("?t=").nth(1).unwrap_or("").to_string();
            moved_href = Some(prefs.href(&booking_path(n.uid, ""), &[("t", t)]));
        }
    }
    let (heading, note) = if b.status == "cancelled" && moved_href.is_some() {
        (prefs.t("rescheduled-title"), None)
    } else if b.status != "accepted" {
        (prefs.t("cancelled-title"), b.cancellation_reason.clone())
    } else if b.end <= Timestamp::now() {
        (prefs.t("booking-title"), Some(prefs.t("past")))
    } else if prefs.get("new") == Some("1") {
        (prefs.t("booked-title"), None)
    } else {
        (prefs.t("booking-title"), None)
    };
    let ctx = json!({
        "heading": heading,
        "note": note,
        "title": b.title,
        "when": view::long_moment(prefs.lang, b.start, &tz, prefs.hour12),
        "tz": tz_name,
        "host": b.host_name,
        "attendee": b.attendee["name"].as_str().unwrap_or(""),
        "active": active(b),
        "moved_href": moved_href,
        "ics_href": with_t(&booking_path(b.uid, "/ics")),
        "reschedule_href": with_t(&booking_path(b.uid, "/reschedule")),
        "cancel_href": with_t(&booking_path(b.uid, "/cancel")),
    });
    let frame = prefs.frame(brand::effective(&o.chain), &path, &[("t", o.token.clone())]);
    page(StatusCode::OK, "booking.html", &frame, ctx)
}

/// `GET /booking/{uid}/ics?t=`: the calendar file.
pub async fn ics(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let (prefs, o) = match open_get(&state, q.as_deref(), &headers, &ip, &uid).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let cal = match state
        .store
        .calendar_of_booking(o.booking.org_id, o.booking.uid)
        .await
    {
        Ok(Some((cal, _))) => cal,
        Ok(None) => return invalid_link(&prefs),
        Err(e) => return internal(&prefs, "reading a calendar", e),
    };
    let mut res = (StatusCode::OK, crate::service::calendar::render(&cal)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::service::calendar::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.ics\"", cal.ical_uid))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn no_longer_active(prefs: &Prefs, o: &Opened) -> Response {
    let back = prefs.href(&booking_path(o.booking.uid, ""), &[("t", o.token.clone())]);
    message(
        StatusCode::CONFLICT,
        prefs,
        brand::effective(&o.chain),
        &prefs.t("no-longer-active"),
        &[],
        Some((back, prefs.t("back"))),
    )
}

fn cancel_page(
    state: &AppState,
    prefs: &Prefs,
    o: &Opened,
    reason: &str,
    error: Option<String>,
) -> Response {
    let b = &o.booking;
    let (tz_name, tz) = zone(prefs, b);
    let action = booking_path(b.uid, "/cancel");
    let mut hidden = prefs.hidden();
    hidden.push(Field {
        name: "t".into(),
        value: o.token.clone(),
    });
    hidden.push(Field {
        name: "tz".into(),
        value: tz_name.clone(),
    });
    let now = Timestamp::now().as_second();
    let ctx = json!({
        "title": b.title,
        "when": view::long_moment(prefs.lang, b.start, &tz, prefs.hour12),
        "tz": tz_name,
        "action": action,
        "csrf": token::sign_form(state.page_key.bytes(), &action, now + token::FORM_TTL_SECS),
        "hidden": hidden,
        "reason": reason,
        "error": error,
        "back_href": prefs.href(&booking_path(b.uid, ""), &[("t", o.token.clone())]),
    });
    let frame = prefs.frame(
        brand::effective(&o.chain),
        &action,
        &[("t", o.token.clone())],
    );
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    page(status, "cancel.html", &frame, ctx)
}

/// `GET /booking/{uid}/cancel?t=`: the cancel form.
pub async fn cancel_form(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let (prefs, o) = match open_get(&state, q.as_deref(), &headers, &ip, &uid).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    if !active(&o.booking) {
        return no_longer_active(&prefs, &o);
    }
    cancel_page(&state, &prefs, &o, "", None)
}

/// A posted form's fields and preferences, after the rate limit and size checks.
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    ip: &ClientIp,
    body: &Bytes,
) -> Result<Prefs, Response> {
    let prefs = Prefs::new(pairs(&String::from_utf8_lossy(body)), headers);
    rate_limit(state, Class::Bookings, ip, &prefs).await?;
    if body.len() > super::request::MAX_FORM_BYTES {
        return Err(message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &prefs,
            brand::effective(&[]),
            &prefs.t("error-title"),
            &[prefs.t("too-large")],
            None,
        ));
    }
    Ok(prefs)
}

/// Is the form's CSRF token valid for `action`, and did it come from this origin?
fn form_ok(state: &AppState, headers: &HeaderMap, prefs: &Prefs, action: &str) -> bool {
    let now = Timestamp::now().as_second();
    same_origin(headers)
        && token::verify_form(
            state.page_key.bytes(),
            action,
            prefs.get("csrf").unwrap_or(""),
            now,
        )
        .is_ok()
}

/// `POST /booking/{uid}/cancel`: cancel, with an optional reason.
pub async fn cancel(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let prefs = match posted(&state, &headers, &ip, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let o = match open(&state, &prefs, &uid).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let reason: String = prefs
        .get("reason")
        .unwrap_or("")
        .chars()
        .take(MAX_REASON)
        .collect();
    let action = booking_path(o.booking.uid, "/cancel");
    if !form_ok(&state, &headers, &prefs, &action) {
        return cancel_page(&state, &prefs, &o, &reason, Some(prefs.t("form-expired")));
    }
    if !active(&o.booking) {
        return no_longer_active(&prefs, &o);
    }
    let reason = (!reason.is_empty()).then_some(reason.as_str());
    match state
        .store
        .cancel_booking(o.booking.org_id, o.booking.uid, reason)
        .await
    {
        Ok(Some(_)) => {
            let back = prefs.href(&booking_path(o.booking.uid, ""), &[("t", o.token.clone())]);
            message(
                StatusCode::OK,
                &prefs,
                brand::effective(&o.chain),
                &prefs.t("cancelled-title"),
                &[prefs.t("cancel-done")],
                Some((back, prefs.t("back"))),
            )
        }
        Ok(None) => invalid_link(&prefs),
        Err(StoreError::NotActive(_)) => no_longer_active(&prefs, &o),
        Err(e) => internal(&prefs, "cancelling", e),
    }
}

async fn reschedule_booker(
    state: &AppState,
    prefs: &Prefs,
    o: &Opened,
    chosen: Option<i64>,
    taken: Option<i64>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let b = &o.booking;
    let et = match state.store.get_event_type(b.org_id, b.event_type_id).await {
        Ok(Some(e)) => e,
        Ok(None) => return no_longer_active(prefs, o),
        Err(e) => return internal(prefs, "reading an event type", e),
    };
    let path = booking_path(b.uid, "/reschedule");
    render_booker(
        state,
        Booker {
            prefs,
            chain: &o.chain,
            event_type: &et,
            host_name: &b.host_name,
            host_tz: &b.host_time_zone,
            self_path: path.clone(),
            action: path,
            keep: vec![("t", o.token.clone())],
            rescheduling: Some(b.start),
            chosen,
            form: FormState {
                error,
                ..FormState::default()
            },
            taken,
            status,
        },
    )
    .await
}

/// `GET /booking/{uid}/reschedule?t=`: the booker for a new time.
pub async fn reschedule_page(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let (mut prefs, o) = match open_get(&state, q.as_deref(), &headers, &ip, &uid).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    if !active(&o.booking) {
        return no_longer_active(&prefs, &o);
    }
    if prefs.tz.is_none() {
        // Without a choice, the zone the invitee booked in.
        let (n, z) = zone(&prefs, &o.booking);
        prefs.tz = Some((n, z));
    }
    let chosen = prefs
        .get("slot")
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.as_second());
    reschedule_booker(&state, &prefs, &o, chosen, None, None, StatusCode::OK).await
}

/// `POST /booking/{uid}/reschedule`: move the booking to the chosen start (atomically; when
/// the new time was taken nothing changes and the nearest free times are offered).
pub async fn reschedule(
    State(state): State<AppState>,
    Path(uid): Path<String>,
    headers: HeaderMap,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let prefs = match posted(&state, &headers, &ip, &body).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let o = match open(&state, &prefs, &uid).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(start) = prefs.get("start").and_then(|s| s.parse::<Timestamp>().ok()) else {
        return reschedule_booker(
            &state,
            &prefs,
            &o,
            None,
            None,
            None,
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let action = booking_path(o.booking.uid, "/reschedule");
    if !form_ok(&state, &headers, &prefs, &action) {
        let e = Some(prefs.t("form-expired"));
        return reschedule_booker(
            &state,
            &prefs,
            &o,
            Some(start.as_second()),
            None,
            e,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    if !active(&o.booking) {
        return no_longer_active(&prefs, &o);
    }
    let moved = crate::service::api::bookings::move_booking(
        &state,
        o.booking.org_id,
        o.booking.uid,
        start,
        None,
        None,
    )
    .await;
    match moved {
        Ok(n) => {
            let u = self_service_urls("", state.page_key.bytes(), n.uid, n.org_id, n.end);
            let t = u.view.split("?t=").nth(1).unwrap_or("").to_string();
            see_other(&prefs.href(&booking_path(n.uid, ""), &[("t", t), ("new", "1".into())]))
        }
        Err(e) if matches!(e.code, "booking_conflict" | "slot_unavailable") => {
            reschedule_booker(
                &state,
                &prefs,
                &o,
                None,
                Some(start.as_second()),
                None,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) if e.code == "booking_not_active" => no_longer_active(&prefs, &o),
        Err(e) if e.status.is_client_error() => {
            tracing::info!(code = e.code, error = %e.message, "booking page: reschedule refused");
            reschedule_booker(
                &state,
                &prefs,
                &o,
                Some(start.as_second()),
                None,
                Some(prefs.t("error-body")),
                e.status,
            )
            .await
        }
        Err(e) => internal(&prefs, "rescheduling", e.message),
    }
}
