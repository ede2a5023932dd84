//! `/v2/slots` in Cal.com's two shapes:
//!
//! - `2024-09-04` ([`Current`]): `GET /v2/slots?eventTypeId|eventTypeSlug+username&start&end
//!   &timeZone&duration&format` answering `{"data":{"2026-06-01":[{"start":...}]}}`, and
//!   `POST /v2/slots/reservations {eventTypeId, slotStart, slotDuration, reservationDuration}`;
//! - before it ([`Legacy`]): `GET /v2/slots/available?eventTypeId&startTime&endTime&timeZone
//!   &slotFormat` answering `{"data":{"slots":{"2026-06-01":[{"time":...}]}}}`,
//!   `POST /v2/slots/reserve {eventTypeId, slotUtcStartDate, slotUtcEndDate}` answering the
//!   hold's uid, and `DELETE /v2/slots/selected-slot?uid=`.
//!
//! Sources: Cal.com's `apps/api/v2/src/modules/slots/slots-2024-04-15/controllers/
//! slots.controller.ts`, `packages/platform/types/slots/` and
//! <https://cal.com/docs/api-reference/v2/slots>.

use super::super::error::ApiError;
use super::super::input::{self, iso, Params, Warning};
use super::bookings::EventTypeRef;
use super::{fields_of, Family, Resource, Shape, SLOTS_2024_09_04, SLOTS_LEGACY};
use crate::service::domain::hours::time_zone;
use crate::service::domain::instant;
use crate::service::domain::slots;
use crate::service::domain::FieldError;
use crate::service::store::bookings::Reservation;
use axum::http::StatusCode;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

/// The longest range one query may cover.
pub const MAX_RANGE_DAYS: i64 = 31;

/// A slots query, whatever the version.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotsRequest {
    pub event_type: EventTypeRef,
    pub start: i64,
    pub end: i64,
    pub tz: TimeZone,
    pub tz_name: String,
    pub duration: Option<i64>,
    /// Each slot with its end.
    pub range: bool,
}

/// A slot hold to make.
#[derive(Debug, Clone)]
pub struct ReservationRequest {
    pub event_type_id: i64,
    pub start: Timestamp,
    /// A slot length other than the event type's.
    pub length: Option<i64>,
    /// How long the hold lasts (minutes); the default when `None`.
    pub minutes: Option<i64>,
}

/// Parsers and writers of one shape of `/v2/slots`.
pub trait SlotsApi: Send + Sync {
    fn family(&self) -> &'static Family;
    fn query(
        &self,
        params: Vec<(String, String)>,
        w: &mut Vec<Warning>,
    ) -> Result<SlotsRequest, ApiError>;
    /// The whole response body (the hot path: written directly).
    fn render(&self, found: &[i64], q: &SlotsRequest, length_min: i64, w: &[Warning]) -> String;
    fn reservation(
        &self,
        body: Value,
        w: &mut Vec<Warning>,
    ) -> Result<ReservationRequest, ApiError>;
    /// The `data` of a made (or read) hold.
    fn reserved(&self, r: &Reservation) -> Value;
    /// The uid of the hold to release, from the path or the query.
    fn released_uid(
        &self,
        path: Option<String>,
        query: Vec<(String, String)>,
    ) -> Result<String, ApiError>;
    /// The whole body answering a release.
    fn released(&self, uid: Uuid) -> Value;
}

pub struct Slots;

impl Resource for Slots {
    type Api = dyn SlotsApi;
    fn api(shape: Shape) -> &'static dyn SlotsApi {
        match shape {
            Shape::Legacy => &Legacy,
            Shape::Current => &Current,
        }
    }
}

/// The 2024-09-04 shapes.
pub struct Current;
/// The shapes before 2024-09-04.
pub struct Legacy;

/// One end of the range: a date (the day's start in `tz`; for the end, the day's end), a date
/// and time with an offset or `Z`, or a date and time without one (read in `tz`).
pub fn parse_instant(s: &str, tz: &TimeZone, is_end: bool) -> Option<i64> {
    if s.len() == 10 {
        let d: Date = s.parse().ok()?;
        let d = if is_end { d.tomorrow().ok()? } else { d };
        return Some(
            tz.to_zoned(d.to_datetime(jiff::civil::Time::midnight()))
                .ok()?
                .timestamp()
                .as_second(),
        );
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Some(t.as_second());
    }
    let dt: DateTime = s.parse().ok()?;
    Some(tz.to_zoned(dt).ok()?.timestamp().as_second())
}

/// The names of a query's parts in one version.
struct Names {
    start: &'static str,
    end: &'static str,
    format: &'static [&'static str],
}

/// The range, zone, length and format of a query; every problem at once. `event_type` is
/// the already checked way the query names the event type.
fn range(
    q: &Params,
    names: &Names,
    event_type: Option<EventTypeRef>,
    mut errors: Vec<FieldError>,
) -> Result<SlotsRequest, ApiError> {
    let tz_name = q.get("timeZone").unwrap_or("UTC").to_string();
    let Some(tz) = time_zone(&tz_name) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_time_zone",
            format!("unknown time zone {tz_name:?}: use an IANA name such as \"America/New_York\""),
        ));
    };
    let mut when = |k: &str, is_end: bool| match q.get(k) {
        None => {
            errors.push(FieldError::new(k, "required"));
            None
        }
        Some(v) => {
            let t = parse_instant(v, &tz, is_end);
            match t {
                None => errors.push(FieldError::new(
                    k,
                    format!("{v:?} is not a date or time: use YYYY-MM-DD or an ISO 8601 time such as 2026-06-01T09:00:00Z"),
                )),
                Some(s) if !instant::second_in_range(s) => {
                    errors.push(FieldError::new(k, instant::out_of_range_message()));
                    return None;
                }
                Some(_) => {}
            }
            t
        }
    };
    let start = when(names.start, false);
    let end = when(names.end, true);
    let duration = q.int("duration", 1, 1440, &mut errors);
    let mut range = false;
    for name in names.format {
        match q.get(name) {
            None | Some("time") => {}
            Some("range") => range = true,
            Some(other) => errors.push(FieldError::new(
                *name,
                format!("{other:?}: use \"time\" or \"range\""),
            )),
        }
    }
    input::check(errors)?;
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
    if end <= start {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            format!("{} must be after {}", names.end, names.start),
        ));
    }
    if end - start > MAX_RANGE_DAYS * 86_400 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "range_too_large",
            format!(
                "the range covers more than {MAX_RANGE_DAYS} days; split it into several queries"
            ),
        ));
    }
    Ok(SlotsRequest {
        event_type: event_type.ok_or_else(ApiError::internal)?,
        start,
        end,
        tz,
        tz_name,
        duration,
        range,
    })
}

/// An event type id parameter; a problem goes to `errors`.
fn id(q: &Params, name: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    let v = q.get(name)?;
    match v.parse::<i64>() {
        Ok(n) => Some(n),
        Err(_) => {
            errors.push(FieldError::new(name, format!("{v:?} is not a number")));
            None
        }
    }
}

const DYNAMIC: &str = "calops has no dynamic group events: ask for one event type";
const NO_RESCHEDULE_EXCLUSION: &str =
    "the booking being moved still counts as busy here (a reschedule may still move it over its own time)";

const QUERY_2024_09_04: &[&str] = &[
    "eventTypeId",
    "eventTypeSlug",
    "username",
    "teamSlug",
    "organizationSlug",
    "usernames",
    "start",
    "end",
    "timeZone",
    "duration",
    "format",
    "slotFormat",
    "bookingUidToReschedule",
];

const QUERY_LEGACY: &[&str] = &[
    "startTime",
    "endTime",
    "eventTypeId",
    "eventTypeSlug",
    "usernameList",
    "usernameList[]",
    "debug",
    "duration",
    "rescheduleUid",
    "timeZone",
    "orgSlug",
    "slotFormat",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReserveIn {
    event_type_id: i64,
    slot_start: String,
    /// A number; Cal.com's page shows it as a string ("30"), so that is read too.
    #[serde(default, deserialize_with = "minutes")]
    slot_duration: Option<i64>,
    #[serde(default, deserialize_with = "minutes")]
    reservation_duration: Option<i64>,
}

/// Minutes as a number or a string of digits.
fn minutes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("must be a whole number of minutes")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("must be a whole number of minutes")),
        Some(_) => Err(serde::de::Error::custom(
            "must be a whole number of minutes",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReserveL {
    event_type_id: i64,
    slot_utc_start_date: String,
    slot_utc_end_date: String,
    #[serde(default)]
    booking_uid: Option<String>,
}

impl SlotsApi for Current {
    fn family(&self) -> &'static Family {
        &SLOTS_2024_09_04
    }

    fn query(
        &self,
        params: Vec<(String, String)>,
        w: &mut Vec<Warning>,
    ) -> Result<SlotsRequest, ApiError> {
        let q = Params::new(params, QUERY_2024_09_04, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let by_id = id(&q, "eventTypeId", &mut errors);
        let event_type = match (by_id, q.get("eventTypeSlug"), q.get("username")) {
            _ if q.get("usernames").is_some() => {
                errors.push(FieldError::new("usernames", DYNAMIC));
                None
            }
            _ if q.get("teamSlug").is_some() => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "team_not_found",
                    "calops has no teams; ask by eventTypeId, or eventTypeSlug and username",
                ))
            }
            (Some(id), None, _) => Some(EventTypeRef::Id(id)),
            (None, Some(slug), Some(username)) => Some(EventTypeRef::Slug {
                slug: slug.to_string(),
                username: username.to_string(),
                organization: q.get("organizationSlug").map(str::to_string),
            }),
            (None, Some(_), None) => {
                errors.push(FieldError::new("username", "required with eventTypeSlug"));
                None
            }
            (Some(_), Some(_), _) => {
                errors.push(FieldError::new(
                    "eventTypeSlug",
                    "give eventTypeId or eventTypeSlug with username, not both",
                ));
                None
            }
            (None, None, _) => {
                if !errors.iter().any(|e| e.field == "eventTypeId") {
                    errors.push(FieldError::new(
                        "eventTypeId",
                        "required, or eventTypeSlug with username",
                    ));
                }
                None
            }
        };
        if q.get("bookingUidToReschedule").is_some() {
            w.push(Warning::no_effect(
                "bookingUidToReschedule",
                NO_RESCHEDULE_EXCLUSION,
            ));
        }
        let names = Names {
            start: "start",
            end: "end",
            format: &["format", "slotFormat"],
        };
        range(&q, &names, event_type, errors)
    }

    fn render(&self, found: &[i64], q: &SlotsRequest, length_min: i64, w: &[Warning]) -> String {
        let mut out =
            String::with_capacity(64 + 16 * 31 + found.len() * if q.range { 80 } else { 42 });
        out.push_str(r#"{"status":"success","data":{"#);
        write_days(&mut out, found, q, length_min, ("start", "end"));
        out.push('}');
        close(&mut out, w);
        out
    }

    fn reservation(
        &self,
        body: Value,
        _: &mut Vec<Warning>,
    ) -> Result<ReservationRequest, ApiError> {
        let b: ReserveIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let start = input::instant("slotStart", &b.slot_start, &mut errors);
        if let Some(d) = b.slot_duration {
            if !(1..=1440).contains(&d) {
                errors.push(FieldError::new("slotDuration", "must be 1 to 1440 minutes"));
            }
        }
        input::check(errors)?;
        Ok(ReservationRequest {
            event_type_id: b.event_type_id,
            start: start.ok_or_else(ApiError::internal)?,
            length: b.slot_duration,
            minutes: b.reservation_duration,
        })
    }

    fn reserved(&self, r: &Reservation) -> Value {
        json!({
            "reservationUid": r.uid,
            "eventTypeId": r.event_type_id,
            "slotStart": iso(r.start),
            "slotEnd": iso(r.end),
            "slotDuration": (r.end.as_second() - r.start.as_second()) / 60,
            "reservationDuration": (r.expires_at.as_second() - r.created_at.as_second() + 30) / 60,
            "reservationUntil": iso(r.expires_at),
        })
    }

    fn released_uid(
        &self,
        path: Option<String>,
        query: Vec<(String, String)>,
    ) -> Result<String, ApiError> {
        Params::new(query, &[], &fields_of(self.family()))?;
        path.ok_or_else(|| ApiError::not_found("reservation"))
    }

    fn released(&self, uid: Uuid) -> Value {
        json!({"status": "success", "data": {"reservationUid": uid}})
    }
}

impl SlotsApi for Legacy {
    fn family(&self) -> &'static Family {
        &SLOTS_LEGACY
    }

    fn query(
        &self,
        params: Vec<(String, String)>,
        w: &mut Vec<Warning>,
    ) -> Result<SlotsRequest, ApiError> {
        let q = Params::new(params, QUERY_LEGACY, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let by_id = id(&q, "eventTypeId", &mut errors);
        let users = q.list("usernameList");
        let event_type = match (by_id, q.get("eventTypeSlug")) {
            (Some(id), _) => Some(EventTypeRef::Id(id)),
            (None, Some(slug)) => match users.as_slice() {
                [one] => Some(EventTypeRef::Slug {
                    slug: slug.to_string(),
                    username: one.to_string(),
                    organization: q.get("orgSlug").map(str::to_string),
                }),
                [] => {
                    errors.push(FieldError::new(
                        "usernameList",
                        "required with eventTypeSlug",
                    ));
                    None
                }
                _ => {
                    errors.push(FieldError::new("usernameList", DYNAMIC));
                    None
                }
            },
            (None, None) => {
                if !errors.iter().any(|e| e.field == "eventTypeId") {
                    errors.push(FieldError::new(
                        "eventTypeId",
                        "required, or eventTypeSlug with usernameList",
                    ));
                }
                None
            }
        };
        if q.get("rescheduleUid").is_some() {
            w.push(Warning::no_effect("rescheduleUid", NO_RESCHEDULE_EXCLUSION));
        }
        if q.get("debug").is_some() {
            w.push(Warning::no_effect("debug", "calops has no debug output"));
        }
        let names = Names {
            start: "startTime",
            end: "endTime",
            format: &["slotFormat"],
        };
        range(&q, &names, event_type, errors)
    }

    fn render(&self, found: &[i64], q: &SlotsRequest, length_min: i64, w: &[Warning]) -> String {
        let mut out =
            String::with_capacity(80 + 16 * 31 + found.len() * if q.range { 90 } else { 42 });
        out.push_str(r#"{"status":"success","data":{"slots":{"#);
        write_days(&mut out, found, q, length_min, ("startTime", "endTime"));
        out.push_str("}}");
        close(&mut out, w);
        out
    }

    fn reservation(
        &self,
        body: Value,
        w: &mut Vec<Warning>,
    ) -> Result<ReservationRequest, ApiError> {
        let b: ReserveL = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        let start = input::instant("slotUtcStartDate", &b.slot_utc_start_date, &mut errors);
        let end = input::instant("slotUtcEndDate", &b.slot_utc_end_date, &mut errors);
        let length = match (start, end) {
            (Some(s), Some(e)) if e > s => Some((e.as_second() - s.as_second()) / 60),
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "slotUtcEndDate",
                    "must be after slotUtcStartDate",
                ));
                None
            }
            _ => None,
        };
        if b.booking_uid.is_some() {
            w.push(Warning::no_effect(
                "bookingUid",
                "a hold is not tied to a booking in calops",
            ));
        }
        input::check(errors)?;
        Ok(ReservationRequest {
            event_type_id: b.event_type_id,
            start: start.ok_or_else(ApiError::internal)?,
            length,
            minutes: None,
        })
    }

    fn reserved(&self, r: &Reservation) -> Value {
        // Cal.com's 2024-04-15 controller answers with the hold's uid itself.
        json!(r.uid)
    }

    fn released_uid(
        &self,
        _: Option<String>,
        query: Vec<(String, String)>,
    ) -> Result<String, ApiError> {
        let q = Params::new(query, &["uid"], &fields_of(self.family()))?;
        q.get("uid").map(str::to_string).ok_or_else(|| {
            ApiError::validation(vec![FieldError::new(
                "uid",
                "required: the uid POST /v2/slots/reserve answered with",
            )])
        })
    }

    fn released(&self, _: Uuid) -> Value {
        json!({"status": "success"})
    }
}

/// `"2026-06-01":[{"start":...}],...` for the slots in `q`'s zone, keys named by `keys`.
fn write_days(
    out: &mut String,
    found: &[i64],
    q: &SlotsRequest,
    length_min: i64,
    keys: (&str, &str),
) {
    let utc = q.tz_name == "UTC" || q.tz_name == "Etc/UTC";
    let mut current: Option<i64> = None;
    let mut starts = LocalClock::new(&q.tz, utc);
    let mut ends = LocalClock::new(&q.tz, utc);
    // Without the range format, 2024-09-04 names the time `start` and the older shape `time`.
    let first = if q.range || keys.0 == "start" {
        keys.0
    } else {
        "time"
    };
    for &t in found {
        let (day, date) = starts.date(t);
        if current != Some(day) {
            if current.is_some() {
                out.push_str("],");
            }
            out.push('"');
            out.push_str(date);
            out.push_str("\":[");
            current = Some(day);
        } else {
            out.push(',');
        }
        out.push_str("{\"");
        out.push_str(first);
        out.push_str("\":\"");
        starts.write(t, out);
        out.push('"');
        if q.range {
            out.push_str(",\"");
            out.push_str(keys.1);
            out.push_str("\":\"");
            ends.write(t + length_min * 60, out);
            out.push('"');
        }
        out.push('}');
    }
    if current.is_some() {
        out.push(']');
    }
}

/// The warnings, if any, and the closing brace of the body.
fn close(out: &mut String, w: &[Warning]) {
    if !w.is_empty() {
        out.push_str(",\"warnings\":");
        out.push_str(&serde_json::to_string(w).unwrap_or_else(|_| "[]".into()));
    }
    out.push('}');
}

/// Local times in one zone as Cal.com formats them (`2026-06-01T09:00:00.000+02:00`, `Z` for
/// UTC). The offset text and the date text are made once per offset and per local date;
/// each time after that is a little arithmetic on its second of the day.
pub struct LocalClock<'a> {
    offsets: slots::Offsets<'a>,
    utc: bool,
    offset: Option<i32>,
    offset_text: String,
    day: Option<i64>,
    date_text: String,
}

impl<'a> LocalClock<'a> {
    pub fn new(tz: &'a TimeZone, utc: bool) -> LocalClock<'a> {
        LocalClock {
            offsets: slots::Offsets::new(tz),
            utc,
            offset: None,
            offset_text: String::with_capacity(6),
            day: None,
            date_text: String::with_capacity(10),
        }
    }

    /// The local date of `t` (days since 1970-01-01) and its second of the day.
    fn locate(&mut self, t: i64) -> (i64, i64) {
        let secs = self.offsets.at(t).seconds();
        if self.offset != Some(secs) {
            self.offset = Some(secs);
            self.offset_text.clear();
            if self.utc {
                self.offset_text.push('Z');
            } else {
                self.offset_text.push(if secs < 0 { '-' } else { '+' });
                let a = secs.unsigned_abs() / 60;
                push2(&mut self.offset_text, a / 60);
                self.offset_text.push(':');
                push2(&mut self.offset_text, a % 60);
            }
        }
        let local = t + i64::from(secs);
        let day = local.div_euclid(86_400);
        if self.day != Some(day) {
            self.day = Some(day);
            self.date_text.clear();
            let d = Timestamp::from_second(day * 86_400)
                .unwrap_or(Timestamp::UNIX_EPOCH)
                .to_zoned(TimeZone::UTC)
                .date();
            push_date(&mut self.date_text, d);
        }
        (day, local.rem_euclid(86_400))
    }

    /// The local date of `t` as `YYYY-MM-DD`, and its days since 1970-01-01.
    pub fn date(&mut self, t: i64) -> (i64, &str) {
        let (day, _) = self.locate(t);
        (day, &self.date_text)
    }

    /// Append `t` in the zone.
    pub fn write(&mut self, t: i64, out: &mut String) {
        let (_, sod) = self.locate(t);
        out.push_str(&self.date_text);
        out.push('T');
        let sod = sod as u32;
        push2(out, sod / 3600);
        out.push(':');
        push2(out, sod / 60 % 60);
        out.push(':');
        push2(out, sod % 60);
        out.push_str(".000");
        out.push_str(&self.offset_text);
    }
}

fn push2(out: &mut String, v: u32) {
    out.push(char::from(b'0' + (v / 10 % 10) as u8));
    out.push(char::from(b'0' + (v % 10) as u8));
}

/// `YYYY-MM-DD` (years 0000-9999, which is all a 31-day window near today can reach).
fn push_date(out: &mut String, d: Date) {
    let y = d.year().clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push('-');
    push2(out, d.month() as u32);
    out.push('-');
    push2(out, d.day() as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn query(pairs: &[(&str, &str)]) -> Result<SlotsRequest, ApiError> {
        Current.query(params(pairs), &mut Vec::new())
    }

    #[test]
    fn dates_are_read_in_the_requested_zone_and_ends_are_inclusive() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let s = parse_instant("2026-06-01", &ny, false).unwrap();
        let e = parse_instant("2026-06-01", &ny, true).unwrap();
        assert_eq!(
            Timestamp::from_second(s).unwrap().to_string(),
            "2026-06-01T04:00:00Z"
        );
        assert_eq!(e - s, 86_400);
        assert_eq!(
            parse_instant("2026-06-01T09:00:00+02:00", &ny, false).unwrap(),
            "2026-06-01T07:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        );
        assert_eq!(
            parse_instant("2026-06-01T09:00:00", &ny, false).unwrap(),
            "2026-06-01T13:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_second()
        );
        assert!(parse_instant("June 1st", &ny, false).is_none());
    }

    #[test]
    fn bad_queries_get_specific_errors() {
        let e = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
            ("timeZone", "Moon/Base"),
        ])
        .unwrap_err();
        assert_eq!(e.code, "invalid_time_zone");
        let e = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-05"),
            ("end", "2026-06-02"),
        ])
        .unwrap_err();
        assert_eq!(e.code, "invalid_range");
        let e = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-07-02"),
        ])
        .unwrap_err();
        assert_eq!(e.code, "range_too_large");
        let e = query(&[("eventTypeId", "x"), ("end", "nope"), ("format", "xml")]).unwrap_err();
        assert_eq!(e.code, "validation_error");
        assert_eq!(e.details["fields"].as_array().unwrap().len(), 4);
        let e = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
            ("startTime", "x"),
        ])
        .unwrap_err();
        assert_eq!(
            e.details["fields"][0]["field"], "startTime",
            "a legacy name is unknown here"
        );
        assert!(query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-07-01")
        ])
        .is_ok());
        let q = query(&[
            ("eventTypeSlug", "intro"),
            ("username", "ann"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
        ])
        .unwrap();
        assert_eq!(
            q.event_type,
            EventTypeRef::Slug {
                slug: "intro".into(),
                username: "ann".into(),
                organization: None
            }
        );
        let q = Legacy
            .query(
                params(&[
                    ("eventTypeId", "1"),
                    ("startTime", "2026-06-01T00:00:00Z"),
                    ("endTime", "2026-06-01T23:59:59Z"),
                    ("slotFormat", "range"),
                ]),
                &mut Vec::new(),
            )
            .unwrap();
        assert!(q.range);
    }

    #[test]
    fn local_clock_matches_the_zone_across_transitions() {
        for zone in [
            "America/New_York",
            "Europe/Berlin",
            "Australia/Sydney",
            "Asia/Kathmandu",
            "UTC",
        ] {
            let tz = TimeZone::get(zone).unwrap();
            let mut clock = LocalClock::new(&tz, zone == "UTC");
            let mut out = String::new();
            for start in ["2026-03-07T00:00:00Z", "2026-10-03T00:00:00Z"] {
                let t0 = start.parse::<Timestamp>().unwrap().as_second();
                for i in 0..(60 * 24 * 4) {
                    let t = t0 + i * 300;
                    out.clear();
                    clock.write(t, &mut out);
                    let z = Timestamp::from_second(t).unwrap().to_zoned(tz.clone());
                    let want = if zone == "UTC" {
                        z.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string()
                    } else {
                        z.strftime("%Y-%m-%dT%H:%M:%S.000%:z").to_string()
                    };
                    assert_eq!(out, want, "{zone} at {t}");
                    assert_eq!(clock.date(t).1, &want[..10]);
                }
            }
        }
    }

    #[test]
    fn rendering_groups_by_local_date_with_offsets() {
        let q = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
            ("timeZone", "Asia/Tokyo"),
            ("format", "range"),
        ])
        .unwrap();
        let t1 = "2026-06-01T14:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second(); // 23:30 JST
        let t2 = "2026-06-01T15:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second(); // 00:00 JST next day
        let body = Current.render(&[t1, t2], &q, 30, &[]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status":"success","data":{
                "2026-06-01":[{"start":"2026-06-01T23:30:00.000+09:00","end":"2026-06-02T00:00:00.000+09:00"}],
                "2026-06-02":[{"start":"2026-06-02T00:00:00.000+09:00","end":"2026-06-02T00:30:00.000+09:00"}]
            }})
        );
        let legacy: serde_json::Value =
            serde_json::from_str(&Legacy.render(&[t1, t2], &q, 30, &[])).unwrap();
        assert_eq!(
            legacy["data"]["slots"]["2026-06-02"][0],
            serde_json::json!({"startTime":"2026-06-02T00:00:00.000+09:00","endTime":"2026-06-02T00:30:00.000+09:00"})
        );
        let q = query(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
        ])
        .unwrap();
        assert_eq!(
            Current.render(&[], &q, 30, &[]),
            r#"{"status":"success","data":{}}"#
        );
        assert_eq!(
            Current.render(&[t1], &q, 30, &[]),
            r#"{"status":"success","data":{"2026-06-01":[{"start":"2026-06-01T14:30:00.000Z"}]}}"#
        );
        assert_eq!(
            Legacy.render(&[t1], &q, 30, &[Warning::new("debug", "x")]),
            r#"{"status":"success","data":{"slots":{"2026-06-01":[{"time":"2026-06-01T14:30:00.000Z"}]}},"warnings":[{"field":"debug","message":"x"}]}"#
        );
    }
}
