//! Connected calendars (Cal.com API v2's calendar endpoints, for CalDAV): connect an account
//! (`POST /v2/calendars/caldav/credentials`, discovery from the server URL), list what is
//! connected (`GET /v2/calendars`), choose the calendars that count for conflicts
//! (`POST`/`DELETE /v2/selected-calendars`) and the one bookings are written to
//! (`PUT /v2/destination-calendars`), disconnect (`POST /v2/calendars/caldav/disconnect`).
//!
//! API keys belong to an organization, so the host is named by `userId` (Cal.com's endpoints
//! act for the key's own user). The integration is always `caldav`; a calendar's `externalId`
//! is its URL and `credentialId` its connection's id, as in Cal.com. The password is
//! write-only: given directly (`password`) or by reference (`passwordRef`: `env:NAME`, read
//! from the service's environment), and sealed at rest like webhook secrets.

use super::error::{success, ApiError, ApiResult};
use super::input;
use crate::service::caldav::client::Error as DavError;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::calendars::{ConnectedCalendar, Connection, NewCalendar, NewConnection};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

pub const INTEGRATION: &str = "caldav";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/calendars", get(list))
        .route("/v2/calendars/caldav/credentials", post(connect))
        .route("/v2/calendars/caldav/disconnect", post(disconnect))
        .route("/v2/selected-calendars", post(select).delete(unselect))
        .route("/v2/destination-calendars", axum::routing::put(destination))
}

/// How an unknown body field is explained (the field policy of `api::input`).
const BODY_CONTEXT: &str = "not a field of this endpoint (see GET /openapi.json)";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connect {
    pub user_id: i64,
    pub url: String,
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_ref: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalendarRef {
    pub integration: String,
    pub external_id: String,
    #[serde(default)]
    pub credential_id: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Disconnect {
    pub id: i64,
}

fn calendar_json(k: &ConnectedCalendar) -> Value {
    json!({
        "id": k.id,
        "externalId": k.url,
        "name": k.name,
        "integration": INTEGRATION,
        "credentialId": k.connection_id,
        "userId": k.user_id,
        "isSelected": k.selected,
        "isDestination": k.is_destination,
        "readOnly": false,
        "sync": {
            "lastSyncedAt": k.synced_at.map(|t| t.to_string()),
            "failures": k.failures,
            "lastError": k.last_error,
        },
    })
}

fn connection_json(c: &Connection) -> Value {
    json!({
        "credentialId": c.id,
        "userId": c.user_id,
        "integration": {"slug": INTEGRATION, "type": "caldav_calendar", "url": c.server_url},
        "username": c.username,
        "createdAt": c.created_at.to_string(),
        "calendars": c.calendars.iter().map(calendar_json).collect::<Vec<_>>(),
    })
}

/// The password of a connect request: given, or read from the environment by reference.
fn password(req: &Connect, errors: &mut Vec<FieldError>) -> Option<String> {
    match (&req.password, &req.password_ref) {
        (Some(p), None) if !p.is_empty() && p.len() <= 1024 => Some(p.clone()),
        (Some(_), None) => {
            errors.push(FieldError::new("password", "must be 1 to 1024 characters"));
            None
        }
        (None, Some(r)) => match r.trim().strip_prefix("env:").filter(|n| !n.is_empty()) {
            Some(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    errors.push(FieldError::new(
                        "passwordRef",
                        format!("the environment variable {name} of the service is not set"),
                    ));
                    None
                }
            },
            None => {
                errors.push(FieldError::new(
                    "passwordRef",
                    "use env:NAME (an environment variable of the service)",
                ));
                None
            }
        },
        _ => {
            errors.push(FieldError::new(
                "password",
                "give exactly one of password and passwordRef",
            ));
            None
        }
    }
}

fn server_url(s: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match url::Url::parse(s.trim()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                errors.push(FieldError::new(
                    "url",
                    "leave credentials out of the URL; send username and password",
                ));
                return None;
            }
            Some(u.to_string())
        }
        _ => {
            errors.push(FieldError::new(
                "url",
                "must be an http(s) URL of the CalDAV server, e.g. https://caldav.example.com/",
            ));
            None
        }
    }
}

/// The HTTP answer to a calendar server that would not connect.
fn dav_error(e: DavError) -> ApiError {
    match e {
        DavError::Unreachable(m) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "calendar_unreachable",
            format!("the calendar server did not answer: {m}"),
        ),
        DavError::Auth(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "calendar_credentials_refused",
            "the calendar server refused the username or password",
        ),
        other => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "calendar_discovery_failed",
            format!("{other}; check the URL (the server, a principal or a calendar home)"),
        ),
    }
}

pub async fn connect(State(state): State<AppState>, who: Principal, raw: Bytes) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let req: Connect = input::body(&raw, BODY_CONTEXT)?;
    let mut errors = Vec::new();
    let url = server_url(&req.url, &mut errors);
    if req.username.trim().is_empty() || req.username.len() > 256 {
        errors.push(FieldError::new("username", "must be 1 to 256 characters"));
    }
    let pw = password(&req, &mut errors);
    let (Some(url), Some(pw), true) = (url, pw, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    // The host must exist before anything is sent anywhere.
    if state.store.get_user(org, req.user_id).await?.is_none() {
        return Err(ApiError::not_found("user"));
    }
    let acct = crate::service::caldav::client::Account {
        username: req.username.trim().to_string(),
        password: pw.clone(),
    };
    let (home, found) = state
        .caldav
        .client
        .discover(&url, &acct)
        .await
        .map_err(dav_error)?;
    let sealed = state.caldav.seal(org, &pw);
    let cals: Vec<NewCalendar> = found
        .into_iter()
        .map(|c| NewCalendar {
            url: c.url,
            name: c.name,
        })
        .collect();
    let c = state
        .store
        .create_connection(
            org,
            req.user_id,
            NewConnection {
                server_url: &url,
                home_url: &home,
                username: &acct.username,
                password: &sealed,
            },
            &cals,
        )
        .await?;
    Ok(success(StatusCode::CREATED, connection_json(&c)))
}

fn user_filter(q: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    match q.get("userId") {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::validation(vec![FieldError::new("userId", "must be a user id")])
        }),
    }
}

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let conns = state.store.connections(org, user_filter(&q)?).await?;
    let destination = conns
        .iter()
        .flat_map(|c| &c.calendars)
        .filter(|k| k.is_destination)
        .map(calendar_json)
        .collect::<Vec<_>>();
    Ok(success(
        StatusCode::OK,
        json!({
            "connectedCalendars": conns.iter().map(connection_json).collect::<Vec<_>>(),
            "destinationCalendars": destination,
        }),
    ))
}

pub async fn disconnect(State(state): State<AppState>, who: Principal, raw: Bytes) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let req: Disconnect = input::body(&raw, BODY_CONTEXT)?;
    if !state.store.delete_connection(org, req.id).await? {
        return Err(ApiError::not_found("calendar credential"));
    }
    Ok(success(StatusCode::OK, json!({"credentialId": req.id})))
}

/// The one calendar of the organization that `r` names.
async fn find(state: &AppState, org: i64, r: &CalendarRef) -> Result<ConnectedCalendar, ApiError> {
    if r.integration != INTEGRATION {
        return Err(ApiError::validation(vec![FieldError::new(
            "integration",
            format!("only {INTEGRATION:?} calendars can be connected here"),
        )]));
    }
    let conns = state.store.connections(org, None).await?;
    let matching: Vec<&ConnectedCalendar> = conns
        .iter()
        .filter(|c| r.credential_id.is_none_or(|id| id == c.id))
        .flat_map(|c| &c.calendars)
        .filter(|k| k.url == r.external_id.trim())
        .collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(ApiError::not_found("calendar")),
        _ => Err(ApiError::validation(vec![FieldError::new(
            "credentialId",
            "several connections hold this calendar; name the credentialId",
        )])),
    }
}

async fn set(
    state: &AppState,
    org: i64,
    r: &CalendarRef,
    selected: Option<bool>,
    destination: Option<bool>,
) -> ApiResult {
    let k = find(state, org, r).await?;
    let k = state
        .store
        .update_calendar(org, k.id, selected, destination)
        .await?
        .ok_or_else(|| ApiError::not_found("calendar"))?;
    Ok(success(StatusCode::OK, calendar_json(&k)))
}

pub async fn select(State(state): State<AppState>, who: Principal, raw: Bytes) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let r: CalendarRef = input::body(&raw, BODY_CONTEXT)?;
    set(&state, org, &r, Some(true), None).await
}

pub async fn unselect(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut errors = Vec::new();
    let mut need = |k: &str| match q.get(k) {
        Some(v) => Some(v.clone()),
        None => {
            errors.push(FieldError::new(k, "is required"));
            None
        }
    };
    let (integration, external_id) = (need("integration"), need("externalId"));
    let credential_id = match q.get("credentialId").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => {
            errors.push(FieldError::new("credentialId", "must be a credential id"));
            None
        }
    };
    let (Some(integration), Some(external_id), true) =
        (integration, external_id, errors.is_empty())
    else {
        return Err(ApiError::validation(errors));
    };
    let r = CalendarRef {
        integration,
        external_id,
        credential_id,
    };
    set(&state, org, &r, Some(false), None).await
}

pub async fn destination(State(state): State<AppState>, who: Principal, raw: Bytes) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let r: CalendarRef = input::body(&raw, BODY_CONTEXT)?;
    set(&state, org, &r, None, Some(true)).await
}
