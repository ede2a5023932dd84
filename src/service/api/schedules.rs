//! /v2/schedules: a host's time zone, weekly availability and date overrides.

use super::error::{success, ApiError, ApiResult, Json, Path};
use crate::service::domain::hours::{self, AvailabilityInput, OverrideInput};
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::{NewSchedule, Schedule, SchedulePatch};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn schedule_json(s: &Schedule) -> Value {
    json!({
        "id": s.id,
        "ownerId": s.user_id,
        "name": s.name,
        "timeZone": s.time_zone,
        "availability": s.availability,
        "isDefault": s.is_default,
        "overrides": s.overrides,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateSchedule {
    /// The host (a user of the key's organization) the schedule belongs to.
    user_id: i64,
    name: String,
    time_zone: String,
    #[serde(default)]
    is_default: bool,
    #[serde(default)]
    availability: Option<Vec<AvailabilityInput>>,
    #[serde(default)]
    overrides: Vec<OverrideInput>,
}

/// Cal.com's default when no availability is given: Monday to Friday, 09:00 to 17:00.
fn default_availability() -> Vec<AvailabilityInput> {
    vec![AvailabilityInput {
        days: ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
            .iter()
            .map(|d| d.to_string())
            .collect(),
        start_time: "09:00".into(),
        end_time: "17:00".into(),
    }]
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<CreateSchedule>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut errors = Vec::new();
    check_name(&body.name, &mut errors);
    hours::check_time_zone("timeZone", &body.time_zone, &mut errors);
    let availability = body.availability.unwrap_or_else(default_availability);
    hours::weekly_rules(&availability, &mut errors);
    hours::date_overrides(&body.overrides, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if state.store.get_user(org, body.user_id).await?.is_none() {
        return Err(ApiError::validation(vec![FieldError::new(
            "userId",
            format!("no user {} in this organization", body.user_id),
        )]));
    }
    let s = state
        .store
        .create_schedule(&NewSchedule {
            org_id: org,
            user_id: body.user_id,
            name: body.name.trim().to_string(),
            time_zone: body.time_zone,
            is_default: body.is_default,
            availability: serde_json::to_value(&availability).unwrap_or_default(),
            overrides: serde_json::to_value(&body.overrides).unwrap_or_default(),
        })
        .await?;
    Ok(success(StatusCode::CREATED, schedule_json(&s)))
}

pub async fn list(State(state): State<AppState>, who: Principal) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let all = state.store.list_schedules(org).await?;
    Ok(success(
        StatusCode::OK,
        Value::Array(all.iter().map(schedule_json).collect()),
    ))
}

pub async fn get(State(state): State<AppState>, who: Principal, Path(id): Path<i64>) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let s = state
        .store
        .get_schedule(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {id}")))?;
    Ok(success(StatusCode::OK, schedule_json(&s)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchSchedule {
    name: Option<String>,
    time_zone: Option<String>,
    is_default: Option<bool>,
    availability: Option<Vec<AvailabilityInput>>,
    overrides: Option<Vec<OverrideInput>>,
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Json(body): Json<PatchSchedule>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut errors = Vec::new();
    if let Some(n) = &body.name {
        check_name(n, &mut errors);
    }
    if let Some(tz) = &body.time_zone {
        hours::check_time_zone("timeZone", tz, &mut errors);
    }
    if let Some(a) = &body.availability {
        hours::weekly_rules(a, &mut errors);
    }
    if let Some(o) = &body.overrides {
        hours::date_overrides(o, &mut errors);
    }
    if body.is_default == Some(false) {
        errors.push(FieldError::new(
            "isDefault",
            "a default schedule is replaced by marking another one default",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let p = SchedulePatch {
        name: body.name.map(|n| n.trim().to_string()),
        time_zone: body.time_zone,
        availability: body
            .availability
            .map(|a| serde_json::to_value(a).unwrap_or_default()),
        overrides: body
            .overrides
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
        is_default: body.is_default,
    };
    let s = state
        .store
        .update_schedule(org, id, &p)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("schedule {id}")))?;
    Ok(success(StatusCode::OK, schedule_json(&s)))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    if !state.store.delete_schedule(org, id).await? {
        return Err(ApiError::not_found(&format!("schedule {id}")));
    }
    Ok(success(StatusCode::OK, json!({ "id": id })))
}
