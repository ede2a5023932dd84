//! Bookable slots from availability, busy time and event-type rules. Pure: no I/O, no clock
//! (the caller passes "now").
//!
//! The rules, in order:
//! 1. Each local date (in the host's zone) gets its hours from that date's overrides when it
//!    has any (a zero-length override blocks the date), else from the weekday rules. Wall times
//!    become instants with the zone's real rules: a start or end that does not exist (spring
//!    forward) moves forward by the gap; a repeated one (fall back) takes the earliest instant
//!    for a start and the latest for an end.
//! 2. Busy time is subtracted: each accepted booking of the host, widened before by the booked
//!    type's before-buffer plus this type's after-buffer, and after by the booked type's
//!    after-buffer plus this type's before-buffer.
//! 3. The grid restarts at the start of each free range and at each local midnight inside one,
//!    so each date's slots begin at that date's first free time, as Cal.com's do (hours that
//!    run on across midnight, such as round-the-clock hours, do not carry one date's grid into
//!    the next): the first start is rounded up, in the host's local minutes, to a multiple of
//!    the largest of 60, 30, 20, 15, 10, 5 that divides the step (the slot interval, else the
//!    length), then moved later by the event type's start offset (Cal.com's `offsetStart`);
//!    later starts of that date follow every step; a slot is kept only if it ends within the
//!    free range (a slot may run on past midnight when the hours do).
//! 4. Last, slots go that start before `now + minimum notice`, fall outside the booking window,
//!    or fall on a local date whose per-day limit is already reached.
//!
//! Times are whole seconds since the Unix epoch (`i64`) inside; jiff does the zone arithmetic.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{Disambiguation, TimeZone};
use jiff::Timestamp;

/// Minutes after local midnight, 0..=1440 (1440 only as an end: "24:00").
pub type WallMinute = u16;

/// A weekly availability rule: these weekdays, from `start` to `end` local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyRule {
    pub days: Vec<Weekday>,
    pub start: WallMinute,
    pub end: WallMinute,
}

/// Hours that replace a date's weekday rules; `start == end` blocks the date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateOverride {
    pub date: Date,
    pub start: WallMinute,
    pub end: WallMinute,
}

/// A host's working hours.
#[derive(Debug, Clone)]
pub struct Availability {
    pub tz: TimeZone,
    pub rules: Vec<WeeklyRule>,
    pub overrides: Vec<DateOverride>,
}

/// An accepted booking that occupies the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    pub start: i64,
    pub end: i64,
    /// Buffers of the booked event type, in minutes.
    pub before_buffer: i64,
    pub after_buffer: i64,
    /// Whether it is a booking of the event type being queried (counts for the per-day limit).
    pub same_event_type: bool,
}

/// How far ahead bookings may be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingWindow {
    /// Today (host's zone) and the following days, `days` calendar days in all.
    CalendarDays(u32),
    /// Dates up to and including the `days`-th Monday-to-Friday date counted from today.
    BusinessDays(u32),
    /// Local dates from `start` to `end`, inclusive.
    Range { start: Date, end: Date },
    /// Cal.com's rolling window: today up to the `days`-th date, counted from today, that
    /// still has a slot; only Monday-to-Friday dates count unless `calendar_days`
    /// (`periodCountCalendarDays`). At most [`ROLLING_WINDOW_MAX_DAYS`] ahead.
    Rolling { days: u32, calendar_days: bool },
}

/// The event type's rules, in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    pub length: i64,
    /// The step between starts; `None` means the length.
    pub slot_interval: Option<i64>,
    pub minimum_notice: i64,
    pub before_buffer: i64,
    pub after_buffer: i64,
    pub window: Option<BookingWindow>,
    pub per_day_limit: Option<u32>,
    /// Minutes every free range's first start moves later (Cal.com's `offsetStart`).
    pub offset_start: i64,
}

impl Rules {
    pub fn step(&self) -> i64 {
        self.slot_interval.filter(|s| *s > 0).unwrap_or(self.length)
    }
}

/// The question: slot starts in `[start, end)`, as seen at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    pub start: i64,
    pub end: i64,
    pub now: i64,
}

/// The largest of 60, 30, 20, 15, 10, 5 that divides `step` (minutes); 1 when none does.
pub fn grid_minutes(step: i64) -> i64 {
    [60, 30, 20, 15, 10, 5]
        .into_iter()
        .find(|g| step > 0 && step % g == 0)
        .unwrap_or(1)
}

/// Can busy time only take the slot at `start` away by overlapping it, never by moving the
/// grid? Then a start that is a slot with no busy time at all is a slot exactly when it does not
/// overlap any busy time widened by the buffers, which is what the database's exclusion
/// constraint checks, and a booking needs no busy time read first.
///
/// True when the step is its own grid unit (every local multiple of the unit is on the grid, in
/// whichever free range), there is no start offset, the zone's offset is a whole number of
/// units around `start` (so a change of offset inside a date keeps its steps on the local
/// lattice), and neither a rolling window nor a per-day limit (both count bookings) applies.
pub fn busy_only_overlaps(rules: &Rules, tz: &TimeZone, start: i64) -> bool {
    let step = rules.step();
    let unit = grid_minutes(step);
    let aligned = |t: i64| {
        Timestamp::from_second(t)
            .map(|ts| tz.to_offset(ts).seconds() % (unit as i32 * 60) == 0)
            .unwrap_or(false)
    };
    step == unit
        // An offset moves each free range's first start off the unit lattice.
        && rules.offset_start == 0
        && !matches!(rules.window, Some(BookingWindow::Rolling { .. }))
        && rules.per_day_limit.is_none()
        && aligned(start)
        && aligned(start - 3 * 86_400)
        && aligned(start + 86_400)
}

/// Slot starts (epoch seconds), ascending.
///
/// A [`BookingWindow::Rolling`] window counts bookable dates from today (in the host's zone),
/// so `busy` must then cover the time from now on, not just the query.
pub fn compute(avail: &Availability, rules: &Rules, busy: &[Busy], q: &Query) -> Vec<i64> {
    if q.end <= q.start || rules.length <= 0 {
        return Vec::new();
    }
    let hours = Hours::new(avail);
    let window = match rules.window {
        None => None,
        Some(BookingWindow::Rolling {
            days,
            calendar_days,
        }) => Some(rolling_window_bounds(
            &hours,
            rules,
            busy,
            q,
            days,
            calendar_days,
        )),
        Some(w) => Some(window_bounds(w, q.now, &avail.tz)),
    };
    slots_within(&hours, rules, busy, q, window)
}

/// The most days a rolling window looks ahead for bookable dates (as Cal.com does).
pub const ROLLING_WINDOW_MAX_DAYS: i64 = 365;

/// Slots of `q` whose local date lies in `window` (inclusive), if any.
fn slots_within(
    hours: &Hours,
    rules: &Rules,
    busy: &[Busy],
    q: &Query,
    window: Option<(Date, Date)>,
) -> Vec<i64> {
    let tz = hours.tz;
    // The window's dates as instants, `[from, until)`: local dates never run backwards.
    let (from, until) = match window {
        None => (i64::MIN, i64::MAX),
        Some((lo, hi)) if hi < lo => return Vec::new(),
        Some((lo, hi)) => (
            day_start(lo, tz).unwrap_or(i64::MIN),
            hi.tomorrow()
                .ok()
                .and_then(|d| day_start(d, tz))
                .unwrap_or(i64::MAX),
        ),
    };
    let working = working(hours, q.start, q.end);
    let mut blocked: Vec<(i64, i64)> = busy
        .iter()
        .map(|b| {
            (
                b.start - (b.before_buffer + rules.after_buffer) * 60,
                b.end + (b.after_buffer + rules.before_buffer) * 60,
            )
        })
        .filter(|(s, e)| e > s)
        .collect();
    blocked.sort_unstable();
    let blocked = merge(blocked);
    let free = subtract(&working, &blocked);

    let step = rules.step() * 60;
    let len = rules.length * 60;
    let grid = grid_minutes(rules.step()) * 60;
    // Slots are emitted from `lo` (inclusive) to `hi` (exclusive).
    let lo = q.start.max(q.now + rules.minimum_notice * 60).max(from);
    let hi = q.end.min(until);
    let full_days = per_day_limit_days(rules.per_day_limit, busy, tz);

    let mut out = Vec::with_capacity(free.len() * 8);
    let mut offsets = Offsets::new(tz);
    let offset = rules.offset_start * 60;
    for (fs, fe) in free {
        if fe <= lo {
            continue;
        }
        if fs >= hi {
            break;
        }
        // One pass per local date the free range touches: the date's grid starts at its first
        // free time (the range's start, or the date's midnight when the range began earlier).
        let mut from = fs;
        while from < fe && from < hi {
            let midnight = next_midnight(from, tz);
            let mut base = round_up_local(from, grid, &mut offsets);
            if base + offset < lo {
                // Skip whole steps: the lattice stays where the date's first free time put it.
                base += (lo - base - offset + step - 1) / step * step;
            }
            while base < midnight {
                let t = base + offset;
                if t + len > fe || t >= hi {
                    break;
                }
                if !full_days.iter().any(|&(s, e)| t >= s && t < e) {
                    out.push(t);
                }
                base += step;
            }
            from = midnight;
        }
    }
    out
}

/// The first instant of the local date after `t`'s.
fn next_midnight(t: i64, tz: &TimeZone) -> i64 {
    local_date(t, tz)
        .tomorrow()
        .ok()
        .and_then(|d| day_start(d, tz))
        .filter(|m| *m > t)
        .unwrap_or(i64::MAX)
}

/// The dates a rolling window allows: from today up to the `days`-th date (counted from
/// today) that has a slot, counting only Monday to Friday unless `calendar_days`; at most
/// [`ROLLING_WINDOW_MAX_DAYS`] ahead.
fn rolling_window_bounds(
    hours: &Hours,
    rules: &Rules,
    busy: &[Busy],
    q: &Query,
    days: u32,
    calendar_days: bool,
) -> (Date, Date) {
    let tz = hours.tz;
    let today = local_date(q.now, tz);
    let horizon = horizon_date(today);
    if days == 0 {
        return (today, Date::MIN);
    }
    let from = day_start(today, tz).unwrap_or(q.now);
    let to = horizon
        .tomorrow()
        .ok()
        .and_then(|d| day_start(d, tz))
        .unwrap_or(i64::MAX)
        .min(q.end);
    let probe = Query {
        start: from,
        end: to,
        now: q.now,
    };
    let mut counted = 0;
    let mut last = None;
    let mut offsets = Offsets::new(tz);
    for t in slots_within(hours, rules, busy, &probe, Some((today, horizon))) {
        let d = offsets.datetime(t).date();
        if last == Some(d) {
            continue;
        }
        last = Some(d);
        if !calendar_days && matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            continue;
        }
        counted += 1;
        if counted == days {
            return (today, d);
        }
    }
    (today, horizon)
}

/// The first instant of local date `d`.
fn day_start(d: Date, tz: &TimeZone) -> Option<i64> {
    wall_to_instant(d, 0, tz, Disambiguation::Compatible)
}

/// A host's hours by weekday and by override date, looked up without allocating.
struct Hours<'a> {
    tz: &'a TimeZone,
    /// Monday first.
    weekly: [Vec<(u16, u16)>; 7],
    /// Sorted by date.
    overrides: Vec<(Date, Vec<(u16, u16)>)>,
}

impl<'a> Hours<'a> {
    fn new(avail: &'a Availability) -> Hours<'a> {
        let mut weekly: [Vec<(u16, u16)>; 7] = Default::default();
        for r in &avail.rules {
            for (i, w) in weekly.iter_mut().enumerate() {
                if r.days
                    .iter()
                    .any(|d| d.to_monday_zero_offset() as usize == i)
                {
                    w.push((r.start, r.end));
                }
            }
        }
        let mut overrides: Vec<(Date, Vec<(u16, u16)>)> = Vec::new();
        let mut sorted: Vec<&DateOverride> = avail.overrides.iter().collect();
        sorted.sort_by_key(|o| o.date);
        for o in sorted {
            match overrides.last_mut() {
                Some((d, v)) if *d == o.date => v.push((o.start, o.end)),
                _ => overrides.push((o.date, vec![(o.start, o.end)])),
            }
        }
        Hours {
            tz: &avail.tz,
            weekly,
            overrides,
        }
    }

    /// The date's overrides when it has any, else its weekday's rules.
    fn of(&self, d: Date) -> &[(u16, u16)] {
        match self.overrides.binary_search_by_key(&d, |(od, _)| *od) {
            Ok(i) => &self.overrides[i].1,
            Err(_) => &self.weekly[d.weekday().to_monday_zero_offset() as usize],
        }
    }
}

/// Working intervals (merged, ascending) of the local dates that can hold slots starting in
/// `[start, end)`: one date of margin on each side covers any zone offset and overnight hours.
/// Each date's grid starts at its own first free time, so no earlier date matters.
pub fn working_intervals(avail: &Availability, start: i64, end: i64) -> Vec<(i64, i64)> {
    working(&Hours::new(avail), start, end)
}

fn working(hours: &Hours, start: i64, end: i64) -> Vec<(i64, i64)> {
    let tz = hours.tz;
    let first = local_date(start, tz).yesterday().unwrap_or(Date::MIN);
    let last = local_date(end, tz).tomorrow().unwrap_or(Date::MAX);
    let mut out = Vec::with_capacity(64);
    let mut d = first;
    while d <= last {
        for &(s, e) in hours.of(d) {
            push_wall_interval(&mut out, d, s, e, tz);
        }
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    out.sort_unstable();
    merge(out)
}

fn push_wall_interval(out: &mut Vec<(i64, i64)>, d: Date, start: u16, end: u16, tz: &TimeZone) {
    if end <= start {
        return;
    }
    let s = wall_to_instant(d, start, tz, Disambiguation::Compatible);
    let e = wall_to_instant(d, end, tz, Disambiguation::Later);
    if let (Some(s), Some(e)) = (s, e) {
        if e > s {
            out.push((s, e));
        }
    }
}

/// The instant of local `date` + `minute`. In a gap both `Compatible` and `Later` move forward
/// by the gap; in a fold `Compatible` takes the earlier instant and `Later` the later one.
pub fn wall_to_instant(date: Date, minute: u16, tz: &TimeZone, how: Disambiguation) -> Option<i64> {
    let (date, minute) = if minute >= 1440 {
        (date.tomorrow().ok()?, minute - 1440)
    } else {
        (date, minute)
    };
    let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
    let dt = date.to_datetime(time);
    let z = tz.to_ambiguous_zoned(dt).disambiguate(how).ok()?;
    Some(z.timestamp().as_second())
}

/// A zone's UTC offset remembered until its next transition: instants are looked up mostly in
/// ascending order, so one zone lookup serves a whole DST period.
pub struct Offsets<'a> {
    tz: &'a TimeZone,
    lo: i64,
    hi: i64,
    offset: jiff::tz::Offset,
}

impl<'a> Offsets<'a> {
    pub fn new(tz: &'a TimeZone) -> Offsets<'a> {
        Offsets {
            tz,
            lo: 1,
            hi: 0,
            offset: jiff::tz::Offset::UTC,
        }
    }

    pub fn at(&mut self, t: i64) -> jiff::tz::Offset {
        if t >= self.lo && t < self.hi {
            return self.offset;
        }
        let ts = Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH);
        self.offset = self.tz.to_offset(ts);
        // Valid from t (a transition exactly at t is already in effect) to the next one.
        self.lo = t;
        self.hi = self
            .tz
            .following(ts)
            .next()
            .map(|tr| tr.timestamp().as_second())
            .unwrap_or(i64::MAX);
        self.offset
    }

    /// The local date and time of instant `t`.
    pub fn datetime(&mut self, t: i64) -> jiff::civil::DateTime {
        let ts = Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH);
        self.at(t).to_datetime(ts)
    }
}

/// The host-local date of instant `t`.
pub fn local_date(t: i64, tz: &TimeZone) -> Date {
    let ts = Timestamp::from_second(t).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts).date()
}

/// Round `t` up so that its local second-of-day is a multiple of `grid` seconds.
fn round_up_local(t: i64, grid: i64, offsets: &mut Offsets) -> i64 {
    let offset = offsets.at(t).seconds() as i64;
    let local = t + offset;
    let rem = local.rem_euclid(grid);
    if rem == 0 {
        t
    } else {
        t + (grid - rem)
    }
}

fn window_bounds(w: BookingWindow, now: i64, tz: &TimeZone) -> (Date, Date) {
    let today = local_date(now, tz);
    match w {
        BookingWindow::CalendarDays(n) => {
            let last = today
                .checked_add(jiff::Span::new().days(i64::from(n) - 1))
                .unwrap_or(Date::MAX);
            (today, if n == 0 { Date::MIN } else { last })
        }
        BookingWindow::BusinessDays(n) => {
            if n == 0 {
                return (today, Date::MIN);
            }
            let mut d = today;
            let mut counted = 0;
            loop {
                if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
                    counted += 1;
                    if counted == n {
                        return (today, d);
                    }
                }
                match d.tomorrow() {
                    Ok(n) => d = n,
                    Err(_) => return (today, Date::MAX),
                }
            }
        }
        BookingWindow::Range { start, end } => (start, end),
        // Resolved by `rolling_window_bounds`, which needs the slots themselves.
        BookingWindow::Rolling { .. } => (today, horizon_date(today)),
    }
}

fn horizon_date(today: Date) -> Date {
    today
        .checked_add(jiff::Span::new().days(ROLLING_WINDOW_MAX_DAYS))
        .unwrap_or(Date::MAX)
}

/// The local dates on which the event type's per-day limit is reached, as instant ranges.
fn per_day_limit_days(limit: Option<u32>, busy: &[Busy], tz: &TimeZone) -> Vec<(i64, i64)> {
    let Some(limit) = limit else {
        return Vec::new();
    };
    let mut dates: Vec<Date> = busy
        .iter()
        .filter(|b| b.same_event_type)
        .map(|b| local_date(b.start, tz))
        .collect();
    dates.sort_unstable();
    let mut full = Vec::new();
    let mut i = 0;
    while i < dates.len() {
        let mut j = i;
        while j < dates.len() && dates[j] == dates[i] {
            j += 1;
        }
        if (j - i) as u64 >= u64::from(limit) {
            let d = dates[i];
            let s = day_start(d, tz).unwrap_or(i64::MIN);
            let e = d
                .tomorrow()
                .ok()
                .and_then(|n| day_start(n, tz))
                .unwrap_or(i64::MAX);
            full.push((s, e));
        }
        i = j;
    }
    full
}

/// Merge sorted intervals that overlap or touch.
fn merge(sorted: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(sorted.len());
    for (s, e) in sorted {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a` minus `b`; both sorted and merged.
fn subtract(a: &[(i64, i64)], b: &[(i64, i64)]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(s, e) in a {
        let mut cur = s;
        while j < b.len() && b[j].1 <= cur {
            j += 1;
        }
        let mut k = j;
        while k < b.len() && b[k].0 < e {
            if b[k].0 > cur {
                out.push((cur, b[k].0));
            }
            cur = cur.max(b[k].1);
            k += 1;
        }
        if cur < e {
            out.push((cur, e));
        }
    }
    out
}

/// Parse `"HH:MM"` (00:00 to 23:59; `"24:00"` too when `allow_24` for an end).
pub fn parse_wall(s: &str, allow_24: bool) -> Option<WallMinute> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m > 59 {
        return None;
    }
    match (h, m) {
        (24, 0) if allow_24 => Some(1440),
        (0..=23, _) => Some(h * 60 + m),
        _ => None,
    }
}

/// `"HH:MM"` for a wall minute.
pub fn format_wall(m: WallMinute) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Weekday from its English name (`"Monday"`), as Cal.com spells them.
pub fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "Monday" => Weekday::Monday,
        "Tuesday" => Weekday::Tuesday,
        "Wednesday" => Weekday::Wednesday,
        "Thursday" => Weekday::Thursday,
        "Friday" => Weekday::Friday,
        "Saturday" => Weekday::Saturday,
        "Sunday" => Weekday::Sunday,
        _ => return None,
    })
}

pub fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

#[cfg(test)]
mod tests;
