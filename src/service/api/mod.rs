//! HTTP handlers per resource, the router, and the middleware that gives each request an id,
//! a JSON log line and a latency observation.

pub mod auth;
pub mod bookings;
pub mod calendar;
pub mod composite;
pub mod connected_calendars;
pub mod error;
pub mod event_types;
pub mod openapi;
pub mod orgs;
pub mod ratelimit;
pub mod schedules;
pub mod slots;
pub mod webhooks;

use crate::service::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use std::time::Instant;

pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The API's routes and `more` (the booking pages), with one fallback, one set of
/// middleware and one state.
pub fn router_with(state: AppState, more: Router<AppState>) -> Router {
    Router::new()
        .route(
            crate::runtime::READINESS_PATH,
            get(crate::service::health::handler),
        )
        .route(
            crate::runtime::LIVENESS_PATH,
            get(crate::service::health::live),
        )
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_doc))
        .route("/v2/organizations", axum::routing::post(orgs::create_top))
        .route(
            "/v2/organizations/{org_id}",
            get(orgs::get).patch(orgs::patch),
        )
        .route(
            "/v2/organizations/{org_id}/organizations",
            get(orgs::list_children).post(orgs::create_child),
        )
        .route(
            "/v2/organizations/{org_id}/api-keys",
            axum::routing::post(orgs::create_key),
        )
        .route(
            "/v2/organizations/{org_id}/users",
            get(orgs::list_users).post(orgs::create_user),
        )
        .route(
            "/v2/organizations/{org_id}/users/{user_id}",
            get(orgs::get_user),
        )
        .route(
            "/v2/schedules",
            get(schedules::list).post(schedules::create),
        )
        .route(
            "/v2/schedules/{id}",
            get(schedules::get)
                .patch(schedules::patch)
                .delete(schedules::delete),
        )
        .route(
            "/v2/event-types",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/v2/event-types/{id}",
            get(event_types::get)
                .patch(event_types::patch)
                .delete(event_types::delete),
        )
        .route("/v2/slots", get(slots::get))
        .route(
            "/v2/slots/reservations",
            axum::routing::post(bookings::reserve),
        )
        .route(
            "/v2/slots/reservations/{uid}",
            axum::routing::delete(bookings::release),
        )
        .route("/v2/bookings", get(bookings::list).post(bookings::create))
        .route("/v2/bookings/{uid}", get(bookings::get))
        .route("/v2/bookings/{uid}/ics", get(calendar::get_ics))
        .route(
            "/v2/bookings/composite",
            axum::routing::post(composite::create),
        )
        .route(
            "/v2/bookings/{uid}/cancel",
            axum::routing::post(bookings::cancel),
        )
        .route(
            "/v2/bookings/{uid}/reschedule",
            axum::routing::post(bookings::reschedule),
        )
        .merge(webhooks::routes())
        .merge(connected_calendars::routes())
        .merge(more)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The API's answer to a path it does not have (the booking pages give it for `/v2/...`).
pub async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "no such endpoint; GET /openapi.json lists them",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method; GET /openapi.json lists them",
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = state.metrics.render(
        state.store.pool_status(),
        state.started.elapsed().as_secs_f64(),
    );
    text.push_str(
        &state
            .metrics
            .render_rate_limits(state.rate_limiter.fallbacks()),
    );
    text.push_str(&crate::service::metrics::Metrics::render_slot_cache(
        state.store.cache().stats(),
    ));
    text.push_str(&crate::service::metrics::Metrics::render_batches(
        state.store.batch_stats(),
    ));
    // Backlogs live in the database: left out (not an error) while it cannot be read.
    match state.store.backlog().await {
        Ok(b) => text.push_str(&crate::service::metrics::Metrics::render_backlog(b)),
        Err(e) => tracing::debug!(error = %e, "metrics: cannot read the outbox backlogs"),
    }
    // The mail outbox only where this process sends mail.
    if state
        .metrics
        .mail
        .configured
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let b = state.store.mail_backlog().await;
        if let Err(e) = &b {
            tracing::debug!(error = %e, "metrics: cannot read the mail outbox");
        }
        text.push_str(&state.metrics.mail.render(b.ok()));
    }
    text.push_str(&state.metrics.render_export());
    let calendars = state.store.calendar_health().await.ok();
    text.push_str(&crate::service::metrics::Metrics::render_calendars(
        &state.caldav.stats,
        calendars,
    ));
    text.push_str(&crate::service::metrics::extra());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
        .into_response()
}

async fn openapi_doc() -> Response {
    axum::Json(openapi::document()).into_response()
}

/// Request id (kept from `x-request-id` when the caller sends a sane one), one JSON log line,
/// and a latency observation per request.
async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert("x-request-id", v);
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let mut res = next.run(req).await;
    let status = res.status().as_u16();
    let secs = started.elapsed().as_secs_f64();
    state.metrics.observe(&route, &method, status, secs);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    // Every line goes through the masking writer, so e-mails in paths or queries are hidden.
    if status >= 500 {
        tracing::error!(
            request_id,
            method,
            route,
            path,
            query,
            status,
            latency_ms = secs * 1000.0,
            "request"
        );
    } else {
        tracing::info!(
            request_id,
            method,
            route,
            path,
            query,
            status,
            latency_ms = secs * 1000.0,
            "request"
        );
    }
    res
}
