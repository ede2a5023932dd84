//! `/v2/schedules` in Cal.com's two shapes:
//!
//! - `2024-06-11` ([`Current`]): `{name, timeZone, isDefault, availability: [{days:
//!   ["Monday"], startTime: "09:00", endTime: "17:00"}], overrides: [{date, startTime,
//!   endTime}]}`, answered in the same shape with `id` and `ownerId`;
//! - `2024-04-15` and no header ([`Legacy`]): create takes `availabilities: [{days: [1, 2],
//!   startTime: "1970-01-01T09:00:00.000Z", endTime: ...}]` (days 0 = Sunday, times as the
//!   UTC clock of a date), update takes `schedule` (seven arrays of `{start, end}`, Sunday
//!   first) and `dateOverrides`; schedules come back as Cal.com's `ScheduleOutput`
//!   (`workingHours` in minutes, `availability` per weekday, `dateOverrides` ranges).
//!
//! calops adds `userId` (the host, for an organization's key; a user's key defaults to its
//! user). Sources: Cal.com's `apps/api/v2/src/ee/schedules/schedules_2024_04_15/` (inputs and
//! `outputs/schedule.output.ts`), `packages/platform/types/schedules/schedules-2024-06-11/`
//! and <https://cal.com/docs/api-reference/v2/schedules>.

use super::super::error::ApiError;
use super::super::input::{self, Warning};
use super::{fields_of, Family, Resource, Shape, SCHEDULES_2024_06_11, SCHEDULES_LEGACY};
use crate::service::domain::hours::{AvailabilityInput, OverrideInput};
use crate::service::domain::slots::parse_weekday;
use crate::service::domain::FieldError;
use crate::service::store::Schedule;
use serde::Deserialize;
use serde_json::{json, Value};

/// What a request sets of a schedule; `None`: not given.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFields {
    pub user_id: Option<i64>,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub is_default: Option<bool>,
    pub availability: Option<Vec<AvailabilityInput>>,
    pub overrides: Option<Vec<OverrideInput>>,
}

/// Parsers and writers of one shape of `/v2/schedules`.
pub trait ScheduleApi: Send + Sync {
    fn family(&self) -> &'static Family;
    fn fields(
        &self,
        body: Value,
        patch: bool,
        w: &mut Vec<Warning>,
    ) -> Result<ScheduleFields, ApiError>;
    fn schedule(&self, s: &Schedule) -> Value;
    /// The `data` of a change, given the default schedule before it.
    fn updated(&self, s: &Schedule, previous_default: Option<i64>) -> Value;
}

pub struct Schedules;

impl Resource for Schedules {
    type Api = dyn ScheduleApi;
    fn api(shape: Shape) -> &'static dyn ScheduleApi {
        match shape {
            Shape::Legacy => &Legacy,
            Shape::Current => &Current,
        }
    }
}

pub struct Current;
pub struct Legacy;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AvailabilityIn {
    days: Vec<String>,
    start_time: String,
    end_time: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverrideIn {
    date: String,
    start_time: String,
    end_time: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CurrentIn {
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    is_default: Option<bool>,
    #[serde(default)]
    availability: Option<Vec<AvailabilityIn>>,
    #[serde(default)]
    overrides: Option<Vec<OverrideIn>>,
}

fn required(patch: bool, fields: &[(&str, bool)], errors: &mut Vec<FieldError>) {
    if !patch {
        for (name, missing) in fields {
            if *missing {
                errors.push(FieldError::new(*name, "required"));
            }
        }
    }
}

impl ScheduleApi for Current {
    fn family(&self) -> &'static Family {
        &SCHEDULES_2024_06_11
    }

    fn fields(
        &self,
        body: Value,
        patch: bool,
        _: &mut Vec<Warning>,
    ) -> Result<ScheduleFields, ApiError> {
        let b: CurrentIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        required(
            patch,
            &[
                ("name", b.name.is_none()),
                ("timeZone", b.time_zone.is_none()),
            ],
            &mut errors,
        );
        input::check(errors)?;
        Ok(ScheduleFields {
            user_id: b.user_id,
            name: b.name,
            time_zone: b.time_zone,
            is_default: b.is_default,
            availability: b.availability.map(|a| {
                a.into_iter()
                    .map(|a| AvailabilityInput {
                        days: a.days,
                        start_time: a.start_time,
                        end_time: a.end_time,
                    })
                    .collect()
            }),
            overrides: b.overrides.map(|o| {
                o.into_iter()
                    .map(|o| OverrideInput {
                        date: o.date,
                        start_time: o.start_time,
                        end_time: o.end_time,
                    })
                    .collect()
            }),
        })
    }

    fn schedule(&self, s: &Schedule) -> Value {
        json!({
            "id": s.id,
            "ownerId": s.user_id,
            "name": s.name,
            "timeZone": s.time_zone,
            "availability": s.availability,
            "isDefault": s.is_default,
            "overrides": s.overrides,
        })
    }

    fn updated(&self, s: &Schedule, _: Option<i64>) -> Value {
        self.schedule(s)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AvailabilityL {
    days: Vec<i64>,
    start_time: String,
    end_time: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RangeL {
    start: String,
    end: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyIn {
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    is_default: Option<bool>,
    /// Create.
    #[serde(default)]
    availabilities: Option<Vec<AvailabilityL>>,
    /// Update: seven arrays, Sunday first.
    #[serde(default)]
    schedule: Option<Vec<Vec<RangeL>>>,
    /// Update.
    #[serde(default)]
    date_overrides: Option<Vec<RangeL>>,
}

/// Cal.com's weekday numbers: 0 is Sunday.
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The date and `HH:MM` of a legacy time (`1970-01-01T09:00:00.000Z`: its UTC clock is the
/// wall time, as Cal.com stores them).
fn clock(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<(String, String)> {
    let parsed = (|| {
        let (date, time) = s.split_once('T')?;
        let hhmmss = time.get(..8)?;
        let mut parts = hhmmss.split(':');
        let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
        let (hn, mn, sn): (u8, u8, u8) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
        (hn <= 23 && mn <= 59 && sn <= 59 && date.len() == 10)
            .then(|| (date.to_string(), format!("{h}:{m}")))
    })();
    if parsed.is_none() {
        errors.push(FieldError::new(
            field,
            format!("{s:?}: use an ISO 8601 time such as 1970-01-01T09:00:00.000Z (its hours and minutes count)"),
        ));
    }
    parsed
}

/// A legacy range as wall times on its start's date: an end at midnight of a later date is
/// 24:00.
fn range(
    field: &str,
    r: &RangeL,
    errors: &mut Vec<FieldError>,
) -> Option<(String, String, String)> {
    let (d1, s) = clock(&format!("{field}.start"), &r.start, errors)?;
    let (d2, e) = clock(&format!("{field}.end"), &r.end, errors)?;
    let e = if e == "00:00" && d2 > d1 {
        "24:00".to_string()
    } else {
        e
    };
    Some((d1, s, e))
}

impl ScheduleApi for Legacy {
    fn family(&self) -> &'static Family {
        &SCHEDULES_LEGACY
    }

    fn fields(
        &self,
        body: Value,
        patch: bool,
        _: &mut Vec<Warning>,
    ) -> Result<ScheduleFields, ApiError> {
        let b: LegacyIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        required(
            patch,
            &[
                ("name", b.name.is_none()),
                ("timeZone", b.time_zone.is_none()),
                ("isDefault", b.is_default.is_none()),
            ],
            &mut errors,
        );
        // Cal.com takes `availabilities` on create and `schedule`/`dateOverrides` on update.
        let wrong = |name: &str, when: &str| {
            FieldError::new(
                name,
                format!(
                    "unknown field when {when} a schedule with {} 2024-04-15",
                    super::HEADER
                ),
            )
        };
        if patch && b.availabilities.is_some() {
            errors.push(wrong("availabilities", "changing"));
        }
        if !patch && b.schedule.is_some() {
            errors.push(wrong("schedule", "creating"));
        }
        if !patch && b.date_overrides.is_some() {
            errors.push(wrong("dateOverrides", "creating"));
        }
        let mut availability = None;
        if let Some(list) = &b.availabilities {
            let mut out = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let at = |f: &str| format!("availabilities[{i}].{f}");
                let mut days = Vec::new();
                for d in &a.days {
                    match usize::try_from(*d).ok().and_then(|d| WEEKDAYS.get(d)) {
                        Some(name) => days.push(name.to_string()),
                        None => errors.push(FieldError::new(
                            at("days"),
                            format!("{d} is not a day: use 0 (Sunday) to 6 (Saturday)"),
                        )),
                    }
                }
                let s = clock(&at("startTime"), &a.start_time, &mut errors);
                let e = clock(&at("endTime"), &a.end_time, &mut errors);
                if let (Some((_, s)), Some((_, e))) = (s, e) {
                    out.push(AvailabilityInput {
                        days,
                        start_time: s,
                        end_time: e,
                    });
                }
            }
            availability = Some(out);
        }
        if let Some(week) = &b.schedule {
            if week.len() != 7 {
                errors.push(FieldError::new(
                    "schedule",
                    "give seven arrays of ranges, Sunday first",
                ));
            }
            let mut out = Vec::new();
            for (day, ranges) in week.iter().enumerate().take(7) {
                for (j, r) in ranges.iter().enumerate() {
                    if let Some((_, s, e)) = range(&format!("schedule[{day}][{j}]"), r, &mut errors)
                    {
                        out.push(AvailabilityInput {
                            days: vec![WEEKDAYS[day].to_string()],
                            start_time: s,
                            end_time: e,
                        });
                    }
                }
            }
            availability = Some(out);
        }
        let overrides = b.date_overrides.as_ref().map(|list| {
            list.iter()
                .enumerate()
                .filter_map(|(i, r)| range(&format!("dateOverrides[{i}]"), r, &mut errors))
                .map(|(date, s, e)| OverrideInput {
                    date,
                    start_time: s,
                    end_time: e,
                })
                .collect()
        });
        input::check(errors)?;
        Ok(ScheduleFields {
            user_id: b.user_id,
            name: b.name,
            time_zone: b.time_zone,
            is_default: b.is_default,
            availability,
            overrides,
        })
    }

    fn schedule(&self, s: &Schedule) -> Value {
        let rules: Vec<AvailabilityInput> =
            serde_json::from_value(s.availability.clone()).unwrap_or_default();
        let overrides: Vec<OverrideInput> =
            serde_json::from_value(s.overrides.clone()).unwrap_or_default();
        let minutes = |t: &str| {
            let (h, m) = t.split_once(':').unwrap_or(("0", "0"));
            h.parse::<i64>().unwrap_or(0) * 60 + m.parse::<i64>().unwrap_or(0)
        };
        // A wall time as Cal.com writes it: the UTC clock of 1970-01-01 (24:00 is the next day).
        let at = |date: &str, t: &str| {
            if t == "24:00" {
                let next = date
                    .parse::<jiff::civil::Date>()
                    .ok()
                    .and_then(|d| d.tomorrow().ok())
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| date.to_string());
                format!("{next}T00:00:00.000Z")
            } else {
                format!("{date}T{t}:00.000Z")
            }
        };
        let numbers = |days: &[String]| -> Vec<i64> {
            days.iter()
                .filter_map(|d| parse_weekday(d))
                .map(|w| i64::from(w.to_sunday_zero_offset()))
                .collect()
        };
        let working_hours: Vec<Value> = rules
            .iter()
            .map(|r| {
                json!({"days": numbers(&r.days), "startTime": minutes(&r.start_time),
                       "endTime": minutes(&r.end_time), "userId": s.user_id})
            })
            .collect();
        let mut items: Vec<Value> = rules
            .iter()
            .map(|r| {
                json!({"userId": s.user_id, "eventTypeId": null, "days": numbers(&r.days),
                       "startTime": at("1970-01-01", &r.start_time),
                       "endTime": at("1970-01-01", &r.end_time),
                       "date": null, "scheduleId": s.id})
            })
            .collect();
        items.extend(overrides.iter().map(|o| {
            json!({"userId": s.user_id, "eventTypeId": null, "days": [],
                   "startTime": at("1970-01-01", &o.start_time),
                   "endTime": at("1970-01-01", &o.end_time),
                   "date": format!("{}T00:00:00.000Z", o.date), "scheduleId": s.id})
        }));
        for (i, item) in items.iter_mut().enumerate() {
            item["id"] = json!(i + 1);
        }
        let week: Vec<Vec<Value>> = WEEKDAYS
            .iter()
            .map(|day| {
                rules
                    .iter()
                    .filter(|r| r.days.iter().any(|d| d == day))
                    .map(|r| {
                        json!({"start": at("1970-01-01", &r.start_time),
                               "end": at("1970-01-01", &r.end_time)})
                    })
                    .collect()
            })
            .collect();
        let date_overrides: Vec<Value> = overrides
            .iter()
            .map(|o| {
                json!({"ranges": [{"start": at(&o.date, &o.start_time), "end": at(&o.date, &o.end_time)}]})
            })
            .collect();
        json!({
            "id": s.id,
            "name": s.name,
            "isManaged": false,
            "workingHours": working_hours,
            "schedule": items,
            "availability": week,
            "timeZone": s.time_zone,
            "dateOverrides": date_overrides,
            "isDefault": s.is_default,
            "isLastSchedule": false,
            "readOnly": false,
        })
    }

    fn updated(&self, s: &Schedule, previous_default: Option<i64>) -> Value {
        let rules: Vec<AvailabilityInput> =
            serde_json::from_value(s.availability.clone()).unwrap_or_default();
        let availability: Vec<Value> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let days: Vec<i64> = r
                    .days
                    .iter()
                    .filter_map(|d| parse_weekday(d))
                    .map(|w| i64::from(w.to_sunday_zero_offset()))
                    .collect();
                let hms = |t: &str| if t == "24:00" { "00:00:00".into() } else { format!("{t}:00") };
                json!({"id": i + 1, "days": days, "startTime": hms(&r.start_time), "endTime": hms(&r.end_time)})
            })
            .collect();
        json!({
            "schedule": {"id": s.id, "name": s.name, "userId": s.user_id, "timeZone": s.time_zone,
                         "availability": availability},
            "isDefault": s.is_default,
            "timeZone": s.time_zone,
            "prevDefaultId": previous_default,
            "currentDefaultId": if s.is_default { Some(s.id) } else { previous_default },
        })
    }
}

/// Cal.com's default hours when a create gives none: Monday to Friday, 09:00 to 17:00.
pub fn default_availability() -> Vec<AvailabilityInput> {
    vec![AvailabilityInput {
        days: [1, 2, 3, 4, 5]
            .iter()
            .map(|&d| WEEKDAYS[d].to_string())
            .collect(),
        start_time: "09:00".into(),
        end_time: "17:00".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_availabilities_become_weekly_hours() {
        let mut w = Vec::new();
        let f = Legacy
            .fields(
                json!({"name": "Work", "timeZone": "Europe/Rome", "isDefault": true,
                       "availabilities": [{"days": [1, 2], "startTime": "1970-01-01T17:00:00.000Z",
                                           "endTime": "1970-01-01T23:59:00.000Z"}]}),
                false,
                &mut w,
            )
            .unwrap();
        assert_eq!(
            f.availability.unwrap(),
            [AvailabilityInput {
                days: vec!["Monday".into(), "Tuesday".into()],
                start_time: "17:00".into(),
                end_time: "23:59".into()
            }]
        );
        let e = Legacy
            .fields(
                json!({"name": "W", "timeZone": "UTC", "isDefault": true, "availability": []}),
                false,
                &mut w,
            )
            .unwrap_err();
        assert_eq!(
            e.details["fields"][0]["field"], "availability",
            "a 2024-06-11 field"
        );
        let f = Legacy
            .fields(
                json!({"schedule": [[], [{"start": "2022-01-01T00:00:00.000Z", "end": "2022-01-02T00:00:00.000Z"}], [], [], [], [], []],
                       "dateOverrides": [{"start": "2022-01-04T09:00:00.000Z", "end": "2022-01-04T15:00:00.000Z"}]}),
                true,
                &mut w,
            )
            .unwrap();
        let a = f.availability.unwrap();
        assert_eq!(
            (
                a[0].days[0].as_str(),
                a[0].start_time.as_str(),
                a[0].end_time.as_str()
            ),
            ("Monday", "00:00", "24:00")
        );
        let o = &f.overrides.unwrap()[0];
        assert_eq!(
            (o.date.as_str(), o.start_time.as_str(), o.end_time.as_str()),
            ("2022-01-04", "09:00", "15:00")
        );
    }
}
