//! Rate limits on the HTTP side: the middleware that counts limited routes against the
//! caller's API key (`service::ratelimit` decides), and the 429 answer with its headers.

use super::error::ApiError;
use crate::service::principal::Principal;
use crate::service::ratelimit::policy::{self, Class, Decision};
use crate::service::state::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

fn set_headers(res: &mut Response, d: &Decision) {
    for (name, value) in d.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            res.headers_mut().insert(HeaderName::from_static(name), v);
        }
    }
}

/// The 429 in the service's error shape, with the rate-limit headers and `Retry-After`.
pub fn too_many(class: Class, d: &Decision, period: Duration) -> Response {
    let mut res = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        format!(
            "this API key made more than {} {} requests in {}; retry in {} s",
            d.limit,
            class.as_str(),
            humantime::format_duration(period),
            d.reset_secs
        ),
    )
    .with_details(serde_json::json!({
        "class": class.as_str(),
        "limit": d.limit,
        "periodSeconds": period.as_secs(),
        "retryAfterSeconds": d.reset_secs,
    }))
    .into_response();
    set_headers(&mut res, d);
    res
}

/// Middleware: limited routes count against the caller's API key. Requests without a valid
/// key are answered by the handler (401) and count against nobody.
pub async fn middleware(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let class = route
        .as_deref()
        .and_then(|r| policy::classify(req.method().as_str(), r));
    let Some(class) = class else {
        return next.run(req).await;
    };
    if state.rate_limiter.limits().get(class).is_none() {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let who = match <Principal as axum::extract::FromRequestParts<AppState>>::from_request_parts(
        &mut parts, &state,
    )
    .await
    {
        Ok(Principal::Key { key_id, .. }) => format!("key:{key_id}"),
        Ok(Principal::Bootstrap) => "bootstrap".to_string(),
        Err(e) => return e.into_response(),
    };
    let req = Request::from_parts(parts, body);
    let Some((decision, _)) = state.rate_limiter.check(class, &who).await else {
        return next.run(req).await;
    };
    if !decision.allowed {
        state.metrics.rate_limited(class.as_str());
        let period = state
            .rate_limiter
            .limits()
            .get(class)
            .map(|l| l.period)
            .unwrap_or_default();
        return too_many(class, &decision, period);
    }
    let mut res = next.run(req).await;
    set_headers(&mut res, &decision);
    res
}
