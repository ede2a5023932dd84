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
//! 3. In each free range the grid restarts: the first start is rounded up, in the host's local
//!    minutes, to a multiple of the largest of 60, 30, 20, 15, 10, 5 that divides the step (the
//!    slot interval, else the length); later starts follow every step; a slot is kept only if
//!    it ends within the range.
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

/// Slot starts (epoch seconds), ascending.
pub fn compute(avail: &Availability, rules: &Rules, busy: &[Busy], q: &Query) -> Vec<i64> {
    if q.end <= q.start || rules.length <= 0 {
        return Vec::new();
    }
    let tz = &avail.tz;
    let (working, cut) = working(avail, q.start, q.end);
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
    let earliest = q.now + rules.minimum_notice * 60;
    let window = rules.window.map(|w| window_bounds(w, q.now, tz));
    let full_days = per_day_limit_dates(rules.per_day_limit, busy, tz);

    let mut out = Vec::new();
    let mut offsets = Offsets::new(tz);
    for (fs, fe) in free {
        let mut t = if Some(fs) == cut {
            // Hours without a beginning: one absolute lattice of steps, whatever the query.
            fs + (step - fs.rem_euclid(step)) % step
        } else {
            round_up_local(fs, grid, &mut offsets)
        };
        while t + len <= fe {
            if t >= q.start && t < q.end && t >= earliest {
                let date = offsets.datetime(t).date();
                let in_window = window.is_none_or(|(lo, hi)| date >= lo && date <= hi);
                if in_window && !full_days.contains(&date) {
                    out.push(t);
                }
            }
            if t >= q.end {
                break;
            }
            t += step;
        }
    }
    out
}

/// Working intervals (merged, ascending) of the local dates that can hold slots starting in
/// `[start, end)`: one date of margin on each side covers any zone offset and overnight hours.
pub fn working_intervals(avail: &Availability, start: i64, end: i64) -> Vec<(i64, i64)> {
    working(avail, start, end).0
}

/// Days of hours that run on without a break are followed back at most this far.
const MAX_RUN_BACK_DAYS: u32 = 400;

/// Working intervals, and the start instant when a run of round-the-clock hours was cut at
/// [`MAX_RUN_BACK_DAYS`] (such a range has no natural start to anchor a grid on).
fn working(avail: &Availability, start: i64, end: i64) -> (Vec<(i64, i64)>, Option<i64>) {
    let tz = &avail.tz;
    let mut first = local_date(start, tz).yesterday().unwrap_or(Date::MIN);
    // A free range that runs on from earlier days (hours up to 24:00 followed by hours from
    // 00:00) anchors its grid where it really starts, whatever the query's start.
    let mut back = 0;
    while back < MAX_RUN_BACK_DAYS && starts_at_midnight(avail, first) {
        match first.yesterday() {
            Ok(p) => first = p,
            Err(_) => break,
        }
        back += 1;
    }
    let last = local_date(end, tz).tomorrow().unwrap_or(Date::MAX);
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        for (s, e) in hours_of(avail, d) {
            push_wall_interval(&mut out, d, s, e, tz);
        }
        match d.tomorrow() {
            Ok(n) => d = n,
            Err(_) => break,
        }
    }
    out.sort_unstable();
    let cut = (back == MAX_RUN_BACK_DAYS)
        .then(|| wall_to_instant(first, 0, tz, Disambiguation::Compatible))
        .flatten();
    (merge(out), cut)
}

fn hours_of(avail: &Availability, d: Date) -> Vec<(u16, u16)> {
    let overrides: Vec<(u16, u16)> = avail
        .overrides
        .iter()
        .filter(|o| o.date == d)
        .map(|o| (o.start, o.end))
        .collect();
    if !overrides.is_empty() {
        return overrides;
    }
    let wd = d.weekday();
    avail
        .rules
        .iter()
        .filter(|r| r.days.contains(&wd))
        .map(|r| (r.start, r.end))
        .collect()
}

fn starts_at_midnight(avail: &Availability, d: Date) -> bool {
    hours_of(avail, d).iter().any(|&(s, e)| s == 0 && e > 0)
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
    }
}

fn per_day_limit_dates(limit: Option<u32>, busy: &[Busy], tz: &TimeZone) -> Vec<Date> {
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
            full.push(dates[i]);
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
