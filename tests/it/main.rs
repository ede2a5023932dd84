//! The integration tests: one test binary (as cargo's `tests/testsuite` and uv's `tests/it`),
//! one module per area, and `support/` for what several of them share. One binary links once
//! instead of once per file, and the PostgreSQL cluster of the service tests starts once.
//!
//! All tests share one process now: nothing here may change process-wide state while tests
//! run (environment variables the code under test reads are set before `main`, in
//! `support::env`; nothing changes the current directory).
//!
//! Run one area with `cargo test --test it bookings::`, one test by its name.

mod support;

mod architecture;
mod backups;
mod backups_oci;
mod bookings;
mod browser;
mod calcom;
mod caldav;
mod deploy;
mod freetier;
mod fuzz;
mod ics;
mod image;
mod instance_principal;
mod mail;
mod oci;
mod ocitarget;
mod pages;
mod profile;
mod ratelimit;
mod render;
mod runtime;
mod service;
mod terraform;
mod webhooks;
