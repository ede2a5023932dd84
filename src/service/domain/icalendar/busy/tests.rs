use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn berlin() -> TimeZone {
    jiff::tz::db().get("Europe/Berlin").unwrap()
}

fn cal(events: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
}

fn busy(text: &str, host: &TimeZone, from: &str, to: &str) -> Vec<(String, String)> {
    object_busy(text, host, ts(from), ts(to), &|_| false)
        .unwrap()
        .intervals
        .iter()
        .map(|i| (i.start.to_string(), i.end.to_string()))
        .collect()
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

const WEEKLY: &str = "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260316T090000\r\nDTEND;TZID=Europe/Berlin:20260316T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nEND:VEVENT\r\n";

#[test]
fn a_weekly_berlin_event_keeps_its_wall_clock_time_across_the_spring_change() {
    // 29 March 2026: Berlin moves from +01:00 to +02:00.
    let got = busy(
        &cal(WEEKLY),
        &TimeZone::UTC,
        "2026-03-20T00:00:00Z",
        "2026-04-07T00:00:00Z",
    );
    assert_eq!(
        got,
        pairs(&[
            ("2026-03-23T08:00:00Z", "2026-03-23T09:00:00Z"),
            ("2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z"),
            ("2026-04-06T07:00:00Z", "2026-04-06T08:00:00Z"),
        ])
    );
}

#[test]
fn exdates_and_overrides_replace_the_instances_they_name() {
    let text = cal(&format!(
        "{}{}",
        WEEKLY.replace(
            "RRULE:FREQ=WEEKLY;BYDAY=MO\r\n",
            "RRULE:FREQ=WEEKLY;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20260323T090000\r\n"
        ),
        "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260330T090000\r\nDTSTART;TZID=Europe/Berlin:20260331T140000\r\nDTEND;TZID=Europe/Berlin:20260331T150000\r\nEND:VEVENT\r\n"
    ));
    let got = busy(
        &text,
        &TimeZone::UTC,
        "2026-03-20T00:00:00Z",
        "2026-04-07T00:00:00Z",
    );
    assert_eq!(
        got,
        pairs(&[
            ("2026-03-31T12:00:00Z", "2026-03-31T13:00:00Z"),
            ("2026-04-06T07:00:00Z", "2026-04-06T08:00:00Z"),
        ])
    );
    // A cancelled override removes its instance and blocks nothing.
    let cancelled = text.replace(
        "DTSTART;TZID=Europe/Berlin:20260331T140000",
        "STATUS:CANCELLED\r\nDTSTART;TZID=Europe/Berlin:20260331T140000",
    );
    let got = busy(
        &cancelled,
        &TimeZone::UTC,
        "2026-03-20T00:00:00Z",
        "2026-04-07T00:00:00Z",
    );
    assert_eq!(
        got,
        pairs(&[("2026-04-06T07:00:00Z", "2026-04-06T08:00:00Z")])
    );
}

#[test]
fn all_day_events_cover_the_hosts_local_days() {
    let text = cal("BEGIN:VEVENT\r\nUID:allday\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260310\r\nDTEND;VALUE=DATE:20260312\r\nEND:VEVENT\r\n");
    let ny = jiff::tz::db().get("America/New_York").unwrap();
    assert_eq!(
        busy(&text, &ny, "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"),
        pairs(&[("2026-03-10T04:00:00Z", "2026-03-12T04:00:00Z")])
    );
    // Without DTEND an all-day event is one day.
    let one = text.replace("DTEND;VALUE=DATE:20260312\r\n", "");
    assert_eq!(
        busy(
            &one,
            &berlin(),
            "2026-03-01T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ),
        pairs(&[("2026-03-09T23:00:00Z", "2026-03-10T23:00:00Z")])
    );
}

#[test]
fn transparent_and_cancelled_events_block_nothing() {
    for extra in ["TRANSP:TRANSPARENT\r\n", "STATUS:CANCELLED\r\n"] {
        let text = cal(&WEEKLY.replace("END:VEVENT", &format!("{extra}END:VEVENT")));
        assert!(busy(
            &text,
            &TimeZone::UTC,
            "2026-03-01T00:00:00Z",
            "2026-05-01T00:00:00Z"
        )
        .is_empty());
    }
    let opaque = cal(&WEEKLY.replace("END:VEVENT", "TRANSP:OPAQUE\r\nEND:VEVENT"));
    assert!(!busy(
        &opaque,
        &TimeZone::UTC,
        "2026-03-01T00:00:00Z",
        "2026-05-01T00:00:00Z"
    )
    .is_empty());
}

#[test]
fn until_in_utc_rdates_durations_and_floating_times() {
    // UNTIL 2026-03-30T07:00:00Z is 09:00 Berlin summer time: that instance is the last.
    let text = cal(&WEEKLY
        .replace("BYDAY=MO", "BYDAY=MO;UNTIL=20260330T070000Z")
        .replace(
            "END:VEVENT",
            "RDATE;TZID=Europe/Berlin:20260404T120000\r\nEND:VEVENT",
        ));
    assert_eq!(
        busy(
            &text,
            &TimeZone::UTC,
            "2026-03-20T00:00:00Z",
            "2026-05-01T00:00:00Z"
        ),
        pairs(&[
            ("2026-03-23T08:00:00Z", "2026-03-23T09:00:00Z"),
            ("2026-03-30T07:00:00Z", "2026-03-30T08:00:00Z"),
            ("2026-04-04T10:00:00Z", "2026-04-04T11:00:00Z"),
        ])
    );
    let floating = cal("BEGIN:VEVENT\r\nUID:f\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260401T090000\r\nDURATION:PT1H30M\r\nEND:VEVENT\r\n");
    assert_eq!(
        busy(
            &floating,
            &berlin(),
            "2026-03-20T00:00:00Z",
            "2026-05-01T00:00:00Z"
        ),
        pairs(&[("2026-04-01T07:00:00Z", "2026-04-01T08:30:00Z")])
    );
    // Out of the window: nothing.
    assert!(busy(
        &floating,
        &berlin(),
        "2026-05-01T00:00:00Z",
        "2026-06-01T00:00:00Z"
    )
    .is_empty());
}

#[test]
fn a_time_skipped_by_spring_forward_moves_forward_by_the_gap() {
    // 02:30 does not exist in Berlin on 29 March 2026: it is 03:30 +02:00 (01:30Z).
    let text = cal("BEGIN:VEVENT\r\nUID:gap\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:20260322T023000\r\nDTEND;TZID=Europe/Berlin:20260322T033000\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\nEND:VEVENT\r\n");
    assert_eq!(
        busy(
            &text,
            &TimeZone::UTC,
            "2026-03-20T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ),
        pairs(&[
            ("2026-03-22T01:30:00Z", "2026-03-22T02:30:00Z"),
            ("2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"),
        ])
    );
}

#[test]
fn own_events_are_skipped_and_nonsense_is_an_error_not_a_panic() {
    let got = object_busy(
        &cal(WEEKLY),
        &TimeZone::UTC,
        ts("2026-03-20T00:00:00Z"),
        ts("2026-04-07T00:00:00Z"),
        &|u| u == "weekly",
    )
    .unwrap();
    assert!(got.intervals.is_empty());
    assert_eq!(got.uids, ["weekly"]);
    assert!(object_busy(
        "<html>oops</html>",
        &TimeZone::UTC,
        ts("2026-03-20T00:00:00Z"),
        ts("2026-04-07T00:00:00Z"),
        &|_| false
    )
    .is_err());
    // A broken rule is a warning for that event, not a failure of the object.
    let bad = cal(&WEEKLY.replace("FREQ=WEEKLY;BYDAY=MO", "FREQ=SOMETIMES"));
    let got = object_busy(
        &bad,
        &TimeZone::UTC,
        ts("2026-03-20T00:00:00Z"),
        ts("2026-04-07T00:00:00Z"),
        &|_| false,
    )
    .unwrap();
    assert!(got.intervals.is_empty());
    assert!(got.warnings[0].contains("RRULE"), "{:?}", got.warnings);
}
