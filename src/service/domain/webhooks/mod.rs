//! Webhooks as pure logic: the bodies (`payload`), their signatures (`sign`), what to do
//! after an attempt (`policy`), and subscription secrets sealed at rest (`secrets`). The
//! outbox and its workers are `service::webhooks` and `service::store::webhooks`.

pub mod payload;
pub mod policy;
pub mod secrets;
pub mod sign;
