//! HTTP handlers per resource, the router, and the middleware that gives each request an id,
//! a JSON log line and a latency observation, and turns a panic into a logged 500.

pub mod auth;
pub mod bookings;
pub mod calendar;
pub mod composite;
pub mod connected_calendars;
pub mod error;
pub mod event_types;
pub mod input;
pub mod me;
pub mod openapi;
pub mod orgs;
pub mod ratelimit;
pub mod schedules;
pub mod slots;
pub mod versions;
pub mod webhooks;

use crate::service::state::AppState;
use axum::extract::{Extension, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use error::ApiError;
use std::time::Instant;

/// What a listener serves besides the API: the private listener (127.0.0.1, for the deploy
/// that verifies a release and for scrapers on the host) serves `/metrics` and shows
/// dependency errors in `/health`; the public one serves `/metrics` only when
/// `CALOPS_METRICS_PUBLIC=on`, and shows errors only to the bootstrap admin token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// `GET /metrics` answers (otherwise it is a 404 like any unknown path).
    pub metrics: bool,
    /// Every caller of `/health` sees latencies and raw dependency errors.
    pub trusted: bool,
}

impl Listener {
    pub const PRIVATE: Listener = Listener {
        metrics: true,
        trusted: true,
    };

    pub fn public(metrics: bool) -> Listener {
        Listener {
            metrics,
            trusted: false,
        }
    }
}

/// The service's API router for one listener.
pub fn router(state: AppState, listener: Listener) -> Router {
    router_with(state, Router::new(), listener)
}

/// The API's routes and `more` (the booking pages) for one listener, with one fallback, one
/// set of middleware and one state.
pub fn router_with(state: AppState, more: Router<AppState>, listener: Listener) -> Router {
    layered(routes().merge(more), state, listener)
}

/// The fallbacks and layers around `routes`, as every listener has them: the query-name
/// policy, `cal-api-version`, rate limits, a
/// panic caught and answered 500 (logged, the process keeps serving), the listener's
/// [`Listener`], and the request log and metrics outermost (so a caught panic is logged and
/// counted as a 500 with its request id).
pub fn layered(routes: Router<AppState>, state: AppState, listener: Listener) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Query names the operation does not document are a 400 on every route.
        .layer(axum::middleware::from_fn(query_policy))
        // `cal-api-version` first: an unknown or unserved version is a 400 on every route.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            versions::middleware,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::middleware,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(Extension(listener))
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The answer to a handler that panicked: the panic goes to the log, the client gets the
/// usual 500 (the request log line next to it carries the request id).
fn panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    tracing::error!(panic = %what, "a request handler panicked; answered 500");
    ApiError::internal().into_response()
}

/// Every route of the service (handlers only; [`layered`] adds the rest).
fn routes() -> Router<AppState> {
    Router::new()
        // crate::runtime::READINESS_PATH and LIVENESS_PATH, as literals so that the OpenAPI
        // test reads them.
        .route("/health", get(health))
        .route("/livez", get(livez))
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
        .route("/v2/schedules/default", get(schedules::get_default))
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
            get(bookings::get_reservation)
                .patch(bookings::update_reservation)
                .delete(bookings::release),
        )
        // Cal.com's shapes before 2024-09-04.
        .route("/v2/slots/available", get(slots::get))
        .route("/v2/slots/reserve", axum::routing::post(bookings::reserve))
        .route(
            "/v2/slots/selected-slot",
            axum::routing::delete(bookings::release_selected),
        )
        .route("/v2/me", get(me::get))
        .route("/v2/timezones", get(me::timezones))
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
}

/// Every query parameter must be one the operation documents (`GET /openapi.json`): the
/// same field policy as request bodies (`input`), for every endpoint, so that a filter a
/// client believes in is never silently ignored.
async fn query_policy(req: Request, next: Next) -> Response {
    static NAMES: std::sync::OnceLock<std::collections::HashMap<(String, String), Vec<String>>> =
        std::sync::OnceLock::new();
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(req).await;
    };
    let names = NAMES.get_or_init(openapi::query_names);
    let method = req.method().as_str().to_ascii_lowercase();
    let Some(allowed) = names.get(&(method, openapi::template(&path))) else {
        return next.run(req).await;
    };
    let pairs: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let allowed: Vec<&str> = allowed.iter().map(String::as_str).collect();
    let context = if allowed.is_empty() {
        "this endpoint takes no query parameters"
    } else {
        "see GET /openapi.json"
    };
    match input::Params::new(pairs, &allowed, context) {
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
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

/// GET /livez: the process is up and serving; nothing else is checked.
async fn livez(State(state): State<AppState>) -> Response {
    let body = serde_json::json!({
        "status": "alive",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": (state.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// GET /health: cached dependency checks; details for trusted callers only.
async fn health(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
    headers: HeaderMap,
) -> Response {
    let detailed = listener.trusted || auth::is_bootstrap(&state, &headers);
    let snapshot = state
        .health
        .snapshot(
            &state.store,
            &state.objects,
            &state.metrics.mail,
            state.caldav.settings.stale_after,
        )
        .await;
    let code = if snapshot.status() == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body =
        crate::service::health::body(&snapshot, detailed, state.started.elapsed().as_secs_f64());
    (code, axum::Json(body)).into_response()
}

async fn metrics(
    State(state): State<AppState>,
    Extension(listener): Extension<Listener>,
) -> Response {
    if !listener.metrics {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "metrics_not_public",
            "/metrics is served on the private listener (--private-listen); set CALOPS_METRICS_PUBLIC=on to serve it here too",
        )
        .into_response();
    }
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

/// GET /openapi.json: the document, serialized once per process.
async fn openapi_doc() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::document_bytes(),
    )
        .into_response()
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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// State for routing tests: the pool connects lazily (these requests never reach it).
    fn state() -> AppState {
        let store = crate::service::store::Store::new("postgres://calops@127.0.0.1:1/none", 1)
            .expect("a pool");
        AppState::new(store, None, None, None, None)
    }

    async fn call(app: &Router, path: &str) -> (StatusCode, serde_json::Value) {
        let res = app
            .clone()
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_and_the_service_keeps_serving() {
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("internal detail 4711");
                    }
                    "unreachable"
                }),
            )
            .route("/fine", get(|| async { "fine" }));
        let app = layered(routes, state(), Listener::PRIVATE);
        let (status, body) = call(&app, "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error");
        assert!(
            !body.to_string().contains("4711"),
            "the panic message stays in the log: {body}"
        );
        let (status, _) = call(&app, "/fine").await;
        assert_eq!(status, StatusCode::OK);
    }
}
