//! Connected calendars against real CalDAV servers from PyPI (Radicale and Xandikos, both,
//! because they differ), started on 127.0.0.1 by the tests, with the service over HTTP on its
//! own database: busy time removes the right slots (a weekly Europe/Berlin event across the
//! spring change, an EXDATE, an overridden instance, an all-day event; a transparent and a
//! cancelled event block nothing), bookings are written back and seen by an independent client
//! (Python's `caldav`), updated on reschedule and removed on cancel, and a server that is
//! killed, slow or answers nonsense fails neither slots nor bookings. The recurrence expansion
//! is also checked against an independent implementation (Python's `recurring_ical_events`).

use crate::support::api::{code, Client};
use crate::support::eventually;
use calops::service::domain::webhooks::secrets::SecretKey;
use calops_testkit::caldav::{Kind, TestCalDav, PASSWORD, USER, VENV};
use calops_testkit::{app_config, fresh_database, have_pg, TestApp};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEAL_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";
const HOURS: [&str; 8] = [
    "08:00", "08:30", "09:00", "09:30", "10:00", "10:30", "11:00", "11:30",
];

/// The service with a fast sync, a short timeout, a window reaching the next spring change.
async fn app() -> TestApp {
    app_with_timeout(Duration::from_secs(1)).await
}

async fn app_with_timeout(timeout: Duration) -> TestApp {
    let mut cfg = app_config(
        &fresh_database().await.unwrap(),
        None,
        calops::service::ratelimit::policy::Limits::OFF,
    );
    cfg.caldav.sync_interval = Duration::from_millis(500);
    cfg.caldav.timeout = timeout;
    cfg.caldav.window_days = 366;
    cfg.caldav.workers = 1;
    cfg.caldav.stale_after = Duration::from_secs(3);
    cfg.webhooks.secret_key = Some(SecretKey::parse(SEAL_KEY).unwrap());
    TestApp::spawn_with(cfg).await.unwrap()
}

/// The Sunday of Europe/Berlin's next spring change at least three weeks ahead.
fn spring_change() -> Date {
    let today = jiff::Zoned::now().date();
    let last_sunday = |y: i16| {
        let mut d = Date::new(y, 3, 31).unwrap();
        while d.weekday() != Weekday::Sunday {
            d = d.yesterday().unwrap();
        }
        d
    };
    let this = last_sunday(today.year());
    if (this - today).get_days() >= 21 || this < today {
        if this < today || (this - today).get_days() < 21 {
            last_sunday(today.year() + 1)
        } else {
            this
        }
    } else {
        last_sunday(today.year() + 1)
    }
}

fn day(c: Date, offset: i64) -> Date {
    c.checked_add(jiff::Span::new().days(offset)).unwrap()
}

fn ymd(d: Date) -> String {
    d.strftime("%Y%m%d").to_string()
}

fn cal(body: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calops tests//EN\r\n{body}END:VCALENDAR\r\n"
    )
}

/// The host's calendar relative to the spring change `c` (a Sunday): a weekly Monday 09:00-10:00
/// Berlin event from three weeks before for six weeks, without the one two weeks before
/// (EXDATE) and with the one a week after moved to 11:00 (RECURRENCE-ID); an all-day event on
/// the Wednesday before, a transparent one on the Thursday, a cancelled one on the Friday.
fn fixtures(c: Date) -> Vec<(&'static str, String)> {
    let tz = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
    let first = ymd(day(c, -20));
    let weekly = cal(&format!(
        "{tz}BEGIN:VEVENT\r\nUID:weekly-berlin\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Team\r\nDTSTART;TZID=Europe/Berlin:{first}T090000\r\nDTEND;TZID=Europe/Berlin:{first}T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=6\r\nEXDATE;TZID=Europe/Berlin:{}T090000\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly-berlin\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Team (moved)\r\nRECURRENCE-ID;TZID=Europe/Berlin:{moved}T090000\r\nDTSTART;TZID=Europe/Berlin:{moved}T110000\r\nDTEND;TZID=Europe/Berlin:{moved}T120000\r\nEND:VEVENT\r\n",
        ymd(day(c, -13)),
        moved = ymd(day(c, 8)),
    ));
    let one = |uid: &str, d: Date, extra: &str| {
        cal(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:{d}T090000\r\nDTEND;TZID=Europe/Berlin:{d}T100000\r\n{extra}END:VEVENT\r\n",
            d = ymd(d)
        ))
    };
    let all_day = cal(&format!(
        "BEGIN:VEVENT\r\nUID:all-day\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:{}\r\nDTEND;VALUE=DATE:{}\r\nEND:VEVENT\r\n",
        ymd(day(c, -4)),
        ymd(day(c, -3))
    ));
    vec![
        ("weekly.ics", weekly),
        ("all-day.ics", all_day),
        (
            "free.ics",
            one("transparent", day(c, -3), "TRANSP:TRANSPARENT\r\n"),
        ),
        (
            "cancelled.ics",
            one("cancelled", day(c, -2), "STATUS:CANCELLED\r\n"),
        ),
    ]
}

/// What the slots should be (local Berlin times) on the dates the fixtures touch.
fn expected(c: Date) -> BTreeMap<String, Vec<&'static str>> {
    let all: Vec<&str> = HOURS.to_vec();
    let without = |gone: &[&str]| all.iter().copied().filter(|h| !gone.contains(h)).collect();
    let mut m = BTreeMap::new();
    for (off, v) in [
        (-20, without(&["09:00", "09:30"])),
        (-13, all.clone()), // EXDATE
        (-6, without(&["09:00", "09:30"])),
        (-4, vec![]),                      // all day
        (-3, all.clone()),                 // transparent
        (-2, all.clone()),                 // cancelled
        (1, without(&["09:00", "09:30"])), // after the change: still 09:00 local
        (8, without(&["11:00", "11:30"])), // the override
        (15, without(&["09:00", "09:30"])),
    ] {
        m.insert(day(c, off).to_string(), v);
    }
    m
}

struct Host {
    key: String,
    user_id: i64,
    event_type: i64,
    buffered: i64,
}

/// An organization with a host working 08:00-12:00 Europe/Berlin every day, a 30-minute event
/// type and one with a 30-minute buffer before.
async fn host(c: &Client, name: &str) -> Host {
    let (key, _, user_id) = c
        .org_with_host(name, "Europe/Berlin", "08:00", "12:00")
        .await;
    let et = |slug: &str, before: i64| {
        json!({"userId": user_id, "title": slug, "slug": slug, "lengthInMinutes": 30,
               "beforeEventBuffer": before})
    };
    let event_type = c.create("/v2/event-types", &key, et("call", 0)).await["id"]
        .as_i64()
        .unwrap();
    let buffered = c.create("/v2/event-types", &key, et("prep", 30)).await["id"]
        .as_i64()
        .unwrap();
    Host {
        key,
        user_id,
        event_type,
        buffered,
    }
}

/// `h:m` on `d` in Europe/Berlin, as an instant.
fn at(d: Date, h: i8, m: i8) -> String {
    let berlin = TimeZone::get("Europe/Berlin").unwrap();
    d.at(h, m, 0, 0)
        .to_zoned(berlin)
        .unwrap()
        .timestamp()
        .to_string()
}

fn attendee() -> Value {
    json!({"name": "Ann", "email": "ann@example.com", "timeZone": "Europe/Berlin"})
}

/// Slots (local Berlin HH:MM per date) of `et` from `from` for `days` days.
async fn slots(
    c: &Client,
    key: &str,
    et: i64,
    from: Date,
    days: i64,
) -> BTreeMap<String, Vec<String>> {
    let to = day(from, days - 1);
    let (s, v) = c
        .get(
            &format!("/v2/slots?eventTypeId={et}&start={from}&end={to}&timeZone=Europe/Berlin"),
            key,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(d, list)| {
            let hours = list
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["start"].as_str().unwrap()[11..16].to_string())
                .collect();
            (d.clone(), hours)
        })
        .collect()
}

/// Slots on the fixture dates (two queries: the range is longer than 31 days).
async fn fixture_slots(c: &Client, h: &Host, change: Date) -> BTreeMap<String, Vec<String>> {
    let mut all = slots(c, &h.key, h.event_type, day(change, -20), 20).await;
    all.extend(slots(c, &h.key, h.event_type, change, 16).await);
    expected(change)
        .keys()
        .map(|d| (d.clone(), all.get(d).cloned().unwrap_or_default()))
        .collect()
}

fn as_strings(m: BTreeMap<String, Vec<&str>>) -> BTreeMap<String, Vec<String>> {
    m.into_iter()
        .map(|(k, v)| (k, v.into_iter().map(str::to_string).collect()))
        .collect()
}

/// Connect the host to `server_url` (password by reference), select calendar `work` and make
/// it the destination; returns the calendar's URL as the service knows it.
async fn connect(c: &Client, h: &Host, server_url: &str) -> String {
    let conn = c
        .create(
            "/v2/calendars/caldav/credentials",
            &h.key,
            json!({"userId": h.user_id, "url": server_url, "username": USER,
                   "passwordRef": "env:CALOPS_IT_CALDAV_PASS"}),
        )
        .await;
    assert!(!c.saw(PASSWORD), "the password never comes back");
    let cals = conn["calendars"].as_array().unwrap();
    let work = cals
        .iter()
        .find(|k| {
            k["externalId"]
                .as_str()
                .unwrap()
                .trim_end_matches('/')
                .ends_with("/work")
        })
        .unwrap_or_else(|| panic!("discovery found the work calendar: {conn}"));
    let url = work["externalId"].as_str().unwrap().to_string();
    let r =
        json!({"integration": "caldav", "externalId": url, "credentialId": conn["credentialId"]});
    let sel = c
        .ok(
            Method::POST,
            "/v2/selected-calendars",
            &h.key,
            Some(r.clone()),
        )
        .await;
    assert_eq!(sel["isSelected"], true);
    let dest = c
        .ok(Method::PUT, "/v2/destination-calendars", &h.key, Some(r))
        .await;
    assert_eq!(dest["isDestination"], true);
    url
}

/// The events of `calendar` as an independent client (Python `caldav`) sees them:
/// UID -> (DTSTART in UTC, DTEND in UTC).
fn independent_events(calendar: &str) -> BTreeMap<String, (String, String)> {
    let script = r#"
import caldav, json, sys
from datetime import timezone
client = caldav.DAVClient(url=sys.argv[1], username=sys.argv[2], password=sys.argv[3])
cal = client.calendar(url=sys.argv[1])
out = {}
for ev in cal.events():
    for comp in ev.icalendar_instance.walk('VEVENT'):
        def utc(d):
            if not hasattr(d, 'astimezone'):
                return d.isoformat()
            return d.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        s, e = utc(comp.get('dtstart').dt), utc(comp.get('dtend').dt)
        out[str(comp.get('uid'))] = [s, e]
print(json.dumps(out))
"#;
    let o = Command::new(format!("{VENV}/python3"))
        .args(["-c", script, calendar, USER, PASSWORD])
        .output()
        .expect("python3 from the venv");
    assert!(
        o.status.success(),
        "caldav client: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: BTreeMap<String, (String, String)> = serde_json::from_slice(&o.stdout).unwrap();
    v
}

async fn busy_time_and_write_back(kind: Kind) {
    let test = &format!("caldav::{}", kind.name());
    if !have_pg(test) {
        return;
    }
    let Some(server) = TestCalDav::start(test, kind) else {
        return;
    };
    let app = app().await;
    let c = Client::new(&app);
    let h = host(&c, &format!("cal-{}", kind.name())).await;
    let work = server.make_calendar("work").await.unwrap();
    let change = spring_change();
    for (file, ics) in fixtures(change) {
        server.put(&work, file, &ics).await.unwrap();
    }
    // Before connecting: every hour is free.
    let free = fixture_slots(&c, &h, change).await;
    assert_eq!(free[&day(change, -20).to_string()], HOURS.to_vec());
    let url = connect(&c, &h, &server.url()).await;
    assert_eq!(
        url, work,
        "discovery reaches the calendar from the server's root URL"
    );
    // The password is sealed at rest.
    let db = crate::support::db(&app.database_url).await;
    let stored: Vec<u8> = db
        .query_one("SELECT password FROM calendar_connections", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!stored
        .windows(PASSWORD.len())
        .any(|w| w == PASSWORD.as_bytes()));

    let want = as_strings(expected(change));
    eventually(30, "busy time from the calendar in the slots", || async {
        let got = fixture_slots(&c, &h, change).await;
        (got == want).then_some(())
    })
    .await;
    // The buffered type: 30 minutes before each slot must be free too (Monday before the change).
    let monday = day(change, -6);
    let got = slots(&c, &h.key, h.buffered, monday, 1).await;
    assert_eq!(
        got[&monday.to_string()],
        ["08:00", "08:30", "10:30", "11:00", "11:30"]
    );

    // Bookings check busy time too.
    let (s, v) = c
        .post(
            "/v2/bookings",
            &h.key,
            json!({"start": at(monday, 9, 30), "eventTypeId": h.event_type, "attendee": attendee()}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(code(&v), "booking_conflict");

    // A booking is written back, seen by an independent client, moved, then removed.
    let b = c
        .create(
            "/v2/bookings",
            &h.key,
            json!({"start": at(monday, 10, 30), "eventTypeId": h.event_type, "attendee": attendee()}),
        )
        .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    let (start, end) = (at(monday, 10, 30), at(monday, 11, 0));
    eventually(30, "the booking's event in the calendar", || async {
        let evs = independent_events(&work);
        (evs.get(&uid) == Some(&(start.clone(), end.clone()))).then_some(())
    })
    .await;
    // The written event is the booking's own: it does not block anything else.
    let moved = c
        .create(
            &format!("/v2/bookings/{uid}/reschedule"),
            &h.key,
            json!({"start": at(monday, 11, 0)}),
        )
        .await;
    let moved_uid = moved["uid"].as_str().unwrap().to_string();
    let (start, end) = (at(monday, 11, 0), at(monday, 11, 30));
    eventually(30, "the rescheduled event (same UID, new time)", || async {
        let evs = independent_events(&work);
        (evs.get(&uid) == Some(&(start.clone(), end.clone())) && evs.len() == 5).then_some(())
    })
    .await;
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{moved_uid}/cancel"),
            &h.key,
            json!({"cancellationReason": "test"}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    eventually(30, "the cancelled booking's event removed", || async {
        (!independent_events(&work).contains_key(&uid)).then_some(())
    })
    .await;
    // Changes on the server reach the slots (sync-collection or ctag): remove the all-day event.
    server.delete(&work, "all-day.ics").await.unwrap();
    let wed = day(change, -4).to_string();
    eventually(30, "a removed event frees its day", || async {
        let got = fixture_slots(&c, &h, change).await;
        (got[&wed] == HOURS.to_vec()).then_some(())
    })
    .await;
    let (s, v) = c
        .get(&format!("/v2/calendars?userId={}", h.user_id), &h.key)
        .await;
    assert_eq!(s, StatusCode::OK);
    let k = &v["data"]["connectedCalendars"][0]["calendars"];
    assert!(
        k.as_array()
            .unwrap()
            .iter()
            .any(|k| k["isSelected"] == true && k["sync"]["failures"] == 0),
        "{v}"
    );
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radicale_busy_time_removes_the_right_slots_and_bookings_are_written_back() {
    busy_time_and_write_back(Kind::Radicale).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xandikos_busy_time_removes_the_right_slots_and_bookings_are_written_back() {
    busy_time_and_write_back(Kind::Xandikos).await;
}

/// A TCP proxy in front of a server that can pass through, stall, or answer nonsense.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
}

const PASS: u8 = 0;
const SLOW: u8 = 1;
const NONSENSE: u8 = 2;

impl Proxy {
    async fn start(upstream: u16) -> Proxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let m = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = l.accept().await else {
                    return;
                };
                let mode = m.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    match mode {
                        NONSENSE => {
                            let mut buf = [0u8; 4096];
                            let _ = down.read(&mut buf).await;
                            let body = "<html><body>502 Bad Gateway</body></html>";
                            let _ = down
                                .write_all(format!("HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                                .await;
                        }
                        _ => {
                            if mode == SLOW {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                            }
                            if let Ok(mut up) =
                                tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                            }
                        }
                    }
                });
            }
        });
        Proxy { port, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

async fn metric(c: &Client, name: &str) -> f64 {
    let text = c.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calendar_server_that_is_slow_talks_nonsense_or_dies_fails_no_booking_or_slots_query() {
    let test = "caldav::faults";
    if !have_pg(test) {
        return;
    }
    let Some(mut server) = TestCalDav::start(test, Kind::Radicale) else {
        return;
    };
    let proxy = Proxy::start(server.port).await;
    let app = app().await;
    let c = Client::new(&app);
    let h = host(&c, "cal-faults").await;
    let work = server.make_calendar("work").await.unwrap();
    let change = spring_change();
    for (file, ics) in fixtures(change) {
        server.put(&work, file, &ics).await.unwrap();
    }
    let work_via_proxy = connect(&c, &h, &format!("http://127.0.0.1:{}/", proxy.port)).await;
    let want = as_strings(expected(change));
    eventually(30, "busy time through the proxy", || async {
        (fixture_slots(&c, &h, change).await == want).then_some(())
    })
    .await;
    // Days the fixtures leave alone (Tuesdays), so the bookings do not change the slots checked.
    let mut next_slot = [(-19, 8, 0), (-12, 8, 0), (-5, 8, 0), (2, 8, 0)].into_iter();
    for (mode, what) in [(SLOW, "slow"), (NONSENSE, "nonsense")] {
        let failures = metric(&c, "calops_calendar_sync_failures_total").await;
        proxy.set(mode);
        eventually(
            30,
            &format!("a failed sync against a {what} server"),
            || async {
                (metric(&c, "calops_calendar_sync_failures_total").await > failures).then_some(())
            },
        )
        .await;
        // Slots keep the last known busy time, promptly.
        let t = Instant::now();
        assert_eq!(
            fixture_slots(&c, &h, change).await,
            want,
            "{what}: the last known busy time"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: slots did not wait for the server"
        );
        // Bookings neither fail nor wait.
        let (off, hh, mm) = next_slot.next().unwrap();
        let t = Instant::now();
        let (s, v) = c
            .post("/v2/bookings", &h.key, json!({"start": at(day(change, off), hh, mm), "eventTypeId": h.event_type, "attendee": attendee()}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{what}: {v}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{what}: the booking did not wait"
        );
        let (s, v) = c.call(Method::GET, "/health", None, None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["checks"]["calendars"]["status"], "warn", "{what}: {v}");
        assert_eq!(v["status"], "degraded");
    }
    assert!(metric(&c, "calops_calendars_failing").await >= 1.0);
    // Killed mid-run: a booking made now is written back once the server is back.
    proxy.set(PASS);
    server.kill();
    let (off, hh, mm) = next_slot.next().unwrap();
    let b = c
        .create("/v2/bookings", &h.key, json!({"start": at(day(change, off), hh, mm), "eventTypeId": h.event_type, "attendee": attendee()}))
        .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fixture_slots(&c, &h, change).await.len(), want.len());
    let pending = metric(&c, "calops_calendar_writes_pending").await;
    assert!(
        pending >= 1.0,
        "the write-back waits while the server is down"
    );
    server.restart().unwrap();
    eventually(60, "the booking written back after the restart", || async {
        independent_events(&work).contains_key(&uid).then_some(())
    })
    .await;
    eventually(30, "health recovers", || async {
        let (_, v) = c.call(Method::GET, "/health", None, None).await;
        (v["checks"]["calendars"]["status"] == "up").then_some(())
    })
    .await;
    assert!(metric(&c, "calops_calendar_sync_age_seconds").await < 3.0);
    let _ = work_via_proxy;
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_errors_are_specific_and_nothing_is_stored() {
    let test = "caldav::connect_errors";
    if !have_pg(test) {
        return;
    }
    let Some(server) = TestCalDav::start(test, Kind::Radicale) else {
        return;
    };
    // Radicale delays its answer to a wrong password: give it time.
    let app = app_with_timeout(Duration::from_secs(10)).await;
    let c = Client::new(&app);
    let h = host(&c, "cal-errors").await;
    let body = |url: &str, extra: Value| {
        let mut b = json!({"userId": h.user_id, "url": url, "username": USER});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let p = "/v2/calendars/caldav/credentials";
    let (s, v) = c
        .post(p, &h.key, body(&server.url(), json!({"password": "wrong"})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "calendar_credentials_refused"
        ),
        "{v}"
    );
    let (s, v) = c
        .post(
            p,
            &h.key,
            body(
                &server.url(),
                json!({"passwordRef": "env:CALOPS_IT_NOT_SET"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CALOPS_IT_NOT_SET"),
        "{v}"
    );
    let (s, v) = c
        .post(
            p,
            &h.key,
            body("ftp://x", json!({"password": "a", "passwordRef": "env:X"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let fields: BTreeSet<&str> = v["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, BTreeSet::from(["url", "password"]), "{v}");
    let dead = format!("http://127.0.0.1:{}/", calops::pg::free_port().unwrap());
    let (s, v) = c
        .post(p, &h.key, body(&dead, json!({"password": PASSWORD})))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_GATEWAY, "calendar_unreachable"),
        "{v}"
    );
    let (_, v) = c.get("/v2/calendars", &h.key).await;
    assert_eq!(
        v["data"]["connectedCalendars"],
        json!([]),
        "nothing was stored"
    );
    assert!(!c.saw(PASSWORD) && !c.saw("wrong\""));
    app.running.shutdown().await.unwrap();
}

/// Python's `recurring_ical_events` (an independent expansion) over each case: the busy
/// intervals (UTC) of the calendar in `[from, to)`, with floating and all-day times in `tz`.
const ORACLE: &str = r#"
import json, sys
from datetime import datetime, date, time, timezone
from zoneinfo import ZoneInfo
import icalendar, recurring_ical_events
out = []
for case in json.load(sys.stdin):
    host = ZoneInfo(case["tz"])
    cal = icalendar.Calendar.from_ical(case["ics"])
    start = datetime.fromisoformat(case["from"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(case["to"].replace("Z", "+00:00"))
    def utc(v):
        if not isinstance(v, datetime):
            v = datetime.combine(v, time(0), host)
        elif v.tzinfo is None:
            v = v.replace(tzinfo=host)
        return v.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    got = []
    for ev in recurring_ical_events.of(cal).between(start, end):
        s, e = utc(ev["DTSTART"].dt), utc(ev["DTEND"].dt)
        if s < e and s < case["to"] and e > case["from"]:
            got.append([s, e])
    out.append(sorted(set(map(tuple, got))))
print(json.dumps(out))
"#;

/// One random recurring event (seeded): zone, all-day or not, frequency, interval, BYDAY,
/// COUNT or UNTIL, an EXDATE and an overridden instance.
fn random_case(rng: &mut impl rand::Rng, n: usize) -> (String, String, String, String) {
    use jiff::civil::DateTime;
    let zones = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "UTC",
        "floating",
    ];
    let zone = zones[rng.gen_range(0..zones.len())];
    let host = if zone == "floating" || zone == "UTC" {
        "Europe/Berlin"
    } else {
        zone
    };
    let all_day = rng.gen_bool(0.15);
    let date = Date::new(2027, 1, 1)
        .unwrap()
        .checked_add(jiff::Span::new().days(rng.gen_range(0..300)))
        .unwrap();
    let start = date.at(
        rng.gen_range(6..21),
        [0, 15, 30, 45][rng.gen_range(0..4)],
        0,
        0,
    );
    let fmt = |d: DateTime| d.strftime("%Y%m%dT%H%M%S").to_string();
    let prop = |name: &str, d: DateTime| -> String {
        if all_day {
            format!("{name};VALUE=DATE:{}", d.date().strftime("%Y%m%d"))
        } else {
            match zone {
                "floating" => format!("{name}:{}", fmt(d)),
                "UTC" => format!("{name}:{}Z", fmt(d)),
                z => format!("{name};TZID={z}:{}", fmt(d)),
            }
        }
    };
    let end = if all_day {
        start
            .checked_add(jiff::Span::new().days(rng.gen_range(1..3)))
            .unwrap()
    } else {
        start
            .checked_add(jiff::Span::new().minutes(rng.gen_range(15..240)))
            .unwrap()
    };
    let (freq, unit) = [
        ("DAILY", jiff::Span::new().days(1)),
        ("WEEKLY", jiff::Span::new().weeks(1)),
        ("MONTHLY", jiff::Span::new().months(1)),
    ][rng.gen_range(0..3)];
    let interval: i64 = rng.gen_range(1..4);
    let mut rule = format!("FREQ={freq};INTERVAL={interval}");
    if freq == "WEEKLY" && rng.gen_bool(0.4) {
        let days = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
        let own = days[start.weekday().to_monday_zero_offset() as usize];
        let other = days[rng.gen_range(0..7)];
        rule.push_str(&format!(
            ";BYDAY={own}{}",
            if other != own {
                format!(",{other}")
            } else {
                String::new()
            }
        ));
    }
    let step = |k: i64| {
        start
            .checked_add(unit.checked_mul(interval * k).unwrap())
            .unwrap()
    };
    match rng.gen_range(0..3) {
        0 => rule.push_str(&format!(";COUNT={}", rng.gen_range(1..20))),
        1 => {
            let until = step(rng.gen_range(1..12));
            let u = if all_day {
                until.date().strftime("%Y%m%d").to_string()
            } else if zone == "floating" {
                fmt(until)
            } else {
                let tz = TimeZone::get(if zone == "UTC" { "UTC" } else { zone }).unwrap();
                let ts = until.to_zoned(tz).unwrap().timestamp();
                format!("{}Z", ts.strftime("%Y%m%dT%H%M%S"))
            };
            rule.push_str(&format!(";UNTIL={u}"));
        }
        _ => {}
    }
    let mut ev = format!(
        "BEGIN:VEVENT\r\nUID:case-{n}\r\nDTSTAMP:20270101T000000Z\r\n{}\r\n{}\r\nRRULE:{rule}\r\n",
        prop("DTSTART", start),
        prop("DTEND", end)
    );
    if rng.gen_bool(0.3) {
        ev.push_str(&format!(
            "{}\r\n",
            prop("EXDATE", step(rng.gen_range(1..4)))
        ));
    }
    ev.push_str("END:VEVENT\r\n");
    if !all_day && rng.gen_bool(0.3) {
        let which = step(rng.gen_range(0..3));
        let moved = which.checked_add(jiff::Span::new().hours(2)).unwrap();
        ev.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:case-{n}\r\nDTSTAMP:20270101T000000Z\r\n{}\r\n{}\r\n{}\r\nEND:VEVENT\r\n",
            prop("RECURRENCE-ID", which),
            prop("DTSTART", moved),
            prop("DTEND", moved.checked_add(jiff::Span::new().minutes(30)).unwrap())
        ));
    }
    let from = date
        .checked_sub(jiff::Span::new().days(10))
        .unwrap()
        .to_string()
        + "T00:00:00Z";
    let to = date
        .checked_add(jiff::Span::new().days(200))
        .unwrap()
        .to_string()
        + "T00:00:00Z";
    (cal(&ev), from, to, host.to_string())
}

#[test]
fn recurrence_expansion_matches_an_independent_implementation() {
    use rand::SeedableRng;
    let test = "caldav::recurrence_oracle";
    let py = format!("{VENV}/python3");
    let ok = Command::new(&py)
        .args(["-c", "import icalendar, recurring_ical_events"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        calops_testkit::skip_or_fail(
            test,
            "no /opt/calops-venv with recurring_ical_events (run scripts/setup)",
        );
        return;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(20270328);
    let cases: Vec<_> = (0..300).map(|n| random_case(&mut rng, n)).collect();
    let input: Vec<Value> = cases
        .iter()
        .map(|(ics, from, to, tz)| json!({"ics": ics, "from": from, "to": to, "tz": tz}))
        .collect();
    let mut child = Command::new(&py)
        .args(["-c", ORACLE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&input).unwrap().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "oracle: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let want: Vec<Vec<(String, String)>> = serde_json::from_slice(&o.stdout).unwrap();
    let mut mismatches = Vec::new();
    for ((ics, from, to, tz), want) in cases.iter().zip(&want) {
        let host = TimeZone::get(tz).unwrap();
        let got = calops::service::domain::icalendar::busy::object_busy(
            ics,
            &host,
            from.parse().unwrap(),
            to.parse().unwrap(),
            &|_| false,
        )
        .unwrap();
        let got: Vec<(String, String)> = got
            .intervals
            .iter()
            .map(|i| {
                (
                    i.start.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    i.end.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                )
            })
            .collect();
        // recurring_ical_events reads the window of all-day events by date, so instances within
        // a day or two of either end are compared by neither side.
        let inner = |v: &[(String, String)]| -> Vec<(String, String)> {
            let lo =
                from.parse::<jiff::Timestamp>().unwrap() + jiff::SignedDuration::from_hours(48);
            let hi = to.parse::<jiff::Timestamp>().unwrap() - jiff::SignedDuration::from_hours(48);
            v.iter()
                .filter(|(s, e)| {
                    s.parse::<jiff::Timestamp>().unwrap() >= lo
                        && e.parse::<jiff::Timestamp>().unwrap() <= hi
                })
                .cloned()
                .collect()
        };
        let (got, want) = (inner(&got), inner(want));
        if got != want {
            mismatches.push(format!(
                "{ics}\nhost {tz}\ncalops: {got:?}\noracle: {want:?}"
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n\n")
    );
}
