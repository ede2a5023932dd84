//! Typed profiles: loading, merging and validation.

pub mod node;
