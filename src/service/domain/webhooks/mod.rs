//! Webhooks as pure logic: the bodies (`payload`), their signatures (`sign`), what to do
//! after an attempt (`policy`), subscription secrets sealed at rest (`secrets`), and which
//! addresses deliveries may connect to (`reach`). The
//! outbox and its workers are `service::webhooks` and `service::store::webhooks`.

pub mod payload;
pub mod policy;
pub mod reach;
pub mod secrets;
pub mod sign;
