//! The local target: the service as a background process on this machine.

pub mod process;
pub mod redis;
