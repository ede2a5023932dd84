//! The slot engine as it was before the allocation-free rewrite, kept as a reference (changed
//! since only by the start offset and the grid's restart at each local date, made in both):
//! the property test
//! `rewrite_matches_the_reference` checks that both give the same slots.

use super::super::*;

pub fn compute(avail: &Availability, rules: &Rules, busy: &[Busy], q: &Query) -> Vec<i64> {
    if q.end <= q.start || rules.length <= 0 {
        return Vec::new();
    }
    let tz = &avail.tz;
    let working = working(avail, q.start, q.end);
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
        // Each local date in the range starts its own grid at its first free time.
        let mut day_from = fs;
        while day_from < fe {
            let next_day = wall_to_instant(
                local_date(day_from, tz).tomorrow().unwrap(),
                0,
                tz,
                Disambiguation::Compatible,
            )
            .unwrap();
            let mut base = round_up_local(day_from, grid, &mut offsets);
            while base < next_day {
                let t = base + rules.offset_start * 60;
                if t + len > fe {
                    break;
                }
                if t >= q.start && t < q.end && t >= earliest {
                    let date = offsets.datetime(t).date();
                    let in_window = window.is_none_or(|(lo, hi)| date >= lo && date <= hi);
                    if in_window && !full_days.contains(&date) {
                        out.push(t);
                    }
                }
                base += step;
            }
            day_from = next_day;
        }
    }
    out
}

fn working(avail: &Availability, start: i64, end: i64) -> Vec<(i64, i64)> {
    let tz = &avail.tz;
    let first = local_date(start, tz).yesterday().unwrap_or(Date::MIN);
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
    merge(out)
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
        BookingWindow::Rolling { .. } => panic!("the reference has no rolling windows"),
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
