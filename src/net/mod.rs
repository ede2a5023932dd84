//! Networking helpers shared by the service and the local target.

pub mod reuseport;
