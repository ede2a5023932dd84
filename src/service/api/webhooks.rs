//! `/v2/webhooks`: subscriptions (Cal.com API v2 shapes: `subscriberUrl`, `triggers`,
//! `active`, write-only `secret`), their delivery history, and replays. Every endpoint needs
//! the `admin` scope (subscriber URLs and delivery bodies carry booking data) and sees only
//! the caller's organization: another organization's webhook is a 404.

use super::error::{success, ApiError, ApiResult, Path, Query};
use super::input::{self, JsonBody};
use crate::service::domain::webhooks::payload::Trigger;
use crate::service::domain::webhooks::policy::{Breaker, BreakerState};
use crate::service::domain::webhooks::reach::AllowList;
use crate::service::domain::webhooks::secrets;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::webhooks::{
    Delivery, DeliveryFilter, NewWebhook, Replayed, Webhook, WebhookPatch,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/webhooks", get(list).post(create))
        .route(
            "/v2/webhooks/{webhook_id}",
            get(get_one).patch(patch).delete(delete),
        )
        .route("/v2/webhooks/{webhook_id}/deliveries", get(deliveries))
        .route(
            "/v2/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
            post(replay_one),
        )
        .route("/v2/webhooks/{webhook_id}/replay", post(replay_range))
}

/// `Debug` (by hand, below) never shows the secret.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWebhook {
    pub subscriber_url: String,
    pub triggers: Vec<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default, deserialize_with = "opaque")]
    pub secret: Option<String>,
    #[serde(default)]
    pub payload_template: Option<Value>,
}

/// `Debug` (by hand, below) never shows the secret.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchWebhook {
    #[serde(default)]
    pub subscriber_url: Option<String>,
    #[serde(default)]
    pub triggers: Option<Vec<String>>,
    #[serde(default)]
    pub active: Option<bool>,
    /// A string sets it, `null` removes it, absent keeps it.
    #[serde(default, deserialize_with = "some_or_null")]
    pub secret: Option<Option<String>>,
    #[serde(default)]
    pub payload_template: Option<Value>,
}

/// How a secret field shows in `Debug`: whether there is one, never what it is.
fn shown(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

impl std::fmt::Debug for CreateWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateWebhook")
            .field("subscriber_url", &self.subscriber_url)
            .field("triggers", &self.triggers)
            .field("active", &self.active)
            .field("secret", &shown(&self.secret))
            .field("payload_template", &self.payload_template)
            .finish()
    }
}

impl std::fmt::Debug for PatchWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatchWebhook")
            .field("subscriber_url", &self.subscriber_url)
            .field("triggers", &self.triggers)
            .field("active", &self.active)
            .field("secret", &self.secret.as_ref().map(shown))
            .field("payload_template", &self.payload_template)
            .finish()
    }
}

/// A string or null whose value never appears in an error message (serde's would quote it).
fn opaque<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(serde::de::Error::custom("secret must be a string")),
    }
}

fn some_or_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(opaque(d)?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayRange {
    pub from: String,
    pub to: String,
}

/// The longest subscriber URL accepted.
pub const MAX_URL_LEN: usize = 2048;
/// The longest range one replay may cover.
pub const MAX_REPLAY_DAYS: i64 = 31;
/// The most events one range replay may send again.
pub const MAX_REPLAY_ROWS: i64 = 1000;

/// A subscriber URL: http(s), with a host, not too long, and not an address literal that
/// deliveries may not reach (`reach`: loopback, private, link-local, ... unless `allow`
/// covers it). Names are checked where they resolve, at each delivery.
fn check_url(u: &str, allow: &AllowList, errors: &mut Vec<FieldError>) {
    let parsed = url::Url::parse(u).ok().filter(|p| {
        u.len() <= MAX_URL_LEN && matches!(p.scheme(), "http" | "https") && p.host().is_some()
    });
    match parsed {
        None => errors.push(FieldError::new(
            "subscriberUrl",
            format!("must be an http(s) URL with a host, at most {MAX_URL_LEN} characters"),
        )),
        Some(_) => {
            if let Err(refused) = crate::service::webhooks::guard::check_literal(u, allow) {
                errors.push(FieldError::new("subscriberUrl", refused.0));
            }
        }
    }
}

fn check_triggers(t: &[String], errors: &mut Vec<FieldError>) -> Vec<String> {
    let known: Vec<&str> = Trigger::ALL.iter().map(|t| t.as_str()).collect();
    if t.is_empty() {
        errors.push(FieldError::new(
            "triggers",
            format!("name at least one of {}", known.join(", ")),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, s) in t.iter().enumerate() {
        match Trigger::parse(s.trim()) {
            Some(tr) => {
                if !out.iter().any(|o| o == tr.as_str()) {
                    out.push(tr.as_str().to_string());
                }
            }
            None => errors.push(FieldError::new(
                format!("triggers[{i}]"),
                format!("{s:?} is not supported: use {}", known.join(", ")),
            )),
        }
    }
    out
}

fn check_secret(s: &str, errors: &mut Vec<FieldError>) {
    // The value is never echoed, not even in an error.
    if s.is_empty() || s.len() > 512 {
        errors.push(FieldError::new("secret", "must be 1 to 512 characters"));
    }
}

fn no_template(t: &Option<Value>, errors: &mut Vec<FieldError>) {
    if t.as_ref().is_some_and(|v| !v.is_null()) {
        errors.push(FieldError::new(
            "payloadTemplate",
            "custom payload templates are not supported; bodies use Cal.com's default shape",
        ));
    }
}

fn iso(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// The webhook object. The secret is write-only: only whether there is one is shown.
pub fn webhook_json(w: &Webhook, threshold: u32) -> Value {
    let b = Breaker {
        failures: w.consecutive_failures.max(0) as u32,
        open_until: w.breaker_open_until.map(|t| t.as_millisecond()),
    };
    let state = match b.state(Timestamp::now().as_millisecond(), threshold) {
        BreakerState::Closed => "closed",
        BreakerState::Open => "open",
        BreakerState::HalfOpen => "half_open",
    };
    json!({
        "id": w.id,
        "organizationId": w.org_id,
        "subscriberUrl": w.subscriber_url,
        "triggers": w.triggers,
        "active": w.active,
        "payloadTemplate": null,
        "hasSecret": w.has_secret,
        "circuitBreaker": {
            "state": state,
            "consecutiveFailures": w.consecutive_failures,
            "openUntil": w.breaker_open_until.map(iso),
        },
        "createdAt": iso(w.created_at),
        "updatedAt": iso(w.updated_at),
    })
}

pub fn delivery_json(d: &Delivery) -> Value {
    let history: Vec<Value> = d
        .history
        .iter()
        .map(|a| {
            json!({
                "attempt": a.attempt,
                "startedAt": iso(a.started_at),
                "finishedAt": a.finished_at.map(iso),
                "statusCode": a.status_code,
                "error": a.error,
                "durationMs": a.duration_ms,
            })
        })
        .collect();
    json!({
        "id": d.uid,
        "webhookId": d.webhook_id,
        "eventId": d.event_uid,
        "triggerEvent": d.trigger_event,
        "bookingUid": d.booking_uid,
        "status": d.status,
        "attempts": d.attempts,
        "nextAttemptAt": (d.status == "pending").then(|| iso(d.next_attempt_at)),
        "lastStatusCode": d.last_status_code,
        "lastError": d.last_error,
        "replayOf": d.replay_of,
        "createdAt": iso(d.created_at),
        "deliveredAt": d.delivered_at.map(iso),
        "history": history,
    })
}

fn webhook_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

fn page(q: &HashMap<String, String>, errors: &mut Vec<FieldError>) -> (i64, i64) {
    let mut int = |k: &str, lo: i64, hi: i64, default: i64| match q.get(k).map(|s| s.trim()) {
        None | Some("") => default,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => n,
            _ => {
                errors.push(FieldError::new(
                    k,
                    format!("must be a number from {lo} to {hi}"),
                ));
                default
            }
        },
    };
    (int("take", 1, 250, 100), int("skip", 0, i64::MAX / 2, 0))
}

async fn owned(state: &AppState, org: i64, id: &str) -> Result<Webhook, ApiError> {
    state
        .store
        .get_webhook(org, webhook_id(id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

fn threshold(state: &AppState) -> u32 {
    state.webhooks.breaker_threshold
}

pub async fn create(State(state): State<AppState>, who: Principal, body: JsonBody) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let req: CreateWebhook = input::typed(
        body.value,
        "not a field of this endpoint (see GET /openapi.json)",
    )?;
    let mut errors = Vec::new();
    let url = req.subscriber_url.trim().to_string();
    check_url(&url, &state.webhooks.allow_private, &mut errors);
    let triggers = check_triggers(&req.triggers, &mut errors);
    if let Some(s) = &req.secret {
        check_secret(s, &mut errors);
    }
    no_template(&req.payload_template, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let w = state
        .store
        .create_webhook(&NewWebhook {
            org_id: org,
            subscriber_url: url,
            triggers,
            active: req.active.unwrap_or(true),
            secret: req
                .secret
                .as_deref()
                .map(|s| secrets::seal(state.webhooks.secret_key.as_ref(), org, s)),
        })
        .await?;
    Ok(success(
        StatusCode::CREATED,
        webhook_json(&w, threshold(&state)),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    who: Principal,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut errors = Vec::new();
    let (take, skip) = page(&q, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let rows = state.store.list_webhooks(org, take, skip).await?;
    let t = threshold(&state);
    Ok(success(
        StatusCode::OK,
        Value::Array(rows.iter().map(|w| webhook_json(w, t)).collect()),
    ))
}

pub async fn get_one(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let w = owned(&state, org, &id).await?;
    Ok(success(StatusCode::OK, webhook_json(&w, threshold(&state))))
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let id = webhook_id(&id)?;
    let req: PatchWebhook = input::typed(
        body.value,
        "not a field of this endpoint (see GET /openapi.json)",
    )?;
    let mut errors = Vec::new();
    let url = req.subscriber_url.as_deref().map(|u| u.trim().to_string());
    if let Some(u) = &url {
        check_url(u, &state.webhooks.allow_private, &mut errors);
    }
    let triggers = req
        .triggers
        .as_deref()
        .map(|t| check_triggers(t, &mut errors));
    if let Some(Some(s)) = &req.secret {
        check_secret(s, &mut errors);
    }
    no_template(&req.payload_template, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let p = WebhookPatch {
        subscriber_url: url,
        triggers,
        active: req.active,
        secret: req.secret.as_ref().map(|s| {
            s.as_deref()
                .map(|s| secrets::seal(state.webhooks.secret_key.as_ref(), org, s))
        }),
    };
    let w = state
        .store
        .update_webhook(org, id, &p)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(success(StatusCode::OK, webhook_json(&w, threshold(&state))))
}

pub async fn delete(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let w = state
        .store
        .delete_webhook(org, webhook_id(&id)?)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))?;
    Ok(success(StatusCode::OK, webhook_json(&w, threshold(&state))))
}

pub async fn deliveries(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let mut errors = Vec::new();
    let (take, skip) = page(&q, &mut errors);
    let status = match q.get("status").map(|s| s.trim()) {
        None | Some("") => None,
        Some(s @ ("pending" | "delivered" | "dead")) => Some(s.to_string()),
        Some(other) => {
            errors.push(FieldError::new(
                "status",
                format!("{other:?}: use pending, delivered or dead"),
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let w = owned(&state, org, &id).await?;
    let (rows, total) = state
        .store
        .list_deliveries(org, w.id, &DeliveryFilter { status, take, skip })
        .await?;
    let returned = rows.len() as i64;
    let body = json!({
        "status": "success",
        "data": rows.iter().map(delivery_json).collect::<Vec<_>>(),
        "pagination": {
            "totalItems": total,
            "returnedItems": returned,
            "remainingItems": (total - skip - returned).max(0),
            "itemsPerPage": take,
            "skip": skip,
            "hasNextPage": skip + returned < total,
            "hasPreviousPage": skip > 0,
        }
    });
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

pub async fn replay_one(
    State(state): State<AppState>,
    who: Principal,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let w = owned(&state, org, &id).await?;
    let delivery = Uuid::parse_str(&delivery).map_err(|_| ApiError::not_found("delivery"))?;
    let d = state
        .store
        .replay_delivery(org, w.id, delivery)
        .await?
        .ok_or_else(|| ApiError::not_found("delivery"))?;
    Ok(success(StatusCode::ACCEPTED, delivery_json(&d)))
}

pub async fn replay_range(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("admin")?;
    let req: ReplayRange = input::typed(
        body.value,
        "not a field of this endpoint (see GET /openapi.json)",
    )?;
    let mut errors = Vec::new();
    let from = input::any_instant("from", &req.from, &mut errors);
    let to = input::any_instant("to", &req.to, &mut errors);
    if let (Some(f), Some(t)) = (from, to) {
        if t <= f {
            errors.push(FieldError::new("to", "must be after from"));
        } else if t.as_second() - f.as_second() > MAX_REPLAY_DAYS * 86_400 {
            errors.push(FieldError::new(
                "to",
                format!("at most {MAX_REPLAY_DAYS} days after from; replay a longer time in several ranges"),
            ));
        }
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let w = owned(&state, org, &id).await?;
    let rows = match state
        .store
        .replay_range(org, w.id, from, to, MAX_REPLAY_ROWS)
        .await?
    {
        Replayed::Sent(rows) => rows,
        Replayed::TooMany => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "replay_too_large",
                format!(
                    "more than {MAX_REPLAY_ROWS} events were sent to this webhook in [from, to); replay a narrower range (nothing was sent)"
                ),
            ))
        }
    };
    Ok(success(
        StatusCode::ACCEPTED,
        json!({
            "count": rows.len(),
            "deliveries": rows.iter().map(delivery_json).collect::<Vec<_>>(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriber_urls_are_checked() {
        let errs = |u: &str| {
            let mut e = Vec::new();
            check_url(u, &AllowList::default(), &mut e);
            e.len()
        };
        assert_eq!(errs("https://hooks.example.com/cal?token=x"), 0);
        assert_eq!(errs("http://127.0.0.1:8080/hook"), 1);
        assert_eq!(errs("http://[::ffff:127.0.0.1]:8080/hook"), 1);
        assert_eq!(errs("http://10.0.0.7/hook"), 1);
        assert_eq!(errs("http://169.254.169.254/opc/v2/instance/"), 1);
        assert_eq!(errs("http://[fe80::1]/"), 1);
        assert_eq!(errs("http://0.0.0.0/"), 1);
        let mut e = Vec::new();
        let loopback = AllowList::parse("127.0.0.0/8").unwrap();
        check_url("http://127.0.0.1:8080/hook", &loopback, &mut e);
        assert!(e.is_empty(), "an allowed range: {e:?}");
        assert_eq!(errs("ftp://example.com/"), 1);
        assert_eq!(errs("not a url"), 1);
        // A secret of the wrong type is refused without being quoted.
        let e = input::body::<CreateWebhook>(
            br#"{"subscriberUrl":"http://a.example","triggers":[],"secret":987654321}"#,
            "ctx",
        )
        .unwrap_err();
        assert!(
            e.message.contains("secret must be a string"),
            "{}",
            e.message
        );
        assert!(!e.message.contains("987654321"), "{}", e.message);
        let p = input::body::<PatchWebhook>(br#"{"secret":null}"#, "ctx").unwrap();
        assert_eq!(p.secret, Some(None));
        // Debug shows whether there is a secret, never the secret.
        let c = input::body::<CreateWebhook>(
            br#"{"subscriberUrl":"https://a.example","triggers":["BOOKING_CREATED"],"secret":"whsec_zebra"}"#,
            "ctx",
        )
        .unwrap();
        let p = input::body::<PatchWebhook>(br#"{"secret":"whsec_zebra"}"#, "ctx").unwrap();
        for shown in [format!("{c:?}"), format!("{p:?}")] {
            assert!(
                !shown.contains("zebra") && shown.contains("<redacted>"),
                "{shown}"
            );
        }
        let p = input::body::<PatchWebhook>(br#"{}"#, "ctx").unwrap();
        assert_eq!(p.secret, None);
        assert_eq!(
            errs(&format!("https://example.com/{}", "a".repeat(MAX_URL_LEN))),
            1
        );
    }
}
