//! The scheduling service behind `calops serve`: a Cal.com API v2 compatible backend.
//!
//! - `domain/`: pure logic (slot computation with DST rules, input checking)
//! - `store/`: PostgreSQL pool, embedded migrations, queries
//! - `api/`: HTTP handlers per resource, auth, errors, OpenAPI document
//! - `config`, `health`, `metrics`, `logging`, `server`: the runtime around them

pub mod api;
pub mod calendar;
pub mod config;
pub mod domain;
pub mod health;
pub mod ics;
pub mod logging;
pub mod metrics;
pub mod objstore;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod testing;
pub mod webhooks;
