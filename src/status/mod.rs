//! The live service's figures for `calops status`: requests and 5xx, latency p95, bookings,
//! backlogs, calendar sync age, slot-cache hit rate, database pool saturation, backup ages,
//! and (on OCI) the stack's firing alarms.
//!
//! - [`figures`]: the one shape both sources fill ([`figures::StatusFigures`]), its human
//!   table and its JSON (pure);
//! - [`scrape`]: local target, from the service's `/metrics` (Prometheus text, private
//!   listener): two readings a second apart give the last second's rate, the first one the
//!   totals since the service started (parsing and arithmetic pure; one function does the I/O);
//! - [`monitoring`]: OCI, from Monitoring's SummarizeMetricsData (MQL over what the exporter
//!   posted, filtered on the live slot and release) and ListAlarmsStatus, signed with the
//!   operator's API key (queries and answers pure; one function does the I/O).

pub mod figures;
pub mod monitoring;
pub mod scrape;
