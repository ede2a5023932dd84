//! GET /v2/slots (and Cal.com's older GET /v2/slots/available): bookable start times, grouped
//! by date in the requested time zone. The query and answer shapes of each `cal-api-version`
//! are `versions::slots`'.

use super::error::{ApiError, ApiResult, Query};
use super::versions::bookings::EventTypeRef;
use super::versions::slots::Slots;
use super::versions::Versioned;
use crate::service::domain::hours;
use crate::service::domain::slots::{self, Busy, Rules};
use crate::service::principal::Principal;
use crate::service::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::Timestamp;

pub(super) fn event_type_not_found(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "event_type_not_found",
        format!("event type {id} not found"),
    )
}

/// The event type a request names, in the key's organization: by id, or by the slug of one
/// of its users' event types (Cal.com's `eventTypeSlug` + `username` + `organizationSlug`).
pub(super) async fn event_type_id(
    state: &AppState,
    org: i64,
    r: &EventTypeRef,
) -> Result<i64, ApiError> {
    match r {
        EventTypeRef::Id(id) => Ok(*id),
        EventTypeRef::Slug {
            slug,
            username,
            organization,
        } => {
            if let Some(o) = organization {
                let own = state.store.get_org(org).await?;
                if own.is_none_or(|own| !own.slug.eq_ignore_ascii_case(o)) {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "organization_not_found",
                        format!("organization {o:?} not found (this API key works in its own organization)"),
                    ));
                }
            }
            let user = state
                .store
                .find_user_by_username(org, username)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "user_not_found",
                        format!("no user {username:?} in this organization"),
                    )
                })?;
            let et = state
                .store
                .find_event_type_by_slug(org, user.id, slug)
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "event_type_not_found",
                        format!("user {username:?} has no event type {slug:?}"),
                    )
                })?;
            Ok(et.id)
        }
    }
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Slots>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let mut warnings = Vec::new();
    let q = api.query(params, &mut warnings)?;
    let event_type_id = event_type_id(&state, org, &q.event_type).await?;
    let (found, length) = find(&state, org, event_type_id, q.start, q.end, q.duration)
        .await?
        .ok_or_else(|| event_type_not_found(event_type_id))?;
    let body = api.render(&found, &q, length, &warnings);
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The starts (Unix seconds) of an event type's free slots in `[start, end)` and the length in
/// minutes they are for (`duration`, or the event type's): what `GET /v2/slots` and the
/// booking pages show, from one engine and one cache. `None` when the organization has no such
/// event type.
pub async fn find(
    state: &AppState,
    org: i64,
    event_type_id: i64,
    start: i64,
    end: i64,
    duration: Option<i64>,
) -> Result<Option<(Vec<i64>, i64)>, ApiError> {
    // Busy time that can touch the range (buffers are at most a day each), and the whole local
    // dates at both ends for the per-day limit.
    let margin = 3 * 86_400;
    let from = Timestamp::from_second(start - margin).unwrap_or(Timestamp::UNIX_EPOCH);
    let to = Timestamp::from_second(end + margin).unwrap_or(Timestamp::MAX);
    let Some(mut ctx) = state
        .store
        .slot_context(org, event_type_id, from, to)
        .await?
    else {
        return Ok(None);
    };
    let busy_from = Timestamp::now() - jiff::SignedDuration::from_secs(margin);
    if rolls(&ctx.event_type) && busy_from < from {
        // A rolling window counts bookable dates from today: busy time from now on counts.
        match state
            .store
            .slot_context(org, event_type_id, busy_from, to)
            .await?
        {
            Some(c) => ctx = c,
            None => return Ok(None),
        }
    }
    let length = duration.unwrap_or(i64::from(ctx.event_type.length_minutes));
    if ctx.schedule.is_none() {
        return Ok(Some((Vec::new(), length)));
    }
    let (avail, rules, busy) = prepare(&ctx, length)?;
    let query = slots::Query {
        start,
        end,
        now: Timestamp::now().as_second(),
    };
    Ok(Some((
        slots::compute(&avail, &rules, &busy, &query),
        length,
    )))
}

/// Does the event type have a rolling booking window (whose slots depend on the busy time
/// from today on, not just the query's)?
pub fn rolls(et: &crate::service::store::EventType) -> bool {
    et.booking_window.as_ref().is_some_and(|w| {
        matches!(
            hours::booking_window(w, &mut Vec::new()),
            Some(slots::BookingWindow::Rolling { .. })
        )
    })
}

/// The host's hours, the event type's rules and the busy time of a slot context, ready for
/// [`slots::compute`]. The context must have a schedule.
pub fn prepare(
    ctx: &crate::service::store::SlotContext,
    length: i64,
) -> Result<(slots::Availability, Rules, Vec<Busy>), ApiError> {
    let et = &ctx.event_type;
    let s = ctx.schedule.as_ref().ok_or_else(ApiError::internal)?;
    let avail =
        hours::stored_availability(&s.time_zone, &s.availability, &s.overrides).map_err(|e| {
            tracing::error!(event_type = et.id, error = %e, "stored schedule is unreadable");
            ApiError::internal()
        })?;
    let mut errors = Vec::new();
    let window = et
        .booking_window
        .as_ref()
        .and_then(|w| hours::booking_window(w, &mut errors));
    let rules = Rules {
        length,
        slot_interval: et.slot_interval.map(i64::from),
        minimum_notice: i64::from(et.minimum_booking_notice),
        before_buffer: i64::from(et.before_event_buffer),
        after_buffer: i64::from(et.after_event_buffer),
        window,
        per_day_limit: et.per_day_limit.and_then(|n| u32::try_from(n).ok()),
        offset_start: i64::from(et.offset_start),
    };
    let busy = ctx
        .busy
        .iter()
        .map(|b| Busy {
            start: b.start.as_second(),
            end: b.end.as_second(),
            before_buffer: i64::from(b.before_buffer),
            after_buffer: i64::from(b.after_buffer),
            same_event_type: b.same_event_type,
        })
        .collect();
    Ok((avail, rules, busy))
}
