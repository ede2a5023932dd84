//! /v2/schedules: a host's time zone, weekly availability and date overrides. The request and
//! response shapes of each `cal-api-version` are `versions::schedules`'.

use super::error::{success, ApiError, ApiResult, Path};
use super::input::{self, reply, JsonBody};
use super::versions::schedules::{default_availability, Schedules};
use super::versions::Versioned;
use crate::service::domain::hours;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::{NewSchedule, Schedule, SchedulePatch};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
}

/// A schedule the key may see (of its organization; of its user for a user's key).
async fn visible(state: &AppState, who: &Principal, id: i64) -> Result<Schedule, ApiError> {
    state
        .store
        .get_schedule(who.org()?, id)
        .await?
        .filter(|s| who.sees_user(s.user_id))
        .ok_or_else(|| ApiError::not_found(&format!("schedule {id}")))
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Schedules>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut warnings = Vec::new();
    let f = api.fields(body.value, false, &mut warnings)?;
    let user_id = who.acting_user(f.user_id)?;
    let mut errors = Vec::new();
    if user_id.is_none() {
        errors.push(FieldError::new(
            "userId",
            "required with an organization's API key: the host the schedule belongs to",
        ));
    }
    let name = f.name.unwrap_or_default();
    let time_zone = f.time_zone.unwrap_or_default();
    check_name(&name, &mut errors);
    hours::check_time_zone("timeZone", &time_zone, &mut errors);
    let availability = f.availability.unwrap_or_else(default_availability);
    let overrides = f.overrides.unwrap_or_default();
    hours::weekly_rules(&availability, &mut errors);
    hours::date_overrides(&overrides, &mut errors);
    input::check(errors)?;
    let user_id = user_id.ok_or_else(ApiError::internal)?;
    if state.store.get_user(org, user_id).await?.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "userId",
            format!("no user {user_id} in this organization"),
        )]));
    }
    let s = state
        .store
        .create_schedule(&NewSchedule {
            org_id: org,
            user_id,
            name: name.trim().to_string(),
            time_zone,
            is_default: f.is_default.unwrap_or(false),
            availability: serde_json::to_value(&availability).unwrap_or_default(),
            overrides: serde_json::to_value(&overrides).unwrap_or_default(),
        })
        .await?;
    Ok(reply(StatusCode::CREATED, api.schedule(&s), &warnings))
}

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Schedules>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let all = state.store.list_schedules(org).await?;
    Ok(success(
        StatusCode::OK,
        Value::Array(
            all.iter()
                .filter(|s| who.sees_user(s.user_id))
                .map(|s| api.schedule(s))
                .collect(),
        ),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Schedules>,
    Path(id): Path<i64>,
) -> ApiResult {
    who.require("read")?;
    let s = visible(&state, &who, id).await?;
    Ok(success(StatusCode::OK, api.schedule(&s)))
}

/// `GET /v2/schedules/default`: the default schedule of the key's user (`data` is null when
/// the user has none, as in Cal.com). An organization's key has no user to ask about.
pub async fn get_default(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Schedules>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let user = who.user().ok_or_else(user_key_required)?;
    let s = state.store.default_schedule(org, user).await?;
    Ok(success(
        StatusCode::OK,
        s.map_or(Value::Null, |s| api.schedule(&s)),
    ))
}

/// 403 for an endpoint about "the key's user" called with an organization's key.
pub(super) fn user_key_required() -> ApiError {
    ApiError::forbidden(
        "user_key_required",
        "this API key belongs to an organization, not a user: create a user's key (POST /v2/organizations/{orgId}/api-keys with userId)",
    )
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Versioned(api): Versioned<Schedules>,
    Path(id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut warnings = Vec::new();
    let f = api.fields(body.value, true, &mut warnings)?;
    let cur = visible(&state, &who, id).await?;
    let mut errors = Vec::new();
    if let Some(n) = &f.name {
        check_name(n, &mut errors);
    }
    if let Some(tz) = &f.time_zone {
        hours::check_time_zone("timeZone", tz, &mut errors);
    }
    if let Some(a) = &f.availability {
        hours::weekly_rules(a, &mut errors);
    }
    if let Some(o) = &f.overrides {
        hours::date_overrides(o, &mut errors);
    }
    if f.is_default == Some(false) && cur.is_default {
        errors.push(FieldError::new(
            "isDefault",
            "a default schedule is replaced by marking another one default",
        ));
    }
    if f.user_id.is_some_and(|u| u != cur.user_id) {
        errors.push(FieldError::new("userId", "a schedule keeps its host"));
    }
    input::check(errors)?;
    let previous = state.store.default_schedule(org, cur.user_id).await?;
    let p = SchedulePatch {
        name: f.name.map(|n| n.trim().to_string()),
        time_zone: f.time_zone,
        availability: f
            .availability
            .map(|a| serde_json::to_value(a).unwrap_or_default()),
        overrides: f
            .overrides
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        is_default: f.is_default.filter(|d| *d),
    };
    let s = state
        .store
        .update_schedule(org, id, &p)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {id}")))?;
    Ok(reply(
        StatusCode::OK,
        api.updated(&s, previous.map(|p| p.id)),
        &warnings,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    visible(&state, &who, id).await?;
    if !state.store.delete_schedule(org, id).await? {
        return Err(ApiError::not_found(&format!("schedule {id}")));
    }
    Ok(success(StatusCode::OK, json!({ "id": id })))
}
