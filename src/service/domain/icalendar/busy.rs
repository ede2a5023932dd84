//! Busy intervals of calendar object resources over a window.
//!
//! Per `UID`: the master event's instances are `DTSTART` itself, its `RRULE` expanded (the
//! `rrule` crate, run on wall-clock times so that `BYHOUR` and friends mean local time as RFC
//! 5545 says; `UNTIL` in UTC is moved to the event's wall clock first), and its `RDATE`s
//! (dates, date-times or periods); `EXDATE`s remove instances, and each `RECURRENCE-ID`
//! override replaces the instance it names with its own times, status and transparency.
//! Wall-clock times become instants in the event's zone (see [`super::zones`]) with RFC 5545's
//! rule for gaps and folds (jiff's "compatible": a time skipped by spring-forward moves forward
//! by the gap, a repeated one takes the first). Floating times and all-day events are in the
//! host's zone. An instance lasts the event's exact duration (`DTEND - DTSTART`), or its
//! `DURATION` (days nominal, the rest exact); all-day events last whole local days.
//! `STATUS:CANCELLED` and `TRANSP:TRANSPARENT` block nothing.

use super::{parse, zones, Component, ParseError, Property};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// One stretch of busy time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interval {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The most instances one object may contribute to one window (a rule firing every minute
/// would otherwise make a month of rows).
pub const MAX_INSTANCES: usize = 5_000;

/// What the events of one calendar object mean over a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectBusy {
    /// The `UID`s of its events.
    pub uids: Vec<String>,
    pub intervals: Vec<Interval>,
    /// Things read with a fallback (an unknown zone, a rule cut short), for logs.
    pub warnings: Vec<String>,
}

/// The time a `DTSTART`-like value names: a wall-clock time in a zone.
#[derive(Debug, Clone)]
struct Moment {
    local: DateTime,
    tz: TimeZone,
    all_day: bool,
}

impl Moment {
    fn instant(&self) -> Timestamp {
        instant(&self.tz, self.local)
    }
}

fn instant(tz: &TimeZone, local: DateTime) -> Timestamp {
    tz.to_ambiguous_timestamp(local)
        .compatible()
        .unwrap_or_else(|_| {
            local
                .to_zoned(TimeZone::UTC)
                .map(|z| z.timestamp())
                .unwrap_or_default()
        })
}

/// How long an instance lasts: whole local days, then exact seconds.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    days: i64,
    secs: i64,
}

/// Reading one calendar: its zones and the host's.
struct Ctx<'a> {
    host: &'a TimeZone,
    vtimezones: Vec<&'a Component>,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn zone(&mut self, tzid: Option<&str>) -> TimeZone {
        match tzid {
            None => self.host.clone(),
            Some(id) => zones::resolve(id, &self.vtimezones).unwrap_or_else(|| {
                self.warnings
                    .push(format!("unknown time zone {id:?}: read in the host's zone"));
                self.host.clone()
            }),
        }
    }

    /// One date or date-time value of `prop` (`text` is one of its comma-separated values).
    fn moment(&mut self, prop: &Property, text: &str) -> Result<Moment, String> {
        let text = text.trim();
        let is_date = prop.param("VALUE") == Some("DATE") || text.len() == 8;
        if is_date {
            let d = Date::strptime("%Y%m%d", text)
                .map_err(|_| format!("{}: {text:?} is not a date", prop.name))?;
            return Ok(Moment {
                local: d.to_datetime(jiff::civil::Time::midnight()),
                tz: self.host.clone(),
                all_day: true,
            });
        }
        let (body, utc) = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
            Some(b) => (b, true),
            None => (text, false),
        };
        let local = DateTime::strptime("%Y%m%dT%H%M%S", body)
            .map_err(|_| format!("{}: {text:?} is not a date-time", prop.name))?;
        let tz = if utc {
            TimeZone::UTC
        } else {
            self.zone(prop.param("TZID"))
        };
        Ok(Moment {
            local,
            tz,
            all_day: false,
        })
    }

    fn first(&mut self, c: &Component, name: &str) -> Result<Option<Moment>, String> {
        match c.prop(name) {
            None => Ok(None),
            Some(p) => self.moment(p, &p.value).map(Some),
        }
    }
}

/// `P1W`, `PT1H30M`, `-P2D`, `P1DT12H` -> days and seconds.
fn duration(text: &str) -> Option<Span> {
    let t = text.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let t = t.strip_prefix('P')?;
    let (mut span, mut num, mut in_time) = (Span::default(), String::new(), false);
    for ch in t.chars() {
        match ch {
            'T' => in_time = true,
            '0'..='9' => num.push(ch),
            _ => {
                let n: i64 = num.parse().ok()?;
                num.clear();
                match (ch, in_time) {
                    ('W', false) => span.days += 7 * n,
                    ('D', false) => span.days += n,
                    ('H', true) => span.secs += 3600 * n,
                    ('M', true) => span.secs += 60 * n,
                    ('S', true) => span.secs += n,
                    _ => return None,
                }
            }
        }
    }
    if !num.is_empty() {
        return None;
    }
    if neg {
        span.days = -span.days;
        span.secs = -span.secs;
    }
    Some(span)
}

/// One instance's end from its start.
fn end_of(start: &Moment, span: Span) -> Timestamp {
    let local = start
        .local
        .checked_add(jiff::Span::new().days(span.days))
        .unwrap_or(start.local);
    instant(&start.tz, local) + SignedDuration::from_secs(span.secs)
}

/// How long the event's instances last.
fn span_of(ctx: &mut Ctx<'_>, ev: &Component, start: &Moment) -> Result<Span, String> {
    if let Some(end) = ctx.first(ev, "DTEND")? {
        if start.all_day {
            let days = (end.local.date() - start.local.date()).get_days();
            return Ok(Span {
                days: i64::from(days),
                secs: 0,
            });
        }
        let secs = end.instant().as_second() - start.instant().as_second();
        return Ok(Span { days: 0, secs });
    }
    if let Some(d) = ev.prop("DURATION") {
        return duration(&d.value)
            .ok_or_else(|| format!("DURATION {:?} is not a duration", d.value));
    }
    Ok(if start.all_day {
        Span { days: 1, secs: 0 }
    } else {
        Span::default()
    })
}

fn blocks(ev: &Component) -> bool {
    let val = |n: &str| ev.prop(n).map(|p| p.value.trim().to_ascii_uppercase());
    val("STATUS").as_deref() != Some("CANCELLED") && val("TRANSP").as_deref() != Some("TRANSPARENT")
}

fn chrono_naive(d: DateTime) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDate::from_ymd_opt(i32::from(d.year()), d.month() as u32, d.day() as u32)?
        .and_hms_opt(d.hour() as u32, d.minute() as u32, d.second() as u32)
}

fn from_chrono(n: chrono::NaiveDateTime) -> Option<DateTime> {
    use chrono::{Datelike, Timelike};
    jiff::civil::DateTime::new(
        i16::try_from(n.year()).ok()?,
        n.month() as i8,
        n.day() as i8,
        n.hour() as i8,
        n.minute() as i8,
        n.second() as i8,
        0,
    )
    .ok()
}

/// `rule` with `UNTIL` as a wall-clock time of `start`'s zone written as UTC (the expansion
/// runs on wall-clock times), and a date `UNTIL` as the end of that day.
fn wall_clock_rule(rule: &str, start: &Moment) -> String {
    rule.trim()
        .split(';')
        .map(|part| {
            let Some(v) = part
                .strip_prefix("UNTIL=")
                .or_else(|| part.strip_prefix("until="))
            else {
                return part.to_string();
            };
            let v = v.trim();
            let wall = if v.len() == 8 {
                format!("{v}T235959")
            } else if let Some(u) = v.strip_suffix('Z') {
                match DateTime::strptime("%Y%m%dT%H%M%S", u) {
                    Ok(dt) if !start.all_day => {
                        let ts = instant(&TimeZone::UTC, dt);
                        start
                            .tz
                            .to_datetime(ts)
                            .strftime("%Y%m%dT%H%M%S")
                            .to_string()
                    }
                    _ => u.to_string(),
                }
            } else {
                v.to_string()
            };
            format!("UNTIL={wall}Z")
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Wall-clock starts of `rule` from `start` within `[lo, hi]` (wall-clock bounds).
fn expand_rule(
    rule: &str,
    start: &Moment,
    lo: DateTime,
    hi: DateTime,
) -> Result<(Vec<DateTime>, bool), String> {
    use chrono::TimeZone as _;
    let utc = rrule::Tz::UTC;
    let naive = |d: DateTime| {
        chrono_naive(d)
            .map(|n| utc.from_utc_datetime(&n))
            .ok_or_else(|| format!("{d} is out of range"))
    };
    let parsed: rrule::RRule<rrule::Unvalidated> = wall_clock_rule(rule, start)
        .parse()
        .map_err(|e| format!("RRULE {rule:?}: {e}"))?;
    let set = parsed
        .build(naive(start.local)?)
        .map_err(|e| format!("RRULE {rule:?}: {e}"))?
        .after(naive(lo)?)
        .before(naive(hi)?);
    let result = set.all(MAX_INSTANCES as u16);
    let starts = result
        .dates
        .iter()
        .filter_map(|d| from_chrono(d.naive_utc()))
        .collect();
    Ok((starts, result.limited))
}

/// The instants the event's `EXDATE`s remove (a date of a timed event: that date at the
/// event's time).
fn exdates(ctx: &mut Ctx<'_>, ev: &Component) -> Result<Vec<Timestamp>, String> {
    let start = ctx
        .first(ev, "DTSTART")?
        .ok_or("an event without DTSTART")?;
    let mut excluded = Vec::new();
    for p in ev.props_named("EXDATE") {
        for v in p.value.split(',') {
            let mut m = ctx.moment(p, v)?;
            if m.all_day && !start.all_day {
                m.local = m.local.date().to_datetime(start.local.time());
                m.tz = start.tz.clone();
            }
            excluded.push(m.instant());
        }
    }
    Ok(excluded)
}

/// An instance: where it starts (its recurrence id) and its busy interval.
#[derive(Debug, Clone, Copy)]
struct Instance {
    id: Timestamp,
    busy: Interval,
}

/// The master event's instances over `[from, to)` widened by a margin.
fn instances(
    ctx: &mut Ctx<'_>,
    ev: &Component,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<Instance>, String> {
    let start = ctx
        .first(ev, "DTSTART")?
        .ok_or("an event without DTSTART")?;
    let span = span_of(ctx, ev, &start)?;
    let one = |m: &Moment| Instance {
        id: m.instant(),
        busy: Interval {
            start: m.instant(),
            end: end_of(m, span),
        },
    };
    let mut out = vec![one(&start)];
    // Wall-clock bounds: two days of slack for zone offsets, and the instance's length.
    let reach = span.days.abs() + span.secs.abs() / 86_400 + 2;
    let lo = start.tz.to_datetime(from) - jiff::Span::new().days(reach);
    let hi = start.tz.to_datetime(to) + jiff::Span::new().days(2);
    for rule in ev.props_named("RRULE") {
        let (starts, limited) = expand_rule(&rule.value, &start, lo, hi)?;
        if limited {
            ctx.warnings.push(format!(
                "RRULE {:?} has more than {MAX_INSTANCES} instances in the window; the rest are left out",
                rule.value
            ));
        }
        out.extend(starts.into_iter().map(|local| {
            one(&Moment {
                local,
                ..start.clone()
            })
        }));
    }
    for p in ev.props_named("RDATE") {
        for v in p.value.split(',') {
            if p.param("VALUE") == Some("PERIOD") || v.contains('/') {
                let (a, b) = v.split_once('/').ok_or("RDATE period without '/'")?;
                let s = ctx.moment(p, a)?;
                let end = match duration(b) {
                    Some(d) => end_of(&s, d),
                    None => ctx.moment(p, b)?.instant(),
                };
                out.push(Instance {
                    id: s.instant(),
                    busy: Interval {
                        start: s.instant(),
                        end,
                    },
                });
            } else {
                let mut m = ctx.moment(p, v)?;
                if m.all_day && !start.all_day {
                    // A date RDATE of a timed event: that date at the event's time.
                    m.local = m.local.date().to_datetime(start.local.time());
                    m.tz = start.tz.clone();
                    m.all_day = false;
                }
                out.push(one(&m));
            }
        }
    }
    let excluded = exdates(ctx, ev)?;
    out.sort_by_key(|i| i.id);
    out.dedup_by_key(|i| i.id);
    out.retain(|i| !excluded.contains(&i.id));
    Ok(out)
}

/// Busy intervals of every event in `text` (one calendar object resource, normally) that
/// overlap `[from, to)`, in the host's zone `host` where the object names none; events whose
/// `UID` `skip` accepts are left out (the bookings calops wrote itself).
pub fn object_busy(
    text: &str,
    host: &TimeZone,
    from: Timestamp,
    to: Timestamp,
    skip: &dyn Fn(&str) -> bool,
) -> Result<ObjectBusy, ParseError> {
    let cals = parse(text)?;
    let mut out = ObjectBusy::default();
    for cal in &cals {
        let mut ctx = Ctx {
            host,
            vtimezones: cal.children_named("VTIMEZONE").collect(),
            warnings: Vec::new(),
        };
        let events: Vec<&Component> = cal.children_named("VEVENT").collect();
        let mut uids: Vec<&str> = events
            .iter()
            .map(|e| e.prop("UID").map(|p| p.value.trim()).unwrap_or(""))
            .collect();
        uids.sort_unstable();
        uids.dedup();
        for uid in uids {
            out.uids.push(uid.to_string());
            if skip(uid) {
                continue;
            }
            let of_uid = || {
                events
                    .iter()
                    .copied()
                    .filter(move |e| e.prop("UID").map(|p| p.value.trim()).unwrap_or("") == uid)
            };
            let mut busy: Vec<Interval> = Vec::new();
            let mut overridden: Vec<Timestamp> = Vec::new();
            // An instance the master excludes stays excluded, overridden or not.
            let mut excluded = Vec::new();
            for master in of_uid().filter(|e| e.prop("RECURRENCE-ID").is_none()) {
                match exdates(&mut ctx, master) {
                    Ok(x) => excluded.extend(x),
                    Err(e) => ctx.warnings.push(format!("UID {uid:?}: {e}")),
                }
            }
            for ov in of_uid().filter(|e| e.prop("RECURRENCE-ID").is_some()) {
                let read = (|| -> Result<Option<Interval>, String> {
                    let rid = ctx.first(ov, "RECURRENCE-ID")?.ok_or("no RECURRENCE-ID")?;
                    overridden.push(rid.instant());
                    if excluded.contains(&rid.instant()) {
                        return Ok(None);
                    }
                    let inst = instances(&mut ctx, ov, from, to)?;
                    Ok(inst.first().filter(|_| blocks(ov)).map(|i| i.busy))
                })();
                match read {
                    Ok(i) => busy.extend(i),
                    Err(e) => ctx.warnings.push(format!("UID {uid:?}: {e}")),
                }
            }
            for master in of_uid().filter(|e| e.prop("RECURRENCE-ID").is_none()) {
                if !blocks(master) {
                    continue;
                }
                match instances(&mut ctx, master, from, to) {
                    Ok(inst) => busy.extend(
                        inst.into_iter()
                            .filter(|i| !overridden.contains(&i.id))
                            .map(|i| i.busy),
                    ),
                    Err(e) => ctx.warnings.push(format!("UID {uid:?}: {e}")),
                }
            }
            out.intervals.extend(
                busy.into_iter()
                    .filter(|i| i.start < to && i.end > from && i.end > i.start),
            );
        }
        out.warnings.append(&mut ctx.warnings);
    }
    out.intervals.sort();
    out.intervals.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests;
