//! GET /v2/slots: bookable start times, grouped by date in the requested time zone.

use super::error::{ApiError, ApiResult, Query};
use crate::service::domain::hours::{self, time_zone};
use crate::service::domain::instant;
use crate::service::domain::slots::{self, Busy, Rules};
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::collections::HashMap;

/// The longest range one query may cover.
pub const MAX_RANGE_DAYS: i64 = 31;

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

/// The validated query.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotsQuery {
    pub event_type_id: i64,
    pub start: i64,
    pub end: i64,
    pub tz: TimeZone,
    pub tz_name: String,
    pub duration: Option<i64>,
    pub range: bool,
}

/// Check every parameter and report all problems together.
pub fn parse_query(q: &HashMap<String, String>) -> Result<SlotsQuery, ApiError> {
    let mut errors = Vec::new();
    let get = |k: &str| q.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
    let event_type_id = match get("eventTypeId") {
        None => {
            errors.push(FieldError::new("eventTypeId", "required"));
            0
        }
        Some(v) => v.parse::<i64>().unwrap_or_else(|_| {
            errors.push(FieldError::new(
                "eventTypeId",
                format!("{v:?} is not a number"),
            ));
            0
        }),
    };
    let tz_name = get("timeZone").unwrap_or("UTC").to_string();
    let tz = time_zone(&tz_name);
    if tz.is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_time_zone",
            format!("unknown time zone {tz_name:?}: use an IANA name such as \"America/New_York\""),
        ));
    }
    let tz = tz.unwrap_or(TimeZone::UTC);
    let mut when = |k: &str, is_end: bool| match get(k) {
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
    let start = when("start", false);
    let end = when("end", true);
    let duration = match get("duration") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=1440).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new("duration", "must be 1 to 1440 minutes"));
                None
            }
        },
    };
    let range = match get("format") {
        None | Some("time") => false,
        Some("range") => true,
        Some(other) => {
            errors.push(FieldError::new(
                "format",
                format!("{other:?}: use \"time\" or \"range\""),
            ));
            false
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
    if end <= start {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_range",
            "end must be after start",
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
    Ok(SlotsQuery {
        event_type_id,
        start,
        end,
        tz,
        tz_name,
        duration,
        range,
    })
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

/// The response body, written directly (this is the hot path).
pub fn render(slots_v: &[i64], q: &SlotsQuery, length_min: i64) -> String {
    let utc = q.tz_name == "UTC" || q.tz_name == "Etc/UTC";
    let per_slot = if q.range { 80 } else { 42 };
    let mut out = String::with_capacity(64 + 16 * 31 + slots_v.len() * per_slot);
    out.push_str(r#"{"status":"success","data":{"#);
    let mut current: Option<i64> = None;
    let mut starts = LocalClock::new(&q.tz, utc);
    let mut ends = LocalClock::new(&q.tz, utc);
    for &t in slots_v {
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
        out.push_str("{\"start\":\"");
        starts.write(t, &mut out);
        out.push('"');
        if q.range {
            out.push_str(",\"end\":\"");
            ends.write(t + length_min * 60, &mut out);
            out.push('"');
        }
        out.push('}');
    }
    if current.is_some() {
        out.push(']');
    }
    out.push_str("}}");
    out
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let q = parse_query(&params)?;
    let (found, length) = find(&state, org, q.event_type_id, q.start, q.end, q.duration)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "event_type_not_found",
                format!("event type {} not found", q.event_type_id),
            )
        })?;
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        render(&found, &q, length),
    )
        .into_response())
}

/// The starts (Unix seconds) of an event type's free slots in `[start, end)` and the length in
/// minutes they are for (`duration`, or the event type's): what `GET /v2/slots` and the
/// booking pages show, from one engine and one cache. `None` when the organization has no such
/// event type.
pub async fn find(
    state: &AppState,
    org: i64,
    event_type_id: i64,
    start: i64,
    end: i64,
    duration: Option<i64>,
) -> Result<Option<(Vec<i64>, i64)>, ApiError> {
    // Busy time that can touch the range (buffers are at most a day each), and the whole local
    // dates at both ends for the per-day limit.
    let margin = 3 * 86_400;
    let from = Timestamp::from_second(start - margin).unwrap_or(Timestamp::UNIX_EPOCH);
    let to = Timestamp::from_second(end + margin).unwrap_or(Timestamp::MAX);
    let Some(mut ctx) = state
        .store
        .slot_context(org, event_type_id, from, to)
        .await?
    else {
        return Ok(None);
    };
    let busy_from = Timestamp::now() - jiff::SignedDuration::from_secs(margin);
    if rolls(&ctx.event_type) && busy_from < from {
        // A rolling window counts bookable dates from today: busy time from now on counts.
        match state
            .store
            .slot_context(org, event_type_id, busy_from, to)
            .await?
        {
            Some(c) => ctx = c,
            None => return Ok(None),
        }
    }
    let length = duration.unwrap_or(i64::from(ctx.event_type.length_minutes));
    if ctx.schedule.is_none() {
        return Ok(Some((Vec::new(), length)));
    }
    let (avail, rules, busy) = prepare(&ctx, length)?;
    let query = slots::Query {
        start,
        end,
        now: Timestamp::now().as_second(),
    };
    Ok(Some((
        slots::compute(&avail, &rules, &busy, &query),
        length,
    )))
}

/// Does the event type have a rolling booking window (whose slots depend on the busy time
/// from today on, not just the query's)?
pub fn rolls(et: &crate::service::store::EventType) -> bool {
    et.booking_window.as_ref().is_some_and(|w| {
        matches!(
            hours::booking_window(w, &mut Vec::new()),
            Some(slots::BookingWindow::Rolling { .. })
        )
    })
}

/// The host's hours, the event type's rules and the busy time of a slot context, ready for
/// [`slots::compute`]. The context must have a schedule.
pub fn prepare(
    ctx: &crate::service::store::SlotContext,
    length: i64,
) -> Result<(slots::Availability, Rules, Vec<Busy>), ApiError> {
    let et = &ctx.event_type;
    let s = ctx.schedule.as_ref().ok_or_else(ApiError::internal)?;
    let avail =
        hours::stored_availability(&s.time_zone, &s.availability, &s.overrides).map_err(|e| {
            tracing::error!(event_type = et.id, error = %e, "stored schedule is unreadable");
            ApiError::internal()
        })?;
    let mut errors = Vec::new();
    let window = et
        .booking_window
        .as_ref()
        .and_then(|w| hours::booking_window(w, &mut errors));
    let rules = Rules {
        length,
        slot_interval: et.slot_interval.map(i64::from),
        minimum_notice: i64::from(et.minimum_booking_notice),
        before_buffer: i64::from(et.before_event_buffer),
        after_buffer: i64::from(et.after_event_buffer),
        window,
        per_day_limit: et.per_day_limit.and_then(|n| u32::try_from(n).ok()),
    };
    let busy = ctx
        .busy
        .iter()
        .map(|b| Busy {
            start: b.start.as_second(),
            end: b.end.as_second(),
            before_buffer: i64::from(b.before_buffer),
            after_buffer: i64::from(b.after_buffer),
            same_event_type: b.same_event_type,
        })
        .collect();
    Ok((avail, rules, busy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
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
        let e = parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
            ("timeZone", "Moon/Base"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "invalid_time_zone");
        let e = parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-05"),
            ("end", "2026-06-02"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "invalid_range");
        let e = parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-07-02"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "range_too_large");
        let e = parse_query(&params(&[
            ("eventTypeId", "x"),
            ("end", "nope"),
            ("format", "xml"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, "validation_error");
        assert_eq!(e.details["fields"].as_array().unwrap().len(), 4);
        assert!(parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-07-01")
        ]))
        .is_ok());
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
        let q = parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
            ("timeZone", "Asia/Tokyo"),
            ("format", "range"),
        ]))
        .unwrap();
        let t1 = "2026-06-01T14:30:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second(); // 23:30 JST
        let t2 = "2026-06-01T15:00:00Z"
            .parse::<Timestamp>()
            .unwrap()
            .as_second(); // 00:00 JST next day
        let body = render(&[t1, t2], &q, 30);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status":"success","data":{
                "2026-06-01":[{"start":"2026-06-01T23:30:00.000+09:00","end":"2026-06-02T00:00:00.000+09:00"}],
                "2026-06-02":[{"start":"2026-06-02T00:00:00.000+09:00","end":"2026-06-02T00:30:00.000+09:00"}]
            }})
        );
        let q = parse_query(&params(&[
            ("eventTypeId", "1"),
            ("start", "2026-06-01"),
            ("end", "2026-06-02"),
        ]))
        .unwrap();
        assert_eq!(render(&[], &q, 30), r#"{"status":"success","data":{}}"#);
        assert_eq!(
            render(&[t1], &q, 30),
            r#"{"status":"success","data":{"2026-06-01":[{"start":"2026-06-01T14:30:00.000Z"}]}}"#
        );
    }
}
