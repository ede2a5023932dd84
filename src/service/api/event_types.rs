//! /v2/event-types: what can be booked with a host, for how long, and under which rules. The
//! request and response shapes of each `cal-api-version` are `versions::event_types`'.

use super::error::{success, ApiError, ApiResult, Path, Query};
use super::input::{self, reply, JsonBody, Params};
use super::versions::event_types::{EventTypeFields, EventTypes};
use super::versions::Versioned;
use crate::service::domain::hours;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::{EventType, NewEventType, User};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;

fn minutes(field: &str, v: i64, lo: i64, hi: i64, errors: &mut Vec<FieldError>) -> i32 {
    if v < lo || v > hi {
        errors.push(FieldError::new(
            field,
            format!("must be {lo} to {hi} minutes"),
        ));
    }
    v.clamp(lo, hi) as i32
}

/// `f` over `cur` (a change) or alone (a create, `cur` `None`), checked as a whole (every
/// problem at once) and turned into a row to write.
async fn check(
    state: &AppState,
    org: i64,
    user_id: i64,
    cur: Option<&EventType>,
    f: EventTypeFields,
) -> Result<NewEventType, ApiError> {
    let mut errors = Vec::new();
    let title = f
        .title
        .or_else(|| cur.map(|c| c.title.clone()))
        .unwrap_or_default();
    if title.trim().is_empty() || title.len() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    let slug = f
        .slug
        .or_else(|| cur.map(|c| c.slug.clone()))
        .unwrap_or_default();
    if slug.is_empty()
        || slug.len() > 100
        || !slug
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errors.push(FieldError::new(
            "slug",
            "use lowercase letters, digits and dashes",
        ));
    }
    let length = f
        .length
        .or_else(|| cur.map(|c| i64::from(c.length_minutes)))
        .unwrap_or(0);
    let length = minutes("lengthInMinutes", length, 1, 1440, &mut errors);
    let options = f.length_options.unwrap_or_else(|| {
        cur.and_then(|c| {
            c.length_options
                .as_ref()
                .map(|o| o.iter().map(|&l| i64::from(l)).collect())
        })
    });
    let options = options.map(|o| {
        o.iter()
            .map(|&l| minutes("lengthInMinutesOptions", l, 1, 1440, &mut errors))
            .collect::<Vec<i32>>()
    });
    if let Some(o) = &options {
        if !o.contains(&length) {
            errors.push(FieldError::new(
                "lengthInMinutesOptions",
                "must include the event type's length",
            ));
        }
    }
    let interval = f
        .slot_interval
        .unwrap_or_else(|| cur.and_then(|c| c.slot_interval.map(i64::from)))
        .map(|v| minutes("slotInterval", v, 1, 1440, &mut errors));
    let keep = |v: Option<i64>, old: Option<i32>| v.or(old.map(i64::from)).unwrap_or(0);
    let notice = minutes(
        "minimumBookingNotice",
        keep(
            f.minimum_booking_notice,
            cur.map(|c| c.minimum_booking_notice),
        ),
        0,
        525_600,
        &mut errors,
    );
    let before = minutes(
        "beforeEventBuffer",
        keep(f.before_event_buffer, cur.map(|c| c.before_event_buffer)),
        0,
        1440,
        &mut errors,
    );
    let after = minutes(
        "afterEventBuffer",
        keep(f.after_event_buffer, cur.map(|c| c.after_event_buffer)),
        0,
        1440,
        &mut errors,
    );
    let offset = minutes(
        "offsetStart",
        keep(f.offset_start, cur.map(|c| c.offset_start)),
        0,
        1440,
        &mut errors,
    );
    let window = f
        .booking_window
        .unwrap_or_else(|| cur.and_then(|c| c.booking_window.clone()));
    if let Some(w) = &window {
        hours::booking_window(w, &mut errors);
    }
    let per_day = f
        .per_day_limit
        .unwrap_or_else(|| cur.and_then(|c| c.per_day_limit.map(i64::from)))
        .map(|n| n.clamp(1, 1000) as i32);
    let schedule_id = f
        .schedule_id
        .unwrap_or_else(|| cur.and_then(|c| c.schedule_id));
    let mail_enabled = f
        .send_emails
        .or_else(|| cur.map(|c| c.mail_enabled))
        .unwrap_or(true);
    let mail_reminders = match f.email_reminders {
        Some(given) => reminders(&given, &mut errors),
        None => cur.map(|c| c.mail_reminders.clone()).unwrap_or_default(),
    };
    input::check(std::mem::take(&mut errors))?;
    if state.store.get_user(org, user_id).await?.is_none() {
        errors.push(FieldError::new(
            "userId",
            format!("no user {user_id} in this organization"),
        ));
    }
    if let Some(sid) = schedule_id {
        match state.store.get_schedule(org, sid).await? {
            Some(s) if s.user_id == user_id => {}
            Some(_) => errors.push(FieldError::new(
                "scheduleId",
                "the schedule belongs to another host",
            )),
            None => errors.push(FieldError::new(
                "scheduleId",
                format!("no schedule {sid} in this organization"),
            )),
        }
    }
    input::check(errors)?;
    Ok(NewEventType {
        org_id: org,
        user_id,
        schedule_id,
        title: title.trim().to_string(),
        slug,
        description: f
            .description
            .unwrap_or_else(|| cur.and_then(|c| c.description.clone())),
        length_minutes: length,
        slot_interval: interval,
        minimum_booking_notice: notice,
        before_event_buffer: before,
        after_event_buffer: after,
        booking_window: window,
        per_day_limit: per_day,
        offset_start: offset,
        length_options: options,
        locations: f
            .locations
            .or_else(|| cur.map(|c| c.locations.clone()))
            .unwrap_or_else(|| json!([])),
        disable_guests: f
            .disable_guests
            .or_else(|| cur.map(|c| c.disable_guests))
            .unwrap_or(false),
        mail_enabled,
        mail_reminders,
    })
}

/// `emailRemindersMinutesBefore`: each 1 to 43200 minutes (30 days), at most 5, duplicates
/// dropped.
fn reminders(given: &[i64], errors: &mut Vec<FieldError>) -> Vec<i32> {
    let mut out: Vec<i32> = Vec::new();
    for (i, m) in given.iter().enumerate() {
        if !(1..=43_200).contains(m) {
            errors.push(FieldError::new(
                format!("emailRemindersMinutesBefore[{i}]"),
                "must be 1 to 43200 minutes (30 days) before the start",
            ));
        } else if !out.contains(&(*m as i32)) {
            out.push(*m as i32);
        }
    }
    if out.len() > 5 {
        errors.push(FieldError::new(
            "emailRemindersMinutesBefore",
            "at most 5 reminders",
        ));
    }
    out
}

/// An event type the key may see (of its organization; of its user for a user's key).
async fn visible(state: &AppState, who: &Principal, id: i64) -> Result<EventType, ApiError> {
    state
        .store
        .get_event_type(who.org()?, id)
        .await?
        .filter(|e| who.sees_user(e.user_id))
        .ok_or_else(|| ApiError::not_found(&format!("event type {id}")))
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<EventTypes>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut warnings = Vec::new();
    let f = api.fields(body.value, false, &mut warnings)?;
    let user_id = who.acting_user(f.user_id)?.ok_or_else(|| {
        ApiError::validation(vec![FieldError::new(
            "userId",
            "required with an organization's API key: the host of the event type",
        )])
    })?;
    let new = check(&state, org, user_id, None, f).await?;
    let e = state.store.create_event_type(&new).await?;
    let host = state.store.get_user(org, e.user_id).await?;
    Ok(reply(
        StatusCode::CREATED,
        api.event_type(&e, host.as_ref()),
        &warnings,
    ))
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<EventTypes>,
    Path(id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut warnings = Vec::new();
    let f = api.fields(body.value, true, &mut warnings)?;
    let cur = visible(&state, &who, id).await?;
    if f.user_id.is_some_and(|u| u != cur.user_id) {
        return Err(ApiError::validation(vec![FieldError::new(
            "userId",
            "an event type keeps its host; create one for the other host",
        )]));
    }
    let new = check(&state, org, cur.user_id, Some(&cur), f).await?;
    let e = state
        .store
        .update_event_type(id, &new)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("event type {id}")))?;
    let host = state.store.get_user(org, e.user_id).await?;
    Ok(reply(
        StatusCode::OK,
        api.event_type(&e, host.as_ref()),
        &warnings,
    ))
}

/// The query of `GET /v2/event-types` (Cal.com 2024-06-14: by `username` and `eventSlug`,
/// or `usernames`, within `orgSlug`/`orgId`).
const LIST_QUERY: &[&str] = &["username", "eventSlug", "usernames", "orgSlug", "orgId"];

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<EventTypes>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let q = Params::new(
        params,
        LIST_QUERY,
        &super::versions::fields_of(api.family()),
    )?;
    let users = state.store.list_users(org).await?;
    let mut errors = Vec::new();
    let orgs = state.store.get_org(org).await?;
    let other_org = q.get("orgSlug").is_some_and(|s| {
        orgs.as_ref()
            .is_none_or(|o| !o.slug.eq_ignore_ascii_case(s))
    }) || q
        .int("orgId", 1, i64::MAX, &mut errors)
        .is_some_and(|i| i != org);
    input::check(errors)?;
    let mut names: Vec<&str> = q.list("usernames");
    names.extend(q.get("username"));
    let all: Vec<EventType> = if other_org {
        Vec::new()
    } else {
        state
            .store
            .list_event_types(org)
            .await?
            .into_iter()
            .filter(|e| who.sees_user(e.user_id))
            .filter(|e| {
                names.is_empty()
                    || users.iter().any(|u| {
                        u.id == e.user_id
                            && names.iter().any(|n| n.eq_ignore_ascii_case(&u.username))
                    })
            })
            .filter(|e| q.get("eventSlug").is_none_or(|s| e.slug == s))
            .collect()
    };
    Ok(success(StatusCode::OK, api.list(&all, &users)))
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<EventTypes>,
    Path(id): Path<i64>,
) -> ApiResult {
    who.require("read")?;
    let e = visible(&state, &who, id).await?;
    let host: Option<User> = state.store.get_user(who.org()?, e.user_id).await?;
    Ok(success(StatusCode::OK, api.one(&e, host.as_ref())))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<EventTypes>,
    Path(id): Path<i64>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let e = visible(&state, &who, id).await?;
    if !state.store.delete_event_type(org, id).await? {
        return Err(ApiError::not_found(&format!("event type {id}")));
    }
    Ok(success(StatusCode::OK, api.deleted(&e)))
}
