use super::*;
use jiff::civil::date;
use proptest::prelude::*;

mod reference;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn ts(s: &str) -> i64 {
    s.parse::<Timestamp>().unwrap().as_second()
}

fn iso(t: i64) -> String {
    Timestamp::from_second(t).unwrap().to_string()
}

fn local(t: i64, zone: &str) -> String {
    Timestamp::from_second(t)
        .unwrap()
        .to_zoned(tz(zone))
        .strftime("%Y-%m-%d %H:%M %z")
        .to_string()
}

fn rule(days: &[Weekday], start: &str, end: &str) -> WeeklyRule {
    WeeklyRule {
        days: days.to_vec(),
        start: parse_wall(start, false).unwrap(),
        end: parse_wall(end, true).unwrap(),
    }
}

fn every_day() -> Vec<Weekday> {
    vec![
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ]
}

fn avail(zone: &str, rules: Vec<WeeklyRule>) -> Availability {
    Availability {
        tz: tz(zone),
        rules,
        overrides: vec![],
    }
}

fn rules(length: i64) -> Rules {
    Rules {
        length,
        slot_interval: None,
        minimum_notice: 0,
        before_buffer: 0,
        after_buffer: 0,
        window: None,
        per_day_limit: None,
        offset_start: 0,
    }
}

fn q(start: &str, end: &str) -> Query {
    Query {
        start: ts(start),
        end: ts(end),
        now: ts("2000-01-01T00:00:00Z"),
    }
}

fn locals(v: &[i64], zone: &str) -> Vec<String> {
    v.iter().map(|t| local(*t, zone)).collect()
}

#[test]
fn grid_is_the_largest_listed_divisor_of_the_step() {
    assert_eq!(grid_minutes(60), 60);
    assert_eq!(grid_minutes(120), 60);
    assert_eq!(grid_minutes(90), 30);
    assert_eq!(grid_minutes(45), 15);
    assert_eq!(grid_minutes(40), 20);
    assert_eq!(grid_minutes(25), 5);
    assert_eq!(grid_minutes(50), 10);
    assert_eq!(grid_minutes(7), 1);
}

#[test]
fn a_plain_day_gives_slots_every_length() {
    let a = avail(
        "Europe/Berlin",
        vec![rule(&[Weekday::Monday], "09:00", "12:00")],
    );
    let s = compute(
        &a,
        &rules(60),
        &[],
        &q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Europe/Berlin"),
        [
            "2026-06-01 09:00 +0200",
            "2026-06-01 10:00 +0200",
            "2026-06-01 11:00 +0200"
        ]
    );
}

#[test]
fn offset_start_moves_every_slot_later_as_cal_com_does() {
    // Cal.com (`buildSlotsWithDateRanges`): the first start of each range, rounded to the
    // grid, moves later by offsetStart; later starts follow every step; a slot must still
    // end within the range.
    let a = avail(
        "Europe/Berlin",
        vec![
            rule(&[Weekday::Monday], "09:00", "12:00"),
            rule(&[Weekday::Monday], "14:00", "15:00"),
        ],
    );
    let mut r = rules(60);
    r.offset_start = 10;
    let day = q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z");
    let s = compute(&a, &r, &[], &day);
    assert_eq!(
        locals(&s, "Europe/Berlin"),
        ["2026-06-01 09:10 +0200", "2026-06-01 10:10 +0200"],
        "11:10 would end after 12:00 and 14:10 after 15:00"
    );
    // A booking at 09:10 is judged by the same rules: 09:00 is no slot any more.
    let probe = |t: &str| Query {
        start: ts(t),
        end: ts(t) + 1,
        now: day.now,
    };
    assert_eq!(
        compute(&a, &r, &[], &probe("2026-06-01T07:10:00Z")).len(),
        1
    );
    assert!(compute(&a, &r, &[], &probe("2026-06-01T07:00:00Z")).is_empty());
    // Busy time restarts the grid after it, and the offset applies there too (every 30
    // minutes now, so the grid unit is 30).
    r.slot_interval = Some(30);
    let busy = [Busy {
        start: ts("2026-06-01T07:10:00Z"),
        end: ts("2026-06-01T08:10:00Z"),
        before_buffer: 0,
        after_buffer: 0,
        same_event_type: true,
    }];
    assert_eq!(
        locals(&compute(&a, &r, &busy, &day), "Europe/Berlin"),
        ["2026-06-01 10:40 +0200"],
        "the free range from 10:10 rounds up to 10:30, then moves 10 minutes"
    );
    // The one-statement booking path must not assume the unit lattice.
    assert!(!busy_only_overlaps(&r, &a.tz, ts("2026-06-01T07:10:00Z")));
}

#[test]
fn new_york_spring_forward_moves_a_missing_start_forward_by_the_gap() {
    // 2026-03-08 02:00 EST -> 03:00 EDT; 02:30 does not exist and becomes 03:30 EDT.
    let a = avail(
        "America/New_York",
        vec![rule(&[Weekday::Sunday], "02:30", "05:00")],
    );
    let s = compute(
        &a,
        &rules(30),
        &[],
        &q("2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "America/New_York"),
        [
            "2026-03-08 03:30 -0400",
            "2026-03-08 04:00 -0400",
            "2026-03-08 04:30 -0400"
        ]
    );
    assert_eq!(iso(s[0]), "2026-03-08T07:30:00Z");
}

#[test]
fn new_york_fall_back_takes_earliest_start_and_latest_end() {
    // 2026-11-01 02:00 EDT -> 01:00 EST: 01:00-01:30 happens twice.
    let a = avail(
        "America/New_York",
        vec![rule(&[Weekday::Sunday], "01:00", "01:30")],
    );
    let s = compute(
        &a,
        &rules(30),
        &[],
        &q("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"),
    );
    assert_eq!(
        s.iter().map(|t| iso(*t)).collect::<Vec<_>>(),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z"
        ]
    );
    assert_eq!(
        locals(&s, "America/New_York"),
        [
            "2026-11-01 01:00 -0400",
            "2026-11-01 01:30 -0400",
            "2026-11-01 01:00 -0500"
        ]
    );
}

#[test]
fn new_york_working_day_across_the_transition_has_the_normal_count() {
    let a = avail(
        "America/New_York",
        vec![rule(&every_day(), "09:00", "17:00")],
    );
    for day in ["2026-03-08", "2026-11-01"] {
        let start = format!("{day}T00:00:00-05:00");
        let end = format!("{day}T23:00:00-05:00");
        let s = compute(&a, &rules(60), &[], &q(&start, &end));
        assert_eq!(s.len(), 8, "{day}: {:?}", locals(&s, "America/New_York"));
        assert!(local(s[0], "America/New_York").contains("09:00"));
    }
}

#[test]
fn berlin_spring_forward_gap() {
    // 2026-03-29 02:00 CET -> 03:00 CEST.
    let a = avail(
        "Europe/Berlin",
        vec![rule(&[Weekday::Sunday], "02:00", "04:00")],
    );
    let s = compute(
        &a,
        &rules(30),
        &[],
        &q("2026-03-28T00:00:00Z", "2026-03-30T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Europe/Berlin"),
        ["2026-03-29 03:00 +0200", "2026-03-29 03:30 +0200"]
    );
}

#[test]
fn berlin_fall_back_fold() {
    // 2026-10-25 03:00 CEST -> 02:00 CET: 02:00-03:00 happens twice.
    let a = avail(
        "Europe/Berlin",
        vec![rule(&[Weekday::Sunday], "02:30", "02:45")],
    );
    let s = compute(
        &a,
        &rules(15),
        &[],
        &q("2026-10-24T00:00:00Z", "2026-10-26T00:00:00Z"),
    );
    // From 02:30 CEST (00:30Z) to 02:45 CET (01:45Z).
    assert_eq!(
        s.iter().map(|t| iso(*t)).collect::<Vec<_>>(),
        [
            "2026-10-25T00:30:00Z",
            "2026-10-25T00:45:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:15:00Z",
            "2026-10-25T01:30:00Z"
        ]
    );
}

#[test]
fn sydney_dst_end_and_start() {
    // 2026-04-05 03:00 AEDT -> 02:00 AEST (fold); 2026-10-04 02:00 AEST -> 03:00 AEDT (gap).
    let a = avail(
        "Australia/Sydney",
        vec![rule(&[Weekday::Sunday], "02:00", "03:00")],
    );
    let s = compute(
        &a,
        &rules(60),
        &[],
        &q("2026-04-04T00:00:00Z", "2026-04-06T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Australia/Sydney"),
        ["2026-04-05 02:00 +1100", "2026-04-05 02:00 +1000"]
    );
    let s = compute(
        &a,
        &rules(60),
        &[],
        &q("2026-10-03T00:00:00Z", "2026-10-05T00:00:00Z"),
    );
    // 02:00 moves to 03:00 AEDT, and the end 03:00 AEDT: nothing is left that day.
    assert!(s.is_empty(), "{:?}", locals(&s, "Australia/Sydney"));
    let a = avail(
        "Australia/Sydney",
        vec![rule(&[Weekday::Sunday], "01:00", "04:00")],
    );
    let s = compute(
        &a,
        &rules(60),
        &[],
        &q("2026-10-03T00:00:00Z", "2026-10-05T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Australia/Sydney"),
        ["2026-10-04 01:00 +1000", "2026-10-04 03:00 +1100"]
    );
}

#[test]
fn bookings_are_widened_by_both_types_buffers() {
    let a = avail("UTC", vec![rule(&[Weekday::Monday], "09:00", "12:00")]);
    let booking = Busy {
        start: ts("2026-06-01T10:00:00Z"),
        end: ts("2026-06-01T10:30:00Z"),
        before_buffer: 10,
        after_buffer: 5,
        same_event_type: false,
    };
    let s = compute(
        &a,
        &rules(30),
        &[booking],
        &q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    // Busy 09:50-10:35: 09:00 fits before; after 10:35 the grid restarts at 11:00.
    assert_eq!(
        locals(&s, "UTC"),
        [
            "2026-06-01 09:00 +0000",
            "2026-06-01 11:00 +0000",
            "2026-06-01 11:30 +0000"
        ]
    );
    // This type's own buffers: after-buffer 20 widens the booking's start (09:30),
    // before-buffer 25 widens its end (11:00).
    let mut r = rules(30);
    r.after_buffer = 20;
    r.before_buffer = 25;
    let s = compute(
        &a,
        &r,
        &[booking],
        &q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "UTC"),
        [
            "2026-06-01 09:00 +0000",
            "2026-06-01 11:00 +0000",
            "2026-06-01 11:30 +0000"
        ]
    );
    r.after_buffer = 21;
    let s = compute(
        &a,
        &r,
        &[booking],
        &q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "UTC"),
        ["2026-06-01 11:00 +0000", "2026-06-01 11:30 +0000"]
    );
    r.before_buffer = 26;
    let s = compute(
        &a,
        &r,
        &[booking],
        &q("2026-06-01T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(locals(&s, "UTC"), ["2026-06-01 11:30 +0000"]);
}

#[test]
fn the_grid_restarts_in_each_free_range_in_local_minutes() {
    // Kathmandu is UTC+05:45: alignment is to local, not UTC, minutes.
    let a = avail(
        "Asia/Kathmandu",
        vec![rule(&[Weekday::Monday], "09:00", "13:00")],
    );
    let booking = Busy {
        start: ts("2026-06-01T04:00:00Z"), // 09:45 local
        end: ts("2026-06-01T04:22:00Z"),   // 10:07 local
        before_buffer: 0,
        after_buffer: 0,
        same_event_type: false,
    };
    let mut r = rules(45); // step 45 -> grid 15
    r.slot_interval = None;
    let s = compute(
        &a,
        &r,
        &[booking],
        &q("2026-05-31T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Asia/Kathmandu"),
        [
            "2026-06-01 09:00 +0545",
            "2026-06-01 10:15 +0545",
            "2026-06-01 11:00 +0545",
            "2026-06-01 11:45 +0545"
        ]
    );
    // An interval of 20 with length 30: grid 20, overlapping slots, last one must end by 13:00.
    let mut r = rules(30);
    r.slot_interval = Some(20);
    let s = compute(
        &a,
        &r,
        &[booking],
        &q("2026-05-31T00:00:00Z", "2026-06-02T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "Asia/Kathmandu"),
        [
            "2026-06-01 09:00 +0545",
            "2026-06-01 10:20 +0545",
            "2026-06-01 10:40 +0545",
            "2026-06-01 11:00 +0545",
            "2026-06-01 11:20 +0545",
            "2026-06-01 11:40 +0545",
            "2026-06-01 12:00 +0545",
            "2026-06-01 12:20 +0545"
        ]
    );
}

#[test]
fn overrides_replace_a_date_and_zero_length_blocks_it() {
    let mut a = avail("UTC", vec![rule(&every_day(), "09:00", "11:00")]);
    a.overrides = vec![
        DateOverride {
            date: date(2026, 6, 2),
            start: parse_wall("14:00", false).unwrap(),
            end: parse_wall("15:00", true).unwrap(),
        },
        DateOverride {
            date: date(2026, 6, 3),
            start: 600,
            end: 600,
        },
    ];
    let s = compute(
        &a,
        &rules(60),
        &[],
        &q("2026-06-01T00:00:00Z", "2026-06-05T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "UTC"),
        [
            "2026-06-01 09:00 +0000",
            "2026-06-01 10:00 +0000",
            "2026-06-02 14:00 +0000",
            "2026-06-04 09:00 +0000",
            "2026-06-04 10:00 +0000"
        ]
    );
}

#[test]
fn notice_window_and_daily_limit_remove_slots_last() {
    let a = avail("UTC", vec![rule(&every_day(), "09:00", "11:00")]);
    let mut r = rules(60);
    r.minimum_notice = 90;
    let mut query = q("2026-06-01T00:00:00Z", "2026-06-04T00:00:00Z");
    query.now = ts("2026-06-01T08:00:00Z");
    let s = compute(&a, &r, &[], &query);
    // 09:00 is only 60 minutes away; 10:00 is 120.
    assert_eq!(local(s[0], "UTC"), "2026-06-01 10:00 +0000");
    assert_eq!(s.len(), 5);

    r.minimum_notice = 0;
    r.window = Some(BookingWindow::CalendarDays(2));
    let s = compute(&a, &r, &[], &query);
    assert_eq!(s.len(), 4, "today and tomorrow: {:?}", locals(&s, "UTC"));

    // 2026-06-05 is a Friday: 1 business day from Friday is Friday only; 2 reaches Monday.
    let mut query2 = q("2026-06-05T00:00:00Z", "2026-06-09T00:00:00Z");
    query2.now = ts("2026-06-05T00:00:00Z");
    r.window = Some(BookingWindow::BusinessDays(2));
    let s = compute(&a, &r, &[], &query2);
    let dates: Vec<String> = s
        .iter()
        .map(|t| local(*t, "UTC")[..10].to_string())
        .collect();
    assert_eq!(
        dates,
        [
            "2026-06-05",
            "2026-06-05",
            "2026-06-06",
            "2026-06-06",
            "2026-06-07",
            "2026-06-07",
            "2026-06-08",
            "2026-06-08"
        ]
    );

    r.window = Some(BookingWindow::Range {
        start: date(2026, 6, 2),
        end: date(2026, 6, 2),
    });
    let s = compute(&a, &r, &[], &query);
    assert_eq!(
        locals(&s, "UTC"),
        ["2026-06-02 09:00 +0000", "2026-06-02 10:00 +0000"]
    );

    r.window = None;
    r.per_day_limit = Some(1);
    let other_type = Busy {
        start: ts("2026-06-01T15:00:00Z"),
        end: ts("2026-06-01T16:00:00Z"),
        before_buffer: 0,
        after_buffer: 0,
        same_event_type: false,
    };
    let same_type = Busy {
        same_event_type: true,
        start: ts("2026-06-02T15:00:00Z"),
        end: ts("2026-06-02T16:00:00Z"),
        ..other_type
    };
    let s = compute(&a, &r, &[other_type, same_type], &query);
    let dates: Vec<String> = s
        .iter()
        .map(|t| local(*t, "UTC")[..10].to_string())
        .collect();
    assert_eq!(
        dates,
        ["2026-06-01", "2026-06-01", "2026-06-03", "2026-06-03"]
    );
}

#[test]
fn the_query_window_is_half_open_and_slots_must_end_in_range() {
    let a = avail("UTC", vec![rule(&every_day(), "09:00", "10:50")]);
    let s = compute(
        &a,
        &rules(30),
        &[],
        &q("2026-06-01T09:30:00Z", "2026-06-01T10:30:00Z"),
    );
    assert_eq!(
        locals(&s, "UTC"),
        ["2026-06-01 09:30 +0000", "2026-06-01 10:00 +0000"]
    );
}

#[test]
fn round_the_clock_hours_anchor_the_grid_independently_of_the_query() {
    let a = avail("UTC", vec![rule(&every_day(), "00:00", "24:00")]);
    let r = rules(35); // grid 5: the anchor matters
    let a1 = compute(
        &a,
        &r,
        &[],
        &q("2026-06-10T00:00:00Z", "2026-06-11T00:00:00Z"),
    );
    let a2 = compute(
        &a,
        &r,
        &[],
        &q("2026-06-09T00:00:00Z", "2026-06-11T00:00:00Z"),
    );
    let tail: Vec<i64> = a2
        .into_iter()
        .filter(|t| *t >= ts("2026-06-10T00:00:00Z"))
        .collect();
    assert_eq!(a1, tail);
}

#[test]
fn each_date_starts_its_grid_at_its_first_free_time_when_hours_run_on_across_midnight() {
    // Round-the-clock hours in New York, a 45-minute type, one booking on Monday that ends at
    // 10:10: Monday's later slots follow 10:15, but Tuesday's start at Tuesday's midnight (as
    // Cal.com's do), not on Monday's lattice carried across midnight.
    let a = avail(
        "America/New_York",
        vec![rule(&every_day(), "00:00", "24:00")],
    );
    let booking = Busy {
        start: ts("2026-06-01T14:00:00Z"), // Monday 10:00 local
        end: ts("2026-06-01T14:10:00Z"),   // 10:10 local
        before_buffer: 0,
        after_buffer: 0,
        same_event_type: false,
    };
    let r = rules(45);
    let day = |d: &str, busy: &[Busy]| {
        let s = compute(
            &a,
            &r,
            busy,
            &q(&format!("{d}T04:00:00Z"), &format!("{d}T16:00:00Z")),
        );
        locals(&s, "America/New_York")
    };
    let monday = day("2026-06-01", &[booking]);
    assert_eq!(monday[0], "2026-06-01 00:00 -0400");
    assert!(monday.contains(&"2026-06-01 09:00 -0400".to_string()));
    assert!(monday.contains(&"2026-06-01 10:15 -0400".to_string()));
    assert!(monday.contains(&"2026-06-01 11:00 -0400".to_string()));
    assert!(!monday.contains(&"2026-06-01 09:45 -0400".to_string()));
    let tuesday = day("2026-06-02", &[booking]);
    assert_eq!(tuesday, day("2026-06-02", &[]));
    assert_eq!(tuesday[0], "2026-06-02 00:00 -0400");
    assert!(tuesday.contains(&"2026-06-02 09:00 -0400".to_string()));
    assert_eq!(tuesday.len(), 16); // 00:00 .. 11:15, every 45 minutes

    // An overnight shift (22:00-24:00 then 00:00-02:00): the late slot may run past midnight,
    // and the new date's grid starts at its midnight.
    let a = avail(
        "UTC",
        vec![
            rule(&[Weekday::Monday], "22:00", "24:00"),
            rule(&[Weekday::Tuesday], "00:00", "02:00"),
        ],
    );
    let s = compute(
        &a,
        &r,
        &[],
        &q("2026-06-01T00:00:00Z", "2026-06-03T00:00:00Z"),
    );
    assert_eq!(
        locals(&s, "UTC"),
        [
            "2026-06-01 22:00 +0000",
            "2026-06-01 22:45 +0000",
            "2026-06-01 23:30 +0000",
            "2026-06-02 00:00 +0000",
            "2026-06-02 00:45 +0000"
        ]
    );
}

#[test]
fn walls_parse_strictly() {
    assert_eq!(parse_wall("09:30", false), Some(570));
    assert_eq!(parse_wall("24:00", true), Some(1440));
    assert_eq!(parse_wall("24:00", false), None);
    assert_eq!(parse_wall("9:30", false), None);
    assert_eq!(parse_wall("09:60", false), None);
    assert_eq!(parse_wall("25:00", true), None);
    assert_eq!(format_wall(570), "09:30");
    assert_eq!(parse_weekday("Monday"), Some(Weekday::Monday));
    assert_eq!(parse_weekday("monday"), None);
}

const ZONES: [&str; 5] = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Asia/Kathmandu",
    "UTC",
];

fn arb_rule() -> impl Strategy<Value = WeeklyRule> {
    (
        proptest::collection::vec(0usize..7, 1..4),
        0u16..288,
        1u16..96,
    )
        .prop_map(|(d, s, l)| {
            let days = d.into_iter().map(|i| every_day()[i]).collect();
            let start = s * 5;
            WeeklyRule {
                days,
                start,
                end: (start + l * 5).min(1440),
            }
        })
}

fn arb_busy(base: i64) -> impl Strategy<Value = Busy> {
    (
        0i64..(10 * 24 * 12),
        1i64..36,
        0i64..30,
        0i64..30,
        any::<bool>(),
    )
        .prop_map(move |(off, len, bb, ab, same)| Busy {
            start: base + off * 300,
            end: base + off * 300 + len * 300,
            before_buffer: bb,
            after_buffer: ab,
            same_event_type: same,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn slots_respect_hours_busy_time_and_order(
        zone in 0usize..ZONES.len(),
        rules_v in proptest::collection::vec(arb_rule(), 1..4),
        busy in proptest::collection::vec(arb_busy(ts("2026-10-20T00:00:00Z")), 0..12),
        length in 1i64..25,
        interval in proptest::option::of(1i64..13),
        before in 0i64..20,
        after in 0i64..20,
        start_off in 0i64..(5 * 24),
        span_h in 1i64..(6 * 24),
    ) {
        // The window covers late October and early November: Europe's and New York's fall-back.
        let a = avail(ZONES[zone], rules_v);
        let r = Rules {
            length: length * 5,
            slot_interval: interval.map(|i| i * 5),
            minimum_notice: 0,
            before_buffer: before,
            after_buffer: after,
            window: None,
            per_day_limit: None,
            offset_start: 0,
        };
        let query = Query {
            start: ts("2026-10-20T00:00:00Z") + start_off * 3600,
            end: ts("2026-10-20T00:00:00Z") + start_off * 3600 + span_h * 3600,
            now: 0,
        };
        let s = compute(&a, &r, &busy, &query);
        let len = r.length * 60;
        let working = working_intervals(&a, query.start - 86400 * 3, query.end + 86400 * 3);
        for w in s.windows(2) {
            prop_assert!(w[0] < w[1], "not ascending");
        }
        for &t in &s {
            prop_assert!(t >= query.start && t < query.end, "outside the query");
            prop_assert!(
                working.iter().any(|&(ws, we)| ws <= t && t + len <= we),
                "slot {} outside working hours", iso(t)
            );
            // Independently of the interval code: the start's and end's wall times exist in
            // some rule of their local date, or the slot touches a DST transition.
            for b in &busy {
                let bs = b.start - (b.before_buffer + r.after_buffer) * 60;
                let be = b.end + (b.after_buffer + r.before_buffer) * 60;
                prop_assert!(t + len <= bs || t >= be, "slot {} overlaps busy {}..{}", iso(t), iso(bs), iso(be));
            }
        }
    }

    #[test]
    fn every_slot_start_is_a_wall_time_inside_a_rule(
        zone in 0usize..ZONES.len(),
        rules_v in proptest::collection::vec(arb_rule(), 1..3),
        length in 1i64..13,
    ) {
        // Away from DST transitions (June), a slot's local start and end lie inside one rule.
        let a = avail(ZONES[zone], rules_v.clone());
        let r = rules(length * 5);
        let query = q("2026-06-08T00:00:00Z", "2026-06-15T00:00:00Z");
        let s = compute(&a, &r, &[], &query);
        let tzv = tz(ZONES[zone]);
        for &t in &s {
            let z = Timestamp::from_second(t).unwrap().to_zoned(tzv.clone());
            let m = (z.hour() as i64) * 60 + z.minute() as i64;
            let wd = z.weekday();
            let prev = z.date().yesterday().unwrap().weekday();
            let inside = rules_v.iter().any(|rl| {
                (rl.days.contains(&wd) && i64::from(rl.start) <= m)
                    || (rl.days.contains(&prev) && rl.end == 1440)
            });
            prop_assert!(inside, "slot {} not in any rule", z);
        }
    }
}

#[test]
fn remembered_offsets_match_the_zone_in_any_order() {
    let zone = tz("America/New_York");
    let mut cache = Offsets::new(&zone);
    let start = ts("2026-03-07T00:00:00Z");
    let mut instants: Vec<i64> = (0..(4 * 24 * 4)).map(|i| start + i * 900).collect();
    instants.extend(instants.clone().into_iter().rev());
    for t in instants {
        let want = zone.to_offset(Timestamp::from_second(t).unwrap());
        assert_eq!(cache.at(t), want, "at {}", iso(t));
    }
}

/// Rules that also start at 00:00 and end at 24:00 often, to exercise runs across midnight.
fn arb_rule_edges() -> impl Strategy<Value = WeeklyRule> {
    (
        proptest::collection::vec(0usize..7, 1..5),
        prop_oneof![Just(0u16), 0u16..288],
        prop_oneof![Just(1440u16), 1u16..289],
    )
        .prop_map(|(d, s, e)| {
            let days = d.into_iter().map(|i| every_day()[i]).collect();
            let start = (s * 5).min(1435);
            let end = if e == 1440 {
                1440
            } else {
                (e * 5).max(start + 5).min(1440)
            };
            WeeklyRule { days, start, end }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The allocation-free engine gives exactly the slots of the engine it replaced, with
    /// notice, fixed windows and per-day limits, across DST changes.
    #[test]
    fn rewrite_matches_the_reference(
        zone in 0usize..ZONES.len(),
        rules_v in proptest::collection::vec(arb_rule_edges(), 1..4),
        busy in proptest::collection::vec(arb_busy(ts("2026-10-20T00:00:00Z")), 0..12),
        override_day in proptest::option::of((0i64..12, 0u16..48, 0u16..48)),
        length in 1i64..25,
        interval in proptest::option::of(1i64..13),
        before in 0i64..20,
        after in 0i64..20,
        notice in 0i64..3000,
        window in 0usize..4,
        limit in proptest::option::of(1u32..3),
        offset in proptest::option::of(1i64..90),
        start_off in 0i64..(5 * 24),
        span_h in 1i64..(8 * 24),
    ) {
        let mut a = avail(ZONES[zone], rules_v);
        if let Some((day, s, l)) = override_day {
            let d = date(2026, 10, 20).checked_add(jiff::Span::new().days(day)).unwrap();
            let start = s * 30;
            a.overrides.push(DateOverride { date: d, start, end: (start + l * 30).min(1440) });
        }
        let base = ts("2026-10-20T00:00:00Z");
        let r = Rules {
            length: length * 5,
            slot_interval: interval.map(|i| i * 5),
            minimum_notice: notice,
            before_buffer: before,
            after_buffer: after,
            window: match window {
                0 => None,
                1 => Some(BookingWindow::CalendarDays(4)),
                2 => Some(BookingWindow::BusinessDays(3)),
                _ => Some(BookingWindow::Range { start: date(2026, 10, 22), end: date(2026, 10, 26) }),
            },
            per_day_limit: limit,
            offset_start: offset.unwrap_or(0),
        };
        let query = Query {
            start: base + start_off * 3600,
            end: base + start_off * 3600 + span_h * 3600,
            now: base + 7200,
        };
        prop_assert_eq!(compute(&a, &r, &busy, &query), reference::compute(&a, &r, &busy, &query));
    }
}

fn dates_of(v: &[i64], zone: &str) -> Vec<String> {
    let mut d: Vec<String> = v
        .iter()
        .map(|t| local(*t, zone)[..10].to_string())
        .collect();
    d.dedup();
    d
}

#[test]
fn rolling_windows_count_only_dates_that_have_slots() {
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    let a = avail("UTC", vec![rule(&weekdays, "09:00", "11:00")]);
    let mut r = rules(60);
    // Friday 2026-06-05, early morning.
    let mut query = q("2026-06-05T00:00:00Z", "2026-06-12T00:00:00Z");
    query.now = ts("2026-06-05T06:00:00Z");
    // A plain 2-calendar-day window is Friday and Saturday: only Friday has hours.
    r.window = Some(BookingWindow::CalendarDays(2));
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &query), "UTC"),
        ["2026-06-05"]
    );
    // Rolling: two dates that have slots, so Friday and Monday.
    r.window = Some(BookingWindow::Rolling {
        days: 2,
        calendar_days: true,
    });
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &query), "UTC"),
        ["2026-06-05", "2026-06-08"]
    );
    // A fully booked Monday has no slot and does not count: the window reaches Tuesday.
    let monday = Busy {
        start: ts("2026-06-08T09:00:00Z"),
        end: ts("2026-06-08T11:00:00Z"),
        before_buffer: 0,
        after_buffer: 0,
        same_event_type: false,
    };
    assert_eq!(
        dates_of(&compute(&a, &r, &[monday], &query), "UTC"),
        ["2026-06-05", "2026-06-09"]
    );
    // Notice that empties today: today does not count either.
    r.minimum_notice = 6 * 60;
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &query), "UTC"),
        ["2026-06-08", "2026-06-09"]
    );
    // A query that starts later still counts from today.
    r.minimum_notice = 0;
    let mut later = q("2026-06-09T00:00:00Z", "2026-06-12T00:00:00Z");
    later.now = query.now;
    r.window = Some(BookingWindow::Rolling {
        days: 3,
        calendar_days: true,
    });
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &later), "UTC"),
        ["2026-06-09"]
    );
}

#[test]
fn rolling_business_days_skip_weekends_when_counting_but_keep_their_slots() {
    let a = avail("Europe/Berlin", vec![rule(&every_day(), "09:00", "10:00")]);
    let mut r = rules(60);
    let mut query = q("2026-06-04T22:00:00Z", "2026-06-11T22:00:00Z");
    query.now = ts("2026-06-04T22:30:00Z"); // Friday 00:30 in Berlin
    r.window = Some(BookingWindow::Rolling {
        days: 2,
        calendar_days: false,
    });
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &query), "Europe/Berlin"),
        ["2026-06-05", "2026-06-06", "2026-06-07", "2026-06-08"]
    );
    r.window = Some(BookingWindow::Rolling {
        days: 2,
        calendar_days: true,
    });
    assert_eq!(
        dates_of(&compute(&a, &r, &[], &query), "Europe/Berlin"),
        ["2026-06-05", "2026-06-06"]
    );
    // A host without any hours: the window ends a year out and nothing is bookable.
    let none = avail("Europe/Berlin", vec![]);
    assert!(compute(&none, &r, &[], &query).is_empty());
}

#[test]
fn busy_time_only_overlaps_when_the_step_is_its_own_unit_in_a_whole_offset() {
    let rules = |length: i64, interval: Option<i64>| Rules {
        length,
        slot_interval: interval,
        minimum_notice: 0,
        before_buffer: 0,
        after_buffer: 0,
        window: None,
        per_day_limit: None,
        offset_start: 0,
    };
    let t = ts("2026-06-01T09:00:00Z");
    let ny = tz("America/New_York");
    assert!(busy_only_overlaps(&rules(30, None), &ny, t));
    assert!(busy_only_overlaps(&rules(45, Some(15)), &ny, t));
    assert!(busy_only_overlaps(&rules(60, None), &tz("UTC"), t));
    // 45 minutes: unit 15, so after busy time the grid restarts on a new quarter hour.
    assert!(!busy_only_overlaps(&rules(45, None), &ny, t));
    // +05:45 is not a whole number of half hours.
    assert!(!busy_only_overlaps(
        &rules(30, None),
        &tz("Asia/Kathmandu"),
        t
    ));
    assert!(busy_only_overlaps(
        &rules(15, None),
        &tz("Asia/Kathmandu"),
        t
    ));
    // Lord Howe Island moves by 30 minutes: not a whole hour around its change.
    let lhi = tz("Australia/Lord_Howe");
    assert!(!busy_only_overlaps(
        &rules(60, None),
        &lhi,
        ts("2026-04-05T12:00:00Z")
    ));
    assert!(busy_only_overlaps(
        &rules(30, None),
        &lhi,
        ts("2026-04-05T12:00:00Z")
    ));
    let mut r = rules(30, None);
    r.per_day_limit = Some(2);
    assert!(!busy_only_overlaps(&r, &ny, t));
    r.per_day_limit = None;
    r.window = Some(BookingWindow::Rolling {
        days: 5,
        calendar_days: true,
    });
    assert!(!busy_only_overlaps(&r, &ny, t));
    r.window = Some(BookingWindow::CalendarDays(5));
    assert!(busy_only_overlaps(&r, &ny, t));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    /// Where [`busy_only_overlaps`] holds, a start is a slot with busy time exactly when it is
    /// one without and overlaps no widened busy time: what the exclusion constraint decides.
    #[test]
    fn where_busy_only_overlaps_the_constraint_decides_alone(
        zone in 0usize..ZONES.len(),
        rules_v in proptest::collection::vec(arb_rule_edges(), 1..4),
        busy in proptest::collection::vec(arb_busy(ts("2026-10-20T00:00:00Z")), 0..12),
        length in 1i64..25,
        interval in proptest::option::of(1i64..13),
        before in 0i64..20,
        after in 0i64..20,
        notice in 0i64..3000,
        minute in 0i64..(8 * 24 * 12),
    ) {
        let a = avail(ZONES[zone], rules_v);
        let r = Rules {
            length: length * 5,
            slot_interval: interval.map(|i| i * 5),
            minimum_notice: notice,
            before_buffer: before,
            after_buffer: after,
            window: None,
            per_day_limit: None,
            offset_start: 0,
        };
        let start = ts("2026-10-20T00:00:00Z") + minute * 300;
        prop_assume!(busy_only_overlaps(&r, &a.tz, start));
        let q = Query { start, end: start + 1, now: ts("2026-10-19T00:00:00Z") };
        let free = !compute(&a, &r, &[], &q).is_empty();
        let (s, e) = (start - r.before_buffer * 60, start + (r.length + r.after_buffer) * 60);
        let clear = busy.iter().all(|b| {
            let (bs, be) = (b.start - b.before_buffer * 60, b.end + b.after_buffer * 60);
            be <= s || bs >= e
        });
        prop_assert_eq!(
            !compute(&a, &r, &busy, &q).is_empty(),
            free && clear,
            "start {} (free without busy time: {}, clear of busy time: {})", iso(start), free, clear
        );
    }
}
