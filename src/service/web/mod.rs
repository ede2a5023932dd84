//! The booking pages: server-rendered HTML that invitees book, view, reschedule and cancel
//! on, in English or German, with each organization's branding, embeddable in an iframe.
//!
//! - `pages`, `manage`: the handlers (they use `state`, `store` and the API's booking paths,
//!   so the pages follow the same rules as the API: one slot engine and cache, one booking
//!   store, idempotency, locks, webhooks)
//! - `request`: what every handler shares (preferences, client IP and rate limit, responses)
//! - pure: `view` (templates, CSS, script, CSP, slot lists), `token` (signed links and form
//!   tokens), `links` (a booking's self-service URLs, for e-mails too), `month` (the
//!   calendar), `brand` (inherited branding, contrast), `i18n` (Fluent messages, dates)
//!
//! Routes: `/`, `/{org}/{host}`, `/{org}/{host}/{eventType}` (+ `POST .../book`), and
//! `/booking/{uid}` (+ `/ics`, `/cancel`, `/reschedule`) with the link token `?t=`.

pub mod brand;
pub mod i18n;
pub mod links;
pub mod manage;
pub mod month;
pub mod pages;
pub mod request;
pub mod token;
pub mod view;

pub use links::self_service_urls;

use crate::service::state::AppState;
use axum::routing::get;
use axum::Router;

/// The pages' routes (merged into the API's router, which adds its middleware).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/booking/{uid}", get(manage::view))
        .route("/booking/{uid}/ics", get(manage::ics))
        .route(
            "/booking/{uid}/cancel",
            get(manage::cancel_form).post(manage::cancel),
        )
        .route(
            "/booking/{uid}/reschedule",
            get(manage::reschedule_page).post(manage::reschedule),
        )
        .route("/{org}/{user}", get(pages::profile))
        .route("/{org}/{user}/{event_type}", get(pages::booker))
        .route(
            "/{org}/{user}/{event_type}/book",
            axum::routing::post(pages::book),
        )
        // Bodies past this are refused before they are read whole (the handlers refuse
        // anything past `request::MAX_FORM_BYTES` with a page of their own).
        .layer(axum::extract::DefaultBodyLimit::max(256 * 1024))
}
