//! Pure logic of the scheduling service: no I/O, no clock, and no imports from the rest of
//! the service (`tests/it/architecture.rs` checks that).
//!
//! - `address`: e-mail addresses mail can be sent to
//! - `booking`: the booking value handlers, payloads and calendars share
//! - `instant`: the range of client-given instants and arithmetic on them that cannot panic
//! - `hours`, `slots`: working hours and availability -> slots (with DST rules)
//! - `icalendar`: calendar objects from CalDAV servers into busy time (recurrence, zones)
//! - `webhooks`: webhook bodies, signatures, retry/breaker policy, sealed secrets

pub mod address;
pub mod booking;
pub mod hours;
pub mod icalendar;
pub mod instant;
pub mod slots;
pub mod webhooks;

use serde::Serialize;

/// One problem with one input field, as reported in an error's `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}
