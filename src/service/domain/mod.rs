//! Pure logic of the scheduling service: no I/O, no clock.

pub mod hours;
pub mod slots;

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
