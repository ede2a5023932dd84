//! Parsing and checking the Cal.com-shaped inputs of schedules and event types into the
//! types slot computation uses. Every problem is collected, each with the field it is about.

use super::slots::{self, BookingWindow, DateOverride, WeeklyRule};
use super::FieldError;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"days":["Monday"],"startTime":"09:00","endTime":"17:00"}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AvailabilityInput {
    pub days: Vec<String>,
    pub start_time: String,
    pub end_time: String,
}

/// `{"date":"2026-06-01","startTime":"10:00","endTime":"12:00"}`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OverrideInput {
    pub date: String,
    pub start_time: String,
    pub end_time: String,
}

/// An IANA time zone name that the bundled database knows.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    TimeZone::get(name).ok()
}

pub fn check_time_zone(field: &str, name: &str, errors: &mut Vec<FieldError>) -> Option<TimeZone> {
    let tz = time_zone(name);
    if tz.is_none() {
        errors.push(FieldError::new(
            field,
            format!("unknown time zone {name:?}: use an IANA name such as \"Europe/Berlin\""),
        ));
    }
    tz
}

pub fn weekly_rules(input: &[AvailabilityInput], errors: &mut Vec<FieldError>) -> Vec<WeeklyRule> {
    let mut out = Vec::new();
    for (i, a) in input.iter().enumerate() {
        let at = |f: &str| format!("availability[{i}].{f}");
        let mut days = Vec::new();
        if a.days.is_empty() {
            errors.push(FieldError::new(at("days"), "list at least one day"));
        }
        for d in &a.days {
            match slots::parse_weekday(d) {
                Some(w) => days.push(w),
                None => errors.push(FieldError::new(
                    at("days"),
                    format!("{d:?} is not a day: use Monday, Tuesday, ... Sunday"),
                )),
            }
        }
        let start = wall(&at("startTime"), &a.start_time, false, errors);
        let end = wall(&at("endTime"), &a.end_time, true, errors).map(end_of_day);
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                errors.push(FieldError::new(at("endTime"), "must be after startTime"));
            } else {
                out.push(WeeklyRule {
                    days,
                    start: s,
                    end: e,
                });
            }
        }
    }
    out
}

pub fn date_overrides(input: &[OverrideInput], errors: &mut Vec<FieldError>) -> Vec<DateOverride> {
    let mut out = Vec::new();
    for (i, o) in input.iter().enumerate() {
        let at = |f: &str| format!("overrides[{i}].{f}");
        let date = date(&at("date"), &o.date, errors);
        let start = wall(&at("startTime"), &o.start_time, false, errors);
        let end = wall(&at("endTime"), &o.end_time, true, errors).map(end_of_day);
        if let (Some(date), Some(s), Some(e)) = (date, start, end) {
            if e < s {
                errors.push(FieldError::new(
                    at("endTime"),
                    "must not be before startTime (equal times block the date)",
                ));
            } else {
                out.push(DateOverride {
                    date,
                    start: s,
                    end: e,
                });
            }
        }
    }
    out
}

/// An end at 23:59 means the end of the day: Cal.com adds the missing minute to working hours
/// and date overrides that end then (`processWorkingHours`, `processDateItem` in Cal.com's
/// `packages/lib/date-ranges.ts`), since its editors offer 23:59 as the last time.
fn end_of_day(end: u16) -> u16 {
    if end == 23 * 60 + 59 {
        24 * 60
    } else {
        end
    }
}

fn wall(field: &str, s: &str, is_end: bool, errors: &mut Vec<FieldError>) -> Option<u16> {
    let v = slots::parse_wall(s, is_end);
    if v.is_none() {
        let range = if is_end {
            "00:00 to 24:00"
        } else {
            "00:00 to 23:59"
        };
        errors.push(FieldError::new(
            field,
            format!("{s:?} is not a time: use HH:MM, {range}"),
        ));
    }
    v
}

pub fn date(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Date> {
    let d = (s.len() == 10).then(|| s.parse::<Date>().ok()).flatten();
    if d.is_none() {
        errors.push(FieldError::new(
            field,
            format!("{s:?} is not a date: use YYYY-MM-DD"),
        ));
    }
    d
}

/// A booking window in Cal.com's shape:
/// `{"type":"calendarDays"|"businessDays","value":N,"rolling":bool}` or
/// `{"type":"range","value":["YYYY-MM-DD","YYYY-MM-DD"]}`. With `"rolling": true` the N days
/// are dates that still have a slot (Cal.com's rolling window; `businessDays` counts only
/// Monday to Friday, like `periodCountCalendarDays: false`).
pub fn booking_window(v: &Value, errors: &mut Vec<FieldError>) -> Option<BookingWindow> {
    let field = "bookingWindow";
    let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
    let rolling = match v.get("rolling") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(FieldError::new(
                format!("{field}.rolling"),
                "must be true or false",
            ));
            return None;
        }
    };
    if rolling && kind == "range" {
        errors.push(FieldError::new(
            format!("{field}.rolling"),
            "a date range cannot roll: use \"calendarDays\" or \"businessDays\" with \"rolling\": true",
        ));
        return None;
    }
    let days = || {
        v.get("value")
            .and_then(Value::as_u64)
            .filter(|n| (1..=3650).contains(n))
            .map(|n| n as u32)
    };
    match kind {
        "calendarDays" | "businessDays" => match days() {
            Some(n) if rolling => Some(BookingWindow::Rolling {
                days: n,
                calendar_days: kind == "calendarDays",
            }),
            Some(n) if kind == "calendarDays" => Some(BookingWindow::CalendarDays(n)),
            Some(n) => Some(BookingWindow::BusinessDays(n)),
            None => {
                errors.push(FieldError::new(
                    format!("{field}.value"),
                    "must be a whole number of days from 1 to 3650",
                ));
                None
            }
        },
        "range" => {
            let arr = v.get("value").and_then(Value::as_array);
            let pair = arr
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_str()?, a[1].as_str()?)));
            let Some((s, e)) = pair else {
                errors.push(FieldError::new(
                    format!("{field}.value"),
                    "must be [\"YYYY-MM-DD\", \"YYYY-MM-DD\"]",
                ));
                return None;
            };
            let start = date(&format!("{field}.value[0]"), s, errors)?;
            let end = date(&format!("{field}.value[1]"), e, errors)?;
            if end < start {
                errors.push(FieldError::new(
                    format!("{field}.value"),
                    "the range ends before it starts",
                ));
                return None;
            }
            Some(BookingWindow::Range { start, end })
        }
        _ => {
            errors.push(FieldError::new(
                format!("{field}.type"),
                "must be \"calendarDays\", \"businessDays\" or \"range\"",
            ));
            None
        }
    }
}

/// Availability of a stored schedule (validated when it was written).
pub fn stored_availability(
    time_zone_name: &str,
    availability: &Value,
    overrides: &Value,
) -> Result<slots::Availability, String> {
    let tz =
        time_zone(time_zone_name).ok_or_else(|| format!("unknown time zone {time_zone_name:?}"))?;
    let a: Vec<AvailabilityInput> =
        serde_json::from_value(availability.clone()).map_err(|e| e.to_string())?;
    let o: Vec<OverrideInput> =
        serde_json::from_value(overrides.clone()).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    let rules = weekly_rules(&a, &mut errors);
    let overrides = date_overrides(&o, &mut errors);
    if let Some(e) = errors.first() {
        return Err(format!("{}: {}", e.field, e.message));
    }
    Ok(slots::Availability {
        tz,
        rules,
        overrides,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_problems_are_reported_with_their_field() {
        let mut errors = Vec::new();
        let rules = weekly_rules(
            &[
                AvailabilityInput {
                    days: vec!["Monday".into(), "Funday".into()],
                    start_time: "9:00".into(),
                    end_time: "17:00".into(),
                },
                AvailabilityInput {
                    days: vec!["Tuesday".into()],
                    start_time: "12:00".into(),
                    end_time: "11:00".into(),
                },
            ],
            &mut errors,
        );
        assert!(rules.is_empty());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "availability[0].days",
                "availability[0].startTime",
                "availability[1].endTime"
            ]
        );
    }

    #[test]
    fn zero_length_overrides_are_allowed_and_reversed_ones_are_not() {
        let mut errors = Vec::new();
        let o = date_overrides(
            &[
                OverrideInput {
                    date: "2026-06-01".into(),
                    start_time: "00:00".into(),
                    end_time: "00:00".into(),
                },
                OverrideInput {
                    date: "2026-13-01".into(),
                    start_time: "10:00".into(),
                    end_time: "09:00".into(),
                },
            ],
            &mut errors,
        );
        assert_eq!(o.len(), 1);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "overrides[1].date");
    }

    #[test]
    fn booking_windows_parse_in_cal_com_shape() {
        let mut e = Vec::new();
        assert_eq!(
            booking_window(&json!({"type":"businessDays","value":5}), &mut e),
            Some(BookingWindow::BusinessDays(5))
        );
        assert_eq!(
            booking_window(
                &json!({"type":"range","value":["2026-01-01","2026-01-31"]}),
                &mut e
            ),
            Some(BookingWindow::Range {
                start: jiff::civil::date(2026, 1, 1),
                end: jiff::civil::date(2026, 1, 31)
            })
        );
        assert!(e.is_empty());
        assert_eq!(
            booking_window(&json!({"type":"weeks","value":5}), &mut e),
            None
        );
        assert_eq!(
            booking_window(&json!({"type":"calendarDays","value":0}), &mut e),
            None
        );
        assert_eq!(
            booking_window(
                &json!({"type":"calendarDays","value":3,"rolling":true}),
                &mut e
            ),
            Some(BookingWindow::Rolling {
                days: 3,
                calendar_days: true
            })
        );
        assert_eq!(
            booking_window(
                &json!({"type":"businessDays","value":5,"rolling":true}),
                &mut e
            ),
            Some(BookingWindow::Rolling {
                days: 5,
                calendar_days: false
            })
        );
        assert_eq!(e.len(), 2);
        assert_eq!(
            booking_window(
                &json!({"type":"range","value":["2026-01-01","2026-01-31"],"rolling":true}),
                &mut e
            ),
            None
        );
        assert_eq!(
            booking_window(
                &json!({"type":"calendarDays","value":3,"rolling":"yes"}),
                &mut e
            ),
            None
        );
        assert_eq!(e.len(), 4);
        assert_eq!(e[2].field, "bookingWindow.rolling");
    }

    #[test]
    fn an_end_at_23_59_is_the_end_of_the_day() {
        let mut errors = Vec::new();
        let rules = weekly_rules(
            &[AvailabilityInput {
                days: vec!["Monday".into()],
                start_time: "09:00".into(),
                end_time: "23:59".into(),
            }],
            &mut errors,
        );
        assert_eq!((rules[0].start, rules[0].end), (540, 1440));
        let o = date_overrides(
            &[
                OverrideInput {
                    date: "2026-06-01".into(),
                    start_time: "00:00".into(),
                    end_time: "23:59".into(),
                },
                OverrideInput {
                    date: "2026-06-02".into(),
                    start_time: "10:00".into(),
                    end_time: "23:58".into(),
                },
            ],
            &mut errors,
        );
        assert_eq!((o[0].start, o[0].end), (0, 1440));
        assert_eq!(o[1].end, 23 * 60 + 58, "only 23:59 gains the minute");
        assert!(errors.is_empty(), "{errors:?}");
        // So the last half hour of the day is a slot, as in Cal.com.
        let avail = slots::Availability {
            tz: TimeZone::get("Europe/Berlin").unwrap(),
            rules,
            overrides: Vec::new(),
        };
        let rules = slots::Rules {
            length: 30,
            slot_interval: None,
            minimum_notice: 0,
            before_buffer: 0,
            after_buffer: 0,
            window: None,
            per_day_limit: None,
            offset_start: 0,
        };
        let monday = "2026-06-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let q = slots::Query {
            start: monday,
            end: monday + 86_400,
            now: 0,
        };
        let last = slots::compute(&avail, &rules, &[], &q).pop().unwrap();
        assert_eq!(
            jiff::Timestamp::from_second(last).unwrap().to_string(),
            "2026-06-01T21:30:00Z",
            "23:30 in Berlin"
        );
    }

    #[test]
    fn time_zones_must_be_known() {
        assert!(time_zone("Australia/Sydney").is_some());
        assert!(time_zone("Mars/Olympus").is_none());
        assert!(time_zone("").is_none());
    }
}
