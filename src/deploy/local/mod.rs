//! The local target: the service as a background process on this machine.

pub mod archiving;
pub mod layout;
pub mod process;
pub mod redis;
pub mod seed;
pub mod target;
