//! /v2/event-types: what can be booked with a host, for how long, and under which rules.

use super::error::{success, ApiError, ApiResult, Json, Path};
use crate::service::domain::hours;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::{EventType, NewEventType};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn event_type_json(e: &EventType) -> Value {
    json!({
        "id": e.id,
        "title": e.title,
        "slug": e.slug,
        "description": e.description,
        "lengthInMinutes": e.length_minutes,
        "slotInterval": e.slot_interval,
        "minimumBookingNotice": e.minimum_booking_notice,
        "beforeEventBuffer": e.before_event_buffer,
        "afterEventBuffer": e.after_event_buffer,
        "bookingWindow": e.booking_window,
        "bookingLimitsCount": e.per_day_limit.map(|d| json!({ "day": d })),
        "ownerId": e.user_id,
        "scheduleId": e.schedule_id,
        "sendEmails": e.mail_enabled,
        "emailRemindersMinutesBefore": e.mail_reminders,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateEventType {
    /// The host (a user of the key's organization).
    user_id: i64,
    title: String,
    slug: String,
    description: Option<String>,
    length_in_minutes: i64,
    slot_interval: Option<i64>,
    #[serde(default)]
    minimum_booking_notice: i64,
    #[serde(default)]
    before_event_buffer: i64,
    #[serde(default)]
    after_event_buffer: i64,
    /// The host's schedule to use; the host's default schedule when absent.
    schedule_id: Option<i64>,
    booking_window: Option<Value>,
    /// `{"day": N}`: at most N bookings of this type per day (host's local date).
    booking_limits_count: Option<Value>,
    /// `false`: bookings of this type send no e-mail (default true).
    send_emails: Option<bool>,
    /// Reminders, in minutes before the start (e.g. `[1440, 60]`); none by default.
    email_reminders_minutes_before: Option<Vec<i64>>,
}

fn minutes(field: &str, v: i64, lo: i64, hi: i64, errors: &mut Vec<FieldError>) -> i32 {
    if v < lo || v > hi {
        errors.push(FieldError::new(
            field,
            format!("must be {lo} to {hi} minutes"),
        ));
    }
    v.clamp(lo, hi) as i32
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(b): Json<CreateEventType>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let new = check(&state, org, b).await?;
    let e = state.store.create_event_type(&new).await?;
    Ok(success(StatusCode::CREATED, event_type_json(&e)))
}

/// Check a whole event type (every problem at once) and turn it into a row to write.
async fn check(state: &AppState, org: i64, b: CreateEventType) -> Result<NewEventType, ApiError> {
    let mut errors = Vec::new();
    if b.title.trim().is_empty() || b.title.len() > 200 {
        errors.push(FieldError::new("title", "must be 1 to 200 characters"));
    }
    if b.slug.is_empty()
        || b.slug.len() > 100
        || !b
            .slug
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        errors.push(FieldError::new(
            "slug",
            "use lowercase letters, digits and dashes",
        ));
    }
    let length = minutes("lengthInMinutes", b.length_in_minutes, 1, 1440, &mut errors);
    let interval = b
        .slot_interval
        .map(|v| minutes("slotInterval", v, 1, 1440, &mut errors));
    let notice = minutes(
        "minimumBookingNotice",
        b.minimum_booking_notice,
        0,
        525_600,
        &mut errors,
    );
    let before = minutes(
        "beforeEventBuffer",
        b.before_event_buffer,
        0,
        1440,
        &mut errors,
    );
    let after = minutes(
        "afterEventBuffer",
        b.after_event_buffer,
        0,
        1440,
        &mut errors,
    );
    if let Some(w) = &b.booking_window {
        hours::booking_window(w, &mut errors);
    }
    let mut per_day = None;
    if let Some(l) = &b.booking_limits_count {
        let obj = l.as_object();
        let unsupported: Vec<&String> = obj
            .map(|o| o.keys().filter(|k| k.as_str() != "day").collect())
            .unwrap_or_default();
        match obj.and_then(|o| o.get("day")).and_then(Value::as_u64) {
            Some(n) if (1..=1000).contains(&n) && unsupported.is_empty() => {
                per_day = Some(n as i32)
            }
            _ if !unsupported.is_empty() => errors.push(FieldError::new(
                "bookingLimitsCount",
                format!("only \"day\" is supported, not {unsupported:?}"),
            )),
            _ => errors.push(FieldError::new(
                "bookingLimitsCount.day",
                "must be a whole number from 1 to 1000",
            )),
        }
    }
    let mut reminders: Vec<i32> = Vec::new();
    for (i, m) in b
        .email_reminders_minutes_before
        .iter()
        .flatten()
        .enumerate()
    {
        if !(1..=43_200).contains(m) {
            errors.push(FieldError::new(
                format!("emailRemindersMinutesBefore[{i}]"),
                "must be 1 to 43200 minutes (30 days) before the start",
            ));
        } else if !reminders.contains(&(*m as i32)) {
            reminders.push(*m as i32);
        }
    }
    if reminders.len() > 5 {
        errors.push(FieldError::new(
            "emailRemindersMinutesBefore",
            "at most 5 reminders",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if state.store.get_user(org, b.user_id).await?.is_none() {
        errors.push(FieldError::new(
            "userId",
            format!("no user {} in this organization", b.user_id),
        ));
    }
    if let Some(sid) = b.schedule_id {
        match state.store.get_schedule(org, sid).await? {
            Some(s) if s.user_id == b.user_id => {}
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
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(NewEventType {
        org_id: org,
        user_id: b.user_id,
        schedule_id: b.schedule_id,
        title: b.title.trim().to_string(),
        slug: b.slug,
        description: b.description,
        length_minutes: length,
        slot_interval: interval,
        minimum_booking_notice: notice,
        before_event_buffer: before,
        after_event_buffer: after,
        booking_window: b.booking_window,
        per_day_limit: per_day,
        mail_enabled: b.send_emails.unwrap_or(true),
        mail_reminders: reminders,
    })
}

/// Fields to change; `null` clears an optional one. The merged result is checked as a whole.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchEventType {
    title: Option<String>,
    slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    length_in_minutes: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    slot_interval: Option<Option<i64>>,
    minimum_booking_notice: Option<i64>,
    before_event_buffer: Option<i64>,
    after_event_buffer: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    schedule_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    booking_window: Option<Option<Value>>,
    #[serde(default, deserialize_with = "nullable")]
    booking_limits_count: Option<Option<Value>>,
    send_emails: Option<bool>,
    email_reminders_minutes_before: Option<Vec<i64>>,
}

/// Tell "absent" (`None`) from "null" (`Some(None)`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?))
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(p): Json<PatchEventType>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let cur = state
        .store
        .get_event_type(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("event type {id}")))?;
    let merged = CreateEventType {
        user_id: cur.user_id,
        title: p.title.unwrap_or(cur.title),
        slug: p.slug.unwrap_or(cur.slug),
        description: p.description.unwrap_or(cur.description),
        length_in_minutes: p.length_in_minutes.unwrap_or(i64::from(cur.length_minutes)),
        slot_interval: p.slot_interval.unwrap_or(cur.slot_interval.map(i64::from)),
        minimum_booking_notice: p
            .minimum_booking_notice
            .unwrap_or(i64::from(cur.minimum_booking_notice)),
        before_event_buffer: p
            .before_event_buffer
            .unwrap_or(i64::from(cur.before_event_buffer)),
        after_event_buffer: p
            .after_event_buffer
            .unwrap_or(i64::from(cur.after_event_buffer)),
        schedule_id: p.schedule_id.unwrap_or(cur.schedule_id),
        booking_window: p.booking_window.unwrap_or(cur.booking_window),
        booking_limits_count: p
            .booking_limits_count
            .unwrap_or(cur.per_day_limit.map(|d| serde_json::json!({ "day": d }))),
        send_emails: Some(p.send_emails.unwrap_or(cur.mail_enabled)),
        email_reminders_minutes_before: Some(
            p.email_reminders_minutes_before
                .unwrap_or_else(|| cur.mail_reminders.iter().map(|m| i64::from(*m)).collect()),
        ),
    };
    let new = check(&state, org, merged).await?;
    let e = state
        .store
        .update_event_type(id, &new)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("event type {id}")))?;
    Ok(success(StatusCode::OK, event_type_json(&e)))
}

pub async fn list(State(state): State<AppState>, who: Principal) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let all = state.store.list_event_types(org).await?;
    Ok(success(
        StatusCode::OK,
        Value::Array(all.iter().map(event_type_json).collect()),
    ))
}

pub async fn get(State(state): State<AppState>, who: Principal, Path(id): Path<i64>) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let e = state
        .store
        .get_event_type(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("event type {id}")))?;
    Ok(success(StatusCode::OK, event_type_json(&e)))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    if !state.store.delete_event_type(org, id).await? {
        return Err(ApiError::not_found(&format!("event type {id}")));
    }
    Ok(success(StatusCode::OK, json!({ "id": id })))
}
