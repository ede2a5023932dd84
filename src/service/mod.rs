//! The scheduling service behind `calops serve`: a Cal.com API v2 compatible backend.
//!
//! - `domain/`: pure logic (the booking value, slot computation with DST rules, input
//!   checking, webhook bodies, signatures and retry policy); imports nothing else of the crate
//! - `store/`: PostgreSQL pool, embedded migrations, queries (one file per resource)
//! - `state`: the [`state::AppState`] every handler and middleware shares
//! - `principal`: who is calling (API keys, scopes); `problem`: a configuration problem
//! - `api/`: HTTP handlers per resource, auth, rate-limit middleware, errors, OpenAPI document
//! - `ratelimit/`, `webhooks/`, `calendar`, `objstore/`, `ics`: limits, the webhook outbox
//!   workers, calendar files and the object stores they are written to
//! - `mail/`: e-mail to attendees, guests and hosts (outbox workers, messages with iTIP
//!   invitations, SMTP or Maildir transport)
//! - `telemetry/`: the OCI Monitoring exporter (on OCI only: the runtime contract enables it)
//! - `caldav/`: connected calendars (CalDAV client, busy-time sync, booking write-back)
//! - `web/`: the booking pages (server-rendered HTML for invitees: book, view, cancel,
//!   reschedule), their templates, CSS, messages and signed links
//! - `config`, `secrets`, `startup`, `health`, `metrics`, `logging`, `server`: the runtime
//!   around them (`secrets` resolves `env:`/`vault:` references, `startup` checks the
//!   database and Redis before listening)
//!
//! The variables `serve` reads are those of the container contract ([`crate::runtime::env`]).
//! No cycles between these modules, and no CLI module is used (`tests/it/architecture.rs`).

pub mod api;
pub mod caldav;
pub mod calendar;
pub mod config;
pub mod domain;
pub mod health;
pub mod ics;
pub mod logging;
pub mod mail;
pub mod metrics;
pub mod objstore;
pub mod principal;
pub mod problem;
pub mod ratelimit;
pub mod secrets;
pub mod server;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;
pub mod webhooks;
