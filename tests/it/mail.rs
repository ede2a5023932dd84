//! E-mail against a real mail server: `aiosmtpd` (PyPI) on 127.0.0.1 storing into a Maildir
//! (`tests/fixtures/mail/smtpd.py`), with STARTTLS (a certificate made here with rcgen) and
//! AUTH; every message is parsed with Python's `email` and `icalendar` packages
//! (`tests/fixtures/mail/read.py`) and its invitation compared with `GET /v2/bookings/{uid}/ics`.
//! Covers confirmations, reschedules and cancellations to attendee, guests and host; the
//! per-event-type switch; a refused recipient; SMTP down then up with two replicas; `kill -9`
//! of the real `calops serve` while it sends; reminders; and the local Maildir transport.

use crate::support::api::Client;
use crate::support::db;
use calops::service::config::Config;
use calops::service::mail::{Security, Settings, Transport};
use calops_testkit::{fresh_database, have_pg, TestApp, BOOTSTRAP_TOKEN, PAGE_KEY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PUBLIC_URL: &str = "https://book.example.test";
const SMTP_USER: &str = "calops";
const SMTP_PASSWORD: &str = "smtp-pass-correct-horse-42";

// ---- the mail server -----------------------------------------------------------------------

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd storing into `maildir`.
struct Smtpd {
    child: Child,
}

impl Smtpd {
    fn start(python: &Path, port: u16, maildir: &Path, extra: &[&str]) -> Smtpd {
        use std::io::BufRead;
        let mut child = Command::new(python)
            .arg(fixture("smtpd.py"))
            .arg(port.to_string())
            .arg(maildir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting aiosmtpd");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Smtpd { child }
    }

    /// STARTTLS with `cert`/`key`, then AUTH as [`SMTP_USER`] with `password`, before MAIL.
    fn start_tls_auth(
        python: &Path,
        port: u16,
        maildir: &Path,
        (cert, key): (&Path, &Path),
        password: &str,
    ) -> Smtpd {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        Smtpd::start(
            python,
            port,
            maildir,
            &["--tls", cert, key, "--auth", SMTP_USER, password],
        )
    }
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message in `maildir`, parsed by `read.py`.
pub(crate) fn read(python: &Path, maildir: &Path) -> Vec<Value> {
    if !maildir.join("new").exists() {
        return Vec::new();
    }
    let out = Command::new(python)
        .arg(fixture("read.py"))
        .arg(maildir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "read.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// The messages once there are at least `n` (and a moment more, to see any extra).
async fn wait_for_mail(python: &Path, maildir: &Path, n: usize, secs: u64) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = read(python, maildir);
        if got.len() >= n {
            tokio::time::sleep(Duration::from_millis(700)).await;
            return read(python, maildir);
        }
        assert!(
            Instant::now() < until,
            "timed out waiting for {n} messages; have {}: {:#?}",
            got.len(),
            got.iter().map(|m| &m["subject"]).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A self-signed certificate for 127.0.0.1 / localhost: (cert PEM path, key PEM path).
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, c.cert.pem()).unwrap();
    std::fs::write(&key, c.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

// ---- the service -----------------------------------------------------------------------------

fn mail_settings(transport: Transport) -> Settings {
    Settings {
        transport: Some(transport),
        from: "bookings@acme.example".into(),
        public_url: Some(PUBLIC_URL.into()),
        workers: 2,
        max_attempts: 100,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        timeout: Duration::from_secs(5),
        poll_interval: Duration::from_millis(200),
        retention: Duration::from_secs(86_400),
        // The default pacing: held back while bookings are being made, as in production.
        ..Settings::default()
    }
}

fn plain_smtp(port: u16) -> Transport {
    Transport::Smtp {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        username: None,
        password: None,
        ca_pem: None,
    }
}

async fn app_on(database_url: String, mail: Settings) -> TestApp {
    let config = Config {
        mail,
        ..calops_testkit::app_config(
            &database_url,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    };
    TestApp::spawn_with(config).await.unwrap()
}

struct Tenant {
    key: String,
    org_id: i64,
    host_email: String,
    /// Event type per host.
    event_types: Vec<i64>,
}

/// An organization "Acme Dental" with `hosts` hosts free all day (New York time) and an
/// event type each: 30 minutes on a 30-minute grid, or 1 minute on a 1-minute grid with
/// `reminders` when given.
async fn tenant(c: &Client, hosts: usize, reminders: Option<&[i64]>) -> Tenant {
    let org = c
        .ok(
            Method::POST,
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            Some(json!({"name": "Acme Dental"})),
        )
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let mut event_types = Vec::new();
    let mut host_email = String::new();
    for h in 0..hosts {
        let email = format!("hal{h}@acme.example");
        let user = c
            .ok(
                Method::POST,
                &format!("/v2/organizations/{org_id}/users"),
                &key,
                Some(json!({"name": format!("Hal Host{h}"), "email": email, "timeZone": "America/New_York"})),
            )
            .await;
        if h == 0 {
            host_email = email;
        }
        let user_id = user["id"].as_i64().unwrap();
        let days = [
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        ];
        c.ok(
            Method::POST,
            "/v2/schedules",
            &key,
            Some(
                json!({"userId": user_id, "name": "All day", "timeZone": "UTC",
                "availability": [{"days": days, "startTime": "00:00", "endTime": "23:59"}]}),
            ),
        )
        .await;
        let body = match reminders {
            None => json!({"userId": user_id, "title": "Check-up", "slug": "check-up",
                           "lengthInMinutes": 30}),
            Some(r) => json!({"userId": user_id, "title": "Check-up", "slug": "check-up",
                              "lengthInMinutes": 1, "slotInterval": 1,
                              "emailRemindersMinutesBefore": r}),
        };
        let et = c
            .ok(Method::POST, "/v2/event-types", &key, Some(body))
            .await;
        event_types.push(et["id"].as_i64().unwrap());
    }
    Tenant {
        key,
        org_id,
        host_email,
        event_types,
    }
}

/// The i-th distinct 30-minute slot from 2031-01-06 09:00 UTC (20 a day, 09:00 to 19:00).
fn slot(i: usize) -> String {
    let t: jiff::Timestamp = "2031-01-06T09:00:00Z".parse().unwrap();
    let minutes = (i / 20) as i64 * 1440 + (i % 20) as i64 * 30;
    t.checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap()
        .to_string()
}

fn booking(et: i64, start: &str, attendee: &str, guests: &[&str]) -> Value {
    json!({"start": start, "eventTypeId": et, "guests": guests,
           "attendee": {"name": "Ann Lee", "email": attendee, "timeZone": "Europe/Berlin",
                        "language": "de"}})
}

async fn book(c: &Client, t: &Tenant, body: Value) -> Value {
    let (s, v) = c.post("/v2/bookings", &t.key, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["data"].clone()
}

/// (UID, SEQUENCE, METHOD) of the booking's calendar as the API serves it.
async fn api_ics(c: &Client, t: &Tenant, uid: &str) -> (String, i64, String) {
    let (s, v) = c
        .call(
            Method::GET,
            &format!("/v2/bookings/{uid}/ics"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let text = v.as_str().unwrap().replace("\r\n ", "");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .unwrap()
            .trim()
            .to_string()
    };
    (
        field("UID"),
        field("SEQUENCE").parse().unwrap(),
        field("METHOD"),
    )
}

fn of_kind<'a>(all: &'a [Value], subject_prefix: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|m| m["subject"].as_str().unwrap().starts_with(subject_prefix))
        .collect()
}

fn rcpts(ms: &[&Value]) -> Vec<String> {
    let mut v: Vec<String> = ms
        .iter()
        .map(|m| m["rcpt_to"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub(crate) fn python(test: &str) -> Option<PathBuf> {
    crate::support::python(test, "import icalendar, aiosmtpd")
}

// ---- tests -------------------------------------------------------------------------------------

/// A booking, its reschedule and its cancel each send attendee, guest and host one message
/// over STARTTLS with AUTH; each invitation has the UID, SEQUENCE and METHOD of the booking's
/// ICS at that moment; texts are German for the German attendee, English for the host; the
/// links open the booking's pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_mails_everyone_an_invitation_matching_the_bookings_ics() {
    const TEST: &str = "each_change_mails_everyone_an_invitation_matching_the_bookings_ics";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (cert, key) = certificate(dir.path());
    let port = free_port();
    let _smtpd = Smtpd::start_tls_auth(&py, port, &maildir, (&cert, &key), SMTP_PASSWORD);
    let transport = Transport::Smtp {
        host: "127.0.0.1".into(),
        port,
        security: Security::StartTls,
        username: Some(SMTP_USER.into()),
        password: Some(SMTP_PASSWORD.into()),
        ca_pem: Some(std::fs::read(&cert).unwrap()),
    };
    let app = app_on(fresh_database().await.unwrap(), mail_settings(transport)).await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    let b = book(
        &c,
        &t,
        booking(
            t.event_types[0],
            &slot(0),
            "ann@example.com",
            &["gus@example.com"],
        ),
    )
    .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    let (ical_uid, seq, method) = api_ics(&c, &t, &uid).await;
    assert_eq!((seq, method.as_str()), (0, "REQUEST"));
    let all = wait_for_mail(&py, &maildir, 3, 30).await;
    assert_eq!(all.len(), 3, "{all:#?}");
    let everyone = vec![
        "ann@example.com".to_string(),
        "gus@example.com".into(),
        t.host_email.clone(),
    ];
    let mut sorted = everyone.clone();
    sorted.sort();
    assert_eq!(rcpts(&all.iter().collect::<Vec<_>>()), sorted);
    for m in &all {
        let ics = &m["ics"];
        assert_eq!(ics["uid"], ical_uid.as_str(), "{m:#}");
        assert_eq!(ics["sequence"], 0);
        assert_eq!(ics["method"], "REQUEST");
        assert_eq!(ics["content_type_method"], "REQUEST");
        assert_eq!(ics["dtstart"], "2031-01-06T09:00:00+00:00");
        assert_eq!(
            m["parts"],
            json!(["text/plain", "text/html", "text/calendar"])
        );
        assert_eq!(m["content_type"], "multipart/alternative");
        assert_eq!(m["from"], "Acme Dental <bookings@acme.example>");
        assert!(m["message_id"]
            .as_str()
            .unwrap()
            .ends_with("@acme.example>"));
        let to = m["rcpt_to"].as_str().unwrap();
        if to == t.host_email {
            // The host: English, in New York time, no invitee links.
            assert!(
                m["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("Confirmed: Check-up on Monday, January 6, 2031, 4:00 AM"),
                "{m:#}"
            );
            assert!(!m["plain"].as_str().unwrap().contains("/booking/"));
        } else {
            // Attendee and guest: German, Berlin time, reply to the host, with links.
            assert!(
                m["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("Bestätigt: Check-up am Montag, 6. Januar 2031, 10:00"),
                "{m:#}"
            );
            assert_eq!(m["reply_to"], format!("Hal Host0 <{}>", t.host_email));
            let plain = m["plain"].as_str().unwrap();
            let html = m["html"].as_str().unwrap();
            let view = format!("{PUBLIC_URL}/booking/{uid}?t=");
            assert!(plain.contains(&view), "{plain}");
            assert!(html.contains(&format!("href=\"{view}")), "{html}");
        }
    }
    // The link in the attendee's mail opens the booking's page (on this service).
    let ann = all
        .iter()
        .find(|m| m["rcpt_to"] == "ann@example.com")
        .unwrap();
    let link = ann["plain"]
        .as_str()
        .unwrap()
        .lines()
        .find_map(|l| {
            l.split_once(": ")
                .map(|x| x.1)
                .filter(|u| u.contains("/cancel?t="))
        })
        .unwrap()
        .replace(PUBLIC_URL, &app.base);
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200, "{link}");

    // Reschedule: one message each, same UID, the new SEQUENCE, still REQUEST.
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{uid}/reschedule"),
            &t.key,
            json!({"start": slot(2)}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new_uid = v["data"]["uid"].as_str().unwrap().to_string();
    let (u2, seq2, _) = api_ics(&c, &t, &new_uid).await;
    assert_eq!((u2.as_str(), seq2), (ical_uid.as_str(), 1));
    let all = wait_for_mail(&py, &maildir, 6, 30).await;
    let moved = of_kind(&all, "Verschoben");
    assert_eq!(moved.len(), 2, "{all:#?}");
    let moved_host = of_kind(&all, "Moved");
    assert_eq!(moved_host.len(), 1);
    for m in moved.iter().chain(&moved_host) {
        assert_eq!(m["ics"]["uid"], ical_uid.as_str());
        assert_eq!(m["ics"]["sequence"], seq2);
        assert_eq!(m["ics"]["method"], "REQUEST");
        assert_eq!(m["ics"]["dtstart"], "2031-01-06T10:00:00+00:00");
    }
    // Cancel: CANCEL with the SEQUENCE of the ICS after the cancel, and the reason.
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{new_uid}/cancel"),
            &t.key,
            json!({"cancellationReason": "Zahnarzt krank"}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (u3, seq3, method3) = api_ics(&c, &t, &new_uid).await;
    assert_eq!(
        (u3.as_str(), seq3, method3.as_str()),
        (ical_uid.as_str(), 2, "CANCEL")
    );
    let all = wait_for_mail(&py, &maildir, 9, 30).await;
    assert_eq!(all.len(), 9, "one message per event and recipient");
    let cancelled: Vec<&Value> = of_kind(&all, "Abgesagt")
        .into_iter()
        .chain(of_kind(&all, "Cancelled"))
        .collect();
    assert_eq!(rcpts(&cancelled), sorted);
    for m in &cancelled {
        assert_eq!(m["ics"]["method"], "CANCEL");
        assert_eq!(m["ics"]["content_type_method"], "CANCEL");
        assert_eq!(m["ics"]["status"], "CANCELLED");
        assert_eq!(m["ics"]["sequence"], seq3);
        assert!(m["plain"].as_str().unwrap().contains("Zahnarzt krank"));
        assert!(!m["plain"].as_str().unwrap().contains("/booking/"));
    }
    let ids: HashSet<&str> = all
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 9);
    // Health and metrics see a working transport and nothing left.
    let (_, h) = c.get("/health", "").await;
    assert_eq!(h["checks"]["mail"]["status"], "up", "{h}");
    let m = c.metrics().await;
    assert!(m.contains("calops_mail_pending 0\n"), "{m}");
    assert!(m.contains("calops_mail_sent_total 9\n"), "{m}");
    assert!(!c.saw(SMTP_PASSWORD));
}

/// SMTP is down while bookings are made (one statement, group commit, and a composite), so
/// health turns degraded and the backlog grows; two replicas share the outbox; then the
/// server comes up and every message arrives exactly once. A recipient the server refuses is
/// dead for that recipient only; an event type with e-mail off sends nothing; an attendee
/// address that is not one is refused at booking time (400, naming the field).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_then_up_delivers_every_message_once_across_two_replicas() {
    const TEST: &str = "smtp_down_then_up_delivers_every_message_once_across_two_replicas";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let port = free_port();
    let database_url = fresh_database().await.unwrap();
    let a = app_on(database_url.clone(), mail_settings(plain_smtp(port))).await;
    let b = app_on(database_url.clone(), mail_settings(plain_smtp(port))).await;
    let c = Client::new(&a);
    let t = tenant(&c, 2, None).await;
    // E-mail off for the second host's event type.
    c.ok(
        Method::PATCH,
        &format!("/v2/event-types/{}", t.event_types[1]),
        &t.key,
        Some(json!({"sendEmails": false})),
    )
    .await;
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(t.event_types[0], &slot(0), "ann@@example", &[]),
        )
        .await;
    // The API's validation errors are 400 (as Cal.com's), naming the field.
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        v["error"]["details"]["fields"][0]["field"],
        "attendee.email"
    );
    // 12 bookings at once (the group commit takes them together), one with a refused guest.
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (c, key, et) = (
            Client::new(if i % 2 == 0 { &a } else { &b }),
            t.key.clone(),
            t.event_types[0],
        );
        let guests: Vec<&str> = if i == 0 {
            vec!["nobody@refused.example"]
        } else {
            vec![]
        };
        let body = booking(et, &slot(i), &format!("p{i}@example.com"), &guests);
        tasks.push(tokio::spawn(async move {
            let (s, v) = c.post("/v2/bookings", &key, body).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["data"]["uid"].as_str().unwrap().to_string()
        }));
    }
    let mut uids = Vec::new();
    for task in tasks {
        uids.push(task.await.unwrap());
    }
    // The quiet event type.
    book(
        &c,
        &t,
        booking(t.event_types[1], &slot(0), "quiet@example.com", &[]),
    )
    .await;
    // Health degrades (not down) once a send has failed; the backlog shows.
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, h) = c.get("/health", "").await;
        assert_eq!(s, StatusCode::OK);
        if h["status"] == "degraded" {
            assert_eq!(h["checks"]["mail"]["status"], "down", "{h}");
            break;
        }
        assert!(Instant::now() < until, "health never degraded: {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once every booking's change is made into its messages (a change not yet expanded counts
    // as one), the backlog is every message: 12 bookings to attendee and host, one guest.
    let until = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = c.metrics().await;
        let pending: i64 = m
            .lines()
            .find_map(|l| l.strip_prefix("calops_mail_pending "))
            .unwrap()
            .parse()
            .unwrap();
        if pending == 12 * 2 + 1 {
            break m;
        }
        assert!(Instant::now() < until, "{pending} pending, not 25: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!m.contains("calops_mail_failures_total 0\n"), "{m}");
    assert!(read(&py, &maildir).is_empty());

    let _smtpd = Smtpd::start(&py, port, &maildir, &["--refuse", "nobody@refused.example"]);
    let all = wait_for_mail(&py, &maildir, 24, 60).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = {
        let again = read(&py, &maildir);
        assert_eq!(again.len(), all.len());
        again
    };
    // Exactly one message per (booking, recipient): attendee and host of each of the 12.
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for m in &all {
        *per.entry(m["rcpt_to"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(all.len(), 24, "{per:?}");
    for i in 0..12 {
        assert_eq!(per.get(&format!("p{i}@example.com")), Some(&1), "{per:?}");
    }
    assert_eq!(per.get(&t.host_email), Some(&12));
    assert!(
        !per.contains_key("quiet@example.com"),
        "e-mail is off for that type"
    );
    assert!(!per.contains_key("nobody@refused.example"));
    // The refused guest is dead, with the server's answer; nothing else is.
    let d = db(&database_url).await;
    let dead = d
        .query(
            "SELECT recipient, last_error FROM mail_outbox WHERE status = 'dead'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].get::<_, String>(0), "nobody@refused.example");
    assert!(
        dead[0].get::<_, String>(1).contains("550"),
        "{}",
        dead[0].get::<_, String>(1)
    );
    let counts = d
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FILTER (WHERE status = 'pending')
             FROM mail_outbox",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (24, 0));
    // Health recovers.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, h) = c.get("/health", "").await;
        if h["status"] == "ok" {
            break;
        }
        assert!(Instant::now() < until, "health stayed {h}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = c.metrics().await;
    assert!(m.contains("calops_mail_dead 1\n"));
    drop(uids);
}

// ---- durability: kill -9 the real binary -----------------------------------------------------

/// Wait (at most `secs`) until no outbox row matches `condition`.
async fn outbox_settles(d: &tokio_postgres::Client, condition: &str, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let n: i64 = d
            .query_one(
                &format!("SELECT count(*) FROM mail_outbox WHERE {condition}"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < until,
            "{n} messages still {condition} after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `calops serve` child that is killed when dropped, so a failing test leaves no service
/// running behind it.
struct Serve(Child);

impl std::ops::Deref for Serve {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(database_url: &str, port: u16, smtp_port: u16, log: &Path) -> Serve {
    serve_with(database_url, port, smtp_port, log, &[])
}

/// [`serve`] with `extra` variables set (after the defaults, so they win).
fn serve_with(
    database_url: &str,
    port: u16,
    smtp_port: u16,
    log: &Path,
    extra: &[(&str, String)],
) -> Serve {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_calops"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("CALOPS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALOPS_ADMIN_TOKEN_REF", "env:CALOPS_TEST_BOOT")
        .env("CALOPS_TEST_BOOT", BOOTSTRAP_TOKEN)
        .env("CALOPS_PAGE_KEY_REF", "env:CALOPS_TEST_PAGE_KEY")
        .env("CALOPS_TEST_PAGE_KEY", PAGE_KEY)
        .env(
            "CALOPS_MAIL_TRANSPORT",
            format!("smtp://127.0.0.1:{smtp_port}?tls=none"),
        )
        .env("CALOPS_MAIL_FROM", "bookings@acme.example")
        .env("CALOPS_MAIL_WORKERS", "4")
        .env("CALOPS_MAIL_BACKOFF", "100ms")
        .env("CALOPS_MAIL_BACKOFF_MAX", "300ms")
        .env("CALOPS_MAIL_TIMEOUT", "1s")
        .env("CALOPS_MAIL_POLL", "200ms")
        .env("CALOPS_RATE_LIMIT_BOOKINGS", "off")
        .env_remove("REDIS_URL")
        .env_remove("CALOPS_OBJECT_STORAGE_URL")
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Serve)
        .expect("starting calops serve")
}

async fn healthy(base: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/health")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < until,
            "calops serve did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `kill -9` of `calops serve` while it is sending: after a restart every (booking,
/// recipient) has its message, and any message that arrived twice is one that was in flight
/// at the kill (at most one per worker), with the same Message-ID both times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_sending_loses_nothing_and_repeats_at_most_the_messages_in_flight() {
    const TEST: &str =
        "kill_9_while_sending_loses_nothing_and_repeats_at_most_the_messages_in_flight";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let log = dir.path().join("serve.log");
    let database_url = fresh_database().await.unwrap();
    let (port, smtp_port) = (free_port(), free_port());
    let mut server = serve(&database_url, port, smtp_port, &log);
    let base = format!("http://127.0.0.1:{port}");
    healthy(&base).await;
    let c = Client::at(&base);
    let t = tenant(&c, 1, None).await;
    // Queue 30 bookings' messages while the mail server is down, then let it send and kill
    // the service in the middle.
    for i in 0..30 {
        book(
            &c,
            &t,
            booking(
                t.event_types[0],
                &slot(i),
                &format!("p{i}@example.com"),
                &[],
            ),
        )
        .await;
    }
    let _smtpd = Smtpd::start(&py, smtp_port, &maildir, &[]);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let n = std::fs::read_dir(maildir.join("new"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n >= 10 {
            break;
        }
        assert!(Instant::now() < until, "no mail is being sent");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    let at_kill = std::fs::read_dir(maildir.join("new")).unwrap().count();
    assert!(
        at_kill < 60,
        "the kill came too late to prove anything ({at_kill} sent)"
    );
    let mut server = serve(&database_url, port, smtp_port, &log);
    healthy(&base).await;
    let d = db(&database_url).await;
    outbox_settles(&d, "status <> 'sent'", 60).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = read(&py, &maildir);
    let mut per: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in &all {
        per.entry(m["message_id"].as_str().unwrap().to_string())
            .or_default()
            .push(m["rcpt_to"].as_str().unwrap().to_string());
    }
    // None lost: 60 distinct messages, every attendee once and the host 30 times.
    assert_eq!(per.len(), 60, "{per:?}");
    let mut rcpt_by_id: BTreeMap<String, usize> = BTreeMap::new();
    for rs in per.values() {
        *rcpt_by_id.entry(rs[0].clone()).or_default() += 1;
    }
    for i in 0..30 {
        assert_eq!(rcpt_by_id.get(&format!("p{i}@example.com")), Some(&1));
    }
    assert_eq!(rcpt_by_id.get(&t.host_email), Some(&30));
    // Repeats are bounded by the sends in flight at the kill (4 workers).
    let repeats = all.len() - per.len();
    eprintln!(
        "{at_kill} messages before kill -9, {} in all, {repeats} repeated",
        all.len()
    );
    assert!(repeats <= 4, "{repeats} repeated messages: {per:?}");
    let _ = server.kill();
    let _ = server.wait();
}

// ---- reminders -------------------------------------------------------------------------------

/// The next whole minute at least `after` from now.
fn next_minute(after: Duration) -> jiff::Timestamp {
    let t = jiff::Timestamp::now().as_second() + after.as_secs() as i64;
    jiff::Timestamp::from_second((t / 60 + 1) * 60).unwrap()
}

/// Reminders one minute before: three hosts each get a booking at the same minute; the first
/// keeps it (one reminder each to attendee and host, once), the second cancels (none), the
/// third's booking starts a minute later and is rescheduled to that minute (its reminder
/// comes at the new time, the old one never).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_fire_once_at_their_time_skip_cancelled_and_move_with_a_reschedule() {
    const TEST: &str =
        "reminders_fire_once_at_their_time_skip_cancelled_and_move_with_a_reschedule";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let port = free_port();
    let _smtpd = Smtpd::start(&py, port, &maildir, &[]);
    let database_url = fresh_database().await.unwrap();
    let app = app_on(database_url.clone(), mail_settings(plain_smtp(port))).await;
    let c = Client::new(&app);
    let t = tenant(&c, 3, Some(&[1])).await;
    // Book at second 40 to 50 of a minute, so that the reminder (start - 1 min, start two
    // minute boundaries ahead) is due 10 to 20 s later.
    while !(40..=50).contains(&(jiff::Timestamp::now().as_second() % 60)) {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = next_minute(Duration::from_secs(64));
    let later = start
        .checked_add(jiff::SignedDuration::from_mins(1))
        .unwrap();
    let due = start
        .checked_sub(jiff::SignedDuration::from_mins(1))
        .unwrap();
    let kept = book(
        &c,
        &t,
        booking(
            t.event_types[0],
            &start.to_string(),
            "keep@example.com",
            &[],
        ),
    )
    .await;
    let gone = book(
        &c,
        &t,
        booking(
            t.event_types[1],
            &start.to_string(),
            "gone@example.com",
            &[],
        ),
    )
    .await;
    let moved = book(
        &c,
        &t,
        booking(
            t.event_types[2],
            &later.to_string(),
            "move@example.com",
            &[],
        ),
    )
    .await;
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{}/cancel", gone["uid"].as_str().unwrap()),
            &t.key,
            json!({}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{}/reschedule", moved["uid"].as_str().unwrap()),
            &t.key,
            json!({"start": start.to_string()}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Confirmations: 3 x 2, cancel 2, reschedule 2; then reminders: kept 2 + moved 2.
    let before_due = wait_for_mail(&py, &maildir, 10, 30).await;
    assert!(
        jiff::Timestamp::now() < due,
        "the test was too slow to see the reminders come"
    );
    assert!(of_kind(&before_due, "Erinnerung").is_empty());
    let all = wait_for_mail(&py, &maildir, 14, 60).await;
    let arrived = jiff::Timestamp::now();
    assert!(arrived >= due, "a reminder came before its time");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all2 = read(&py, &maildir);
    assert_eq!(all2.len(), all.len(), "a reminder arrived twice");
    let reminders: Vec<&Value> = of_kind(&all2, "Erinnerung")
        .into_iter()
        .chain(of_kind(&all2, "Reminder"))
        .collect();
    let mut got = rcpts(&reminders);
    got.sort();
    let mut want = vec![
        "keep@example.com".to_string(),
        "move@example.com".into(),
        "hal0@acme.example".into(),
        "hal2@acme.example".into(),
    ];
    want.sort();
    assert_eq!(got, want);
    for r in &reminders {
        assert!(r["ics"].is_null(), "a reminder carries no invitation");
    }
    let d = db(&database_url).await;
    let claimable: i64 = d
        .query_one(
            "SELECT count(*) FROM mail_outbox o JOIN bookings b ON b.id = o.booking_id
             WHERE o.kind = 'reminder' AND b.status <> 'accepted' AND o.status <> 'skipped'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The cancelled booking's and the old time's reminders were either never queued (the
    // booking was cancelled before its creation was made into messages) or skipped: none can be
    // claimed (only pending rows are), so the moved booking's reminder will not also come at its
    // old time.
    assert_eq!(
        claimable, 0,
        "a reminder of the cancelled booking or of the old time can still be sent"
    );
    let pending: i64 = d
        .query_one(
            "SELECT count(*) FROM mail_outbox WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
    drop(kept);
}

/// The local target's transport: each message a file in `new/` of a Maildir, readable by
/// Python's `mailbox` with no mail server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_maildir_transport_writes_each_message_as_a_file_in_new() {
    const TEST: &str = "the_maildir_transport_writes_each_message_as_a_file_in_new";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join(".calops/local/mail");
    let app = app_on(
        fresh_database().await.unwrap(),
        mail_settings(Transport::Maildir(maildir.clone())),
    )
    .await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    let b = book(
        &c,
        &t,
        booking(t.event_types[0], &slot(0), "ann@example.com", &[]),
    )
    .await;
    let all = wait_for_mail(&py, &maildir, 2, 30).await;
    assert_eq!(all.len(), 2);
    assert_eq!(std::fs::read_dir(maildir.join("new")).unwrap().count(), 2);
    assert_eq!(std::fs::read_dir(maildir.join("tmp")).unwrap().count(), 0);
    let (ical_uid, seq, _) = api_ics(&c, &t, b["uid"].as_str().unwrap()).await;
    for m in &all {
        assert_eq!(m["ics"]["uid"], ical_uid.as_str());
        assert_eq!(m["ics"]["sequence"], seq);
    }
    let _ = t.org_id;
}

/// A recipient with an internationalized domain gets the mail: it leaves with the domain's
/// IDNA A-labels, in the envelope (RCPT TO, as aiosmtpd records it) and in the `To` header, as
/// Python's email package reads it; the booking keeps the address as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_with_an_internationalized_domain_gets_mail_at_its_punycode_form() {
    const TEST: &str =
        "a_recipient_with_an_internationalized_domain_gets_mail_at_its_punycode_form";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let port = free_port();
    let _smtpd = Smtpd::start(&py, port, &maildir, &[]);
    let app = app_on(
        fresh_database().await.unwrap(),
        mail_settings(plain_smtp(port)),
    )
    .await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    let b = book(
        &c,
        &t,
        booking(t.event_types[0], &slot(0), "someone@bücher.example", &[]),
    )
    .await;
    // The booking keeps the address as given.
    assert_eq!(b["attendees"][0]["email"], "someone@bücher.example", "{b}");
    let all = wait_for_mail(&py, &maildir, 2, 30).await;
    assert_eq!(
        rcpts(&all.iter().collect::<Vec<_>>()),
        [t.host_email.as_str(), "someone@xn--bcher-kva.example"]
    );
    let attendee = all
        .iter()
        .find(|m| m["rcpt_to"] == "someone@xn--bcher-kva.example")
        .unwrap();
    assert!(
        attendee["to"]
            .as_str()
            .unwrap()
            .ends_with("<someone@xn--bcher-kva.example>"),
        "{attendee}"
    );
}

/// A message whose booking is gone (deleted while the message waited, as an organization's
/// deletion does) is marked skipped by its claim: not sent, and not left pending for ever,
/// while the other booking's messages are sent. A booking change not yet made into messages
/// when its booking went makes none, and is not left queued either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_booking_is_gone_is_skipped_not_left_pending() {
    const TEST: &str = "a_message_whose_booking_is_gone_is_skipped_not_left_pending";
    if !have_pg(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let url = fresh_database().await.unwrap();
    // Queued, not sent: a service without workers.
    let queued = app_on(
        url.clone(),
        Settings {
            workers: 0,
            ..mail_settings(Transport::Maildir(maildir.clone()))
        },
    )
    .await;
    let c = Client::new(&queued);
    let t = tenant(&c, 1, None).await;
    let et = t.event_types[0];
    let gone = book(&c, &t, booking(et, &slot(0), "ann@example.com", &[])).await;
    let kept = book(&c, &t, booking(et, &slot(1), "bob@example.com", &[])).await;
    let (gone, kept) = (gone["uid"].as_str().unwrap(), kept["uid"].as_str().unwrap());
    // Those two are made into messages (as a worker's first step would), the third is not.
    let store = calops::service::store::Store::new(&url, 1).unwrap();
    assert_eq!(store.expand_mail_events(10).await.unwrap(), (2, 4));
    let unexpanded = book(&c, &t, booking(et, &slot(2), "cy@example.com", &[])).await;
    let d = db(&url).await;
    let deleted = d
        .execute(
            "DELETE FROM bookings WHERE uid::text = ANY($1)",
            &[&vec![gone, unexpanded["uid"].as_str().unwrap()]],
        )
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let _workers = app_on(url, mail_settings(Transport::Maildir(maildir.clone()))).await;
    outbox_settles(&d, "status = 'pending'", 30).await;
    let rows: Vec<(String, String, String)> = d
        .query(
            "SELECT booking_uid::text, status, COALESCE(last_error, '') FROM mail_outbox
             ORDER BY booking_uid::text = $1, recipient",
            &[&kept],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let gone_row = |status: &str, error: &str| (gone.to_string(), status.into(), error.into());
    let kept_row = |status: &str| (kept.to_string(), status.into(), String::new());
    assert_eq!(
        rows,
        vec![
            gone_row("skipped", "the booking no longer exists"),
            gone_row("skipped", "the booking no longer exists"),
            kept_row("sent"),
            kept_row("sent"),
        ]
    );
    assert_eq!(std::fs::read_dir(maildir.join("new")).unwrap().count(), 2);
    let queued: i64 = d
        .query_one("SELECT count(*) FROM mail_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0, "the gone booking's change is still queued");
}

/// A booking cancelled while its creation is being made into messages gets no reminder that
/// could be sent: the expansion waits for the cancellation in flight (it reads the booking
/// `FOR SHARE`) and then sees it cancelled, so it queues the confirmation but no reminders. A
/// booking whose creation was expanded before it was cancelled has its reminders skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_while_its_booking_is_made_into_messages_leaves_no_reminder_to_send() {
    const TEST: &str =
        "a_cancellation_while_its_booking_is_made_into_messages_leaves_no_reminder_to_send";
    if !have_pg(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database().await.unwrap();
    // Queued, not sent: a service without workers; this test expands by hand.
    let app = app_on(
        url.clone(),
        Settings {
            workers: 0,
            ..mail_settings(Transport::Maildir(dir.path().join("mail")))
        },
    )
    .await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, Some(&[60, 1440])).await;
    let et = t.event_types[0];
    let racing = book(&c, &t, booking(et, &slot(0), "ann@example.com", &[])).await;
    let racing = racing["uid"].as_str().unwrap().to_string();
    let store = calops::service::store::Store::new(&url, 1).unwrap();
    let mut d = db(&url).await;
    let tx = d.transaction().await.unwrap();
    let n = tx
        .execute(
            "UPDATE bookings SET status = 'cancelled' WHERE uid::text = $1",
            &[&racing],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let expanding = tokio::spawn({
        let store = store.clone();
        async move { store.expand_mail_events(10).await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !expanding.is_finished(),
        "the expansion did not wait for the cancellation in flight"
    );
    tx.commit().await.unwrap();
    // The creation: a confirmation to the attendee and the host, no reminders.
    assert_eq!(expanding.await.unwrap(), (1, 2));
    // The cancellation's own event: two cancellation messages.
    assert_eq!(store.expand_mail_events(10).await.unwrap(), (1, 2));
    // Expanded first, cancelled after: its four reminders are skipped.
    let early = book(&c, &t, booking(et, &slot(1), "bob@example.com", &[])).await;
    let early = early["uid"].as_str().unwrap();
    assert_eq!(store.expand_mail_events(10).await.unwrap(), (1, 6));
    let (s, v) = c
        .post(&format!("/v2/bookings/{early}/cancel"), &t.key, json!({}))
        .await;
    assert!(s.is_success(), "{v}");
    let rows: Vec<(String, String, i64)> = d
        .query(
            "SELECT b.uid::text, o.status, count(*) FROM mail_outbox o
             JOIN bookings b ON b.id = o.booking_id WHERE o.kind = 'reminder'
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows, vec![(early.to_string(), "skipped".to_string(), 4)]);
}

/// A database at main's migrations before e-mail (every version but 10, 11 and 12 included):
/// the next start applies 10 though a higher version is recorded, then what builds on it (13, 14),
/// and bookings then mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_later_migration_but_not_mails_gets_it_on_the_next_start() {
    const TEST: &str = "a_database_with_a_later_migration_but_not_mails_gets_it_on_the_next_start";
    if !have_pg(TEST) {
        return;
    }
    use calops::service::store::{migrations::MIGRATIONS, Store};
    const MAIL: i32 = 10;
    /// Later migrations that change mail's tables: not there before mail was.
    const ON_MAIL: [i32; 2] = [13, 14];
    let url = fresh_database().await.unwrap();
    {
        let mut d = db(&url).await;
        d.batch_execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .unwrap();
        for (version, name, sql) in MIGRATIONS
            .iter()
            .filter(|m| m.0 != MAIL && !ON_MAIL.contains(&m.0))
        {
            let tx = d.transaction().await.unwrap();
            tx.batch_execute(sql).await.unwrap();
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }
    assert!(
        MIGRATIONS.iter().any(|m| m.0 > MAIL),
        "the case needs a version above the mail migration"
    );
    let store = Store::new(&url, 2).unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        [&[MAIL][..], &ON_MAIL[..]].concat()
    );
    assert!(store.migrate().await.unwrap().is_empty(), "once only");
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    let app = app_on(url, mail_settings(Transport::Maildir(maildir.clone()))).await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    book(
        &c,
        &t,
        booking(t.event_types[0], &slot(0), "ann@example.com", &[]),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(maildir.join("new")).map_or(0, |d| d.count()) < 2 {
        assert!(Instant::now() < until, "no mail after the late migration");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An attendee or guest address mail cannot be sent to (that a plausibility check, an `@`
/// and a dot after it, would let through) is refused when the booking is made, in both
/// booking shapes and in a composite booking: a validation error naming the request field
/// and saying what to do; nothing is booked and nothing queued. (The booking page's form
/// shows the field error: `pages::bad_input_gets_a_page_not_an_error`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_mail_cannot_reach_is_refused_at_booking_time_naming_the_field() {
    const TEST: &str = "an_address_mail_cannot_reach_is_refused_at_booking_time_naming_the_field";
    if !have_pg(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database().await.unwrap();
    let app = app_on(
        url.clone(),
        mail_settings(Transport::Maildir(dir.path().join("mail"))),
    )
    .await;
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    let et = t.event_types[0];
    let refused = |v: &Value| -> Vec<String> {
        v["error"]["details"]["fields"]
            .as_array()
            .unwrap_or_else(|| panic!("no field errors: {v}"))
            .iter()
            .map(|f| {
                assert!(
                    f["message"]
                        .as_str()
                        .unwrap()
                        .contains("such as ann@example.com"),
                    "{f}"
                );
                f["field"].as_str().unwrap().to_string()
            })
            .collect()
    };
    // 2024-08-13 (what calops' clients send): the attendee, and the second guest.
    for (attendee, guests, field) in [
        ("ann..lee@example.com", vec![], "attendee.email"),
        ("<ann@example.com>", vec![], "attendee.email"),
        (
            "ann@example.com",
            vec!["bob@example.com", "carl@-example.com"],
            "guests[1]",
        ),
    ] {
        let (s, v) = c
            .post(
                "/v2/bookings",
                &t.key,
                booking(et, &slot(0), attendee, &guests),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{attendee} {guests:?}: {v}");
        assert_eq!(v["error"]["code"], "validation_error", "{v}");
        assert_eq!(refused(&v), [field], "{v}");
    }
    // An address whose part before the @ is not ASCII cannot be carried (no SMTPUTF8): refused
    // naming the field, saying what to do; its domain may have any letters.
    for (attendee, guests, field) in [
        ("jürgen@bücher.example", vec![], "attendee.email"),
        ("ann@bücher.example", vec!["zoë@example.com"], "guests[0]"),
    ] {
        let (s, v) = c
            .post(
                "/v2/bookings",
                &t.key,
                booking(et, &slot(0), attendee, &guests),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{attendee} {guests:?}: {v}");
        assert_eq!(v["error"]["code"], "validation_error", "{v}");
        assert_eq!(refused(&v), [field], "{v}");
        let message = v["error"]["details"]["fields"][0]["message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("outside ASCII before the @") && message.contains("plain ASCII"),
            "{message}"
        );
    }
    // The older shape names its own fields.
    let (s, v) = c
        .version(None)
        .post(
            "/v2/bookings",
            &t.key,
            json!({"start": slot(0), "eventTypeId": et, "timeZone": "UTC", "language": "en",
                   "metadata": {}, "responses": {"name": "Bo Chen", "email": "bo..chen@example.com",
                   "guests": ["ok@example.com", ".dot@example.com"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        refused(&v),
        ["responses.email", "responses.guests[1]"],
        "{v}"
    );
    // A composite booking checks its shared attendee the same way.
    let (s, v) = c
        .post(
            "/v2/bookings/composite",
            &t.key,
            json!({"segments": [{"eventTypeId": et, "start": slot(0)}, {"eventTypeId": et, "start": slot(1)}],
                   "attendee": {"name": "Ann", "email": "ann@example.com.", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(refused(&v), ["attendee.email"], "{v}");
    // Nothing was booked or queued; a good address books.
    let d = db(&url).await;
    for table in ["bookings", "mail_events", "mail_outbox"] {
        let n: i64 = d
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    book(
        &c,
        &t,
        booking(et, &slot(0), "ann.lee@example.com", &["bob@example.com"]),
    )
    .await;
}

// ---- OCI Email Delivery (SubmitRawEmail) ------------------------------------------------------

/// A stand-in for Email Delivery's HTTPS submission endpoint on 127.0.0.1: it checks each
/// request as OCI does (the signature over the body's sha256, length and type; the path; the
/// `message/rfc822` type; the compartment and sender headers), answers the first `fail_first`
/// with 500 and a request for `refuse` with 400, and stores what it accepts in a Maildir with
/// the envelope as `X-RcptTo`/`X-MailFrom` headers (as `smtpd.py` does).
#[derive(Clone)]
struct EmailStand {
    signatures: std::sync::Arc<crate::support::ocistand::Signatures>,
    maildir: PathBuf,
    compartment: String,
    refuse: String,
    fail_first: std::sync::Arc<std::sync::atomic::AtomicU32>,
    problems: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn email_stand(
    axum::extract::State(s): axum::extract::State<EmailStand>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use crate::support::ocistand::{header, incoming, json_reply, oci_error};
    let (method, path, pq, _, headers, body) = incoming(req).await;
    let mut problems = Vec::new();
    if let Err(e) = s.signatures.verify(&method, &pq, &headers, &body) {
        problems.push(format!("signature: {e}"));
    }
    if (method.as_str(), path.as_str())
        != (
            "POST",
            calops::service::mail::transport::SUBMIT_RAW_EMAIL_PATH,
        )
    {
        problems.push(format!("{method} {path}"));
    }
    for (name, want) in [
        ("content-type", "message/rfc822"),
        ("compartment-id", s.compartment.as_str()),
        ("sender", "bookings@acme.example"),
    ] {
        if header(&headers, name).as_deref() != Some(want) {
            problems.push(format!("{name}: {:?}", header(&headers, name)));
        }
    }
    if !problems.is_empty() {
        s.problems.lock().unwrap().extend(problems.clone());
        return oci_error(401, "NotAuthenticated", &problems.join("; "));
    }
    let rcpts = header(&headers, "recipients").unwrap_or_default();
    if s.fail_first
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
    {
        return oci_error(500, "InternalServerError", "try again");
    }
    if rcpts == s.refuse {
        return oci_error(400, "InvalidParameter", "recipient is suppressed");
    }
    let mut stored =
        format!("X-RcptTo: {rcpts}\r\nX-MailFrom: bookings@acme.example\r\n").into_bytes();
    stored.extend_from_slice(&body);
    let name = uuid::Uuid::new_v4().to_string();
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(s.maildir.join(sub)).unwrap();
    }
    calops::service::mail::transport::write_maildir(&s.maildir, &name, &stored).unwrap();
    json_reply(
        200,
        json!({"messageId": name, "envelopeId": name, "suppressedRecipients": []}),
    )
}

/// On OCI mail goes through Email Delivery's `SubmitRawEmail`, signed as the service (the
/// resource principal in production; an API key here, checked the same way): the whole MIME
/// message arrives, its invitation matching the booking's ICS; a 500 is tried again, a 400
/// for a recipient is dead for that recipient only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_email_submits_the_whole_signed_message_and_retries_only_what_may_pass_later() {
    const TEST: &str =
        "oci_email_submits_the_whole_signed_message_and_retries_only_what_may_pass_later";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    use crate::support::ocistand::{key, key_id, serve, Signatures};
    use calops::oci::client::{OciClient, RetryPolicy, Service};
    use calops::oci::signer::Signer;
    const COMPARTMENT: &str = "ocid1.compartment.oc1..mail";
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let k = key();
    let stand = EmailStand {
        signatures: std::sync::Arc::new(Signatures {
            public: k.to_public_key(),
            key_ids: vec![key_id(&k)],
            host: None,
        }),
        maildir: maildir.clone(),
        compartment: COMPARTMENT.into(),
        refuse: "nobody@refused.example".into(),
        fail_first: std::sync::Arc::new(2.into()),
        problems: Default::default(),
    };
    let base = serve(
        axum::Router::new()
            .fallback(email_stand)
            .with_state(stand.clone()),
    )
    .await;
    let client = OciClient::new(Signer::new(key_id(&k), k), "ap-sydney-1")
        .unwrap()
        .with_retry_policy(RetryPolicy::none())
        .with_endpoint(Service::EmailSubmission, url::Url::parse(&base).unwrap());
    let url = fresh_database().await.unwrap();
    let mut config =
        calops_testkit::app_config(&url, None, calops::service::ratelimit::policy::Limits::OFF);
    config.mail = mail_settings(Transport::OciEmail {
        compartment_id: COMPARTMENT.into(),
    });
    config.oci = Some(client);
    let app = TestApp::spawn_with(config).await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, 1, None).await;
    let b = book(
        &c,
        &t,
        booking(
            t.event_types[0],
            &slot(0),
            "ann@example.com",
            &["nobody@refused.example"],
        ),
    )
    .await;
    let all = wait_for_mail(&py, &maildir, 2, 30).await;
    assert_eq!(stand.problems.lock().unwrap().as_slice(), [] as [String; 0]);
    assert_eq!(
        rcpts(&all.iter().collect::<Vec<_>>()),
        ["ann@example.com", t.host_email.as_str()]
    );
    let (ical_uid, seq, _) = api_ics(&c, &t, b["uid"].as_str().unwrap()).await;
    for m in &all {
        assert_eq!(m["ics"]["uid"], ical_uid.as_str(), "{m}");
        assert_eq!(m["ics"]["sequence"], seq);
        assert_eq!(m["ics"]["method"], "REQUEST");
    }
    let d = db(&url).await;
    let rows = d
        .query(
            "SELECT recipient, status, attempts, COALESCE(last_error, '') FROM mail_outbox ORDER BY recipient",
            &[],
        )
        .await
        .unwrap();
    let dead: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.get::<_, String>(1) == "dead")
        .map(|r| (r.get(0), r.get(3)))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "nobody@refused.example");
    assert!(dead[0].1.contains("400"), "{}", dead[0].1);
    let tried: i32 = rows.iter().map(|r| r.get::<_, i32>(2)).sum();
    assert!(
        tried >= 5,
        "the two 500s were tried again ({tried} attempts)"
    );
}

/// The SMTP password behind a `vault:` reference: the real `serve`, signing as a container's
/// resource principal, reads it from the signature-checking Vault stand-in at start, like its
/// other secrets, and signs in to aiosmtpd with it (AUTH after STARTTLS). The password is in
/// neither the environment nor the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smtp_password_can_be_a_vault_secret() {
    const TEST: &str = "the_smtp_password_can_be_a_vault_secret";
    if !have_pg(TEST) {
        return;
    }
    let Some(py) = python(TEST) else { return };
    use crate::support::oci::{session_token, shared_key, unix_in, vectors, Oci};
    const SECRET: &str = "ocid1.vaultsecret.oc1.ap-sydney-1.smtppassword";
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let (cert, key) = certificate(dir.path());
    let smtp_port = free_port();
    let password = calops::pg::random_token(24);
    let _smtpd = Smtpd::start_tls_auth(&py, smtp_port, &maildir, (&cert, &key), &password);
    let v = vectors();
    let k = shared_key(&v);
    let (oci, _server) = Oci::start(
        k.to_public_key(),
        vec![crate::support::ocistand::key_id(&k)],
    )
    .await;
    oci.store
        .lock()
        .unwrap()
        .secrets
        .insert(SECRET.into(), password.clone());
    let token = session_token(unix_in(3600), "mail");
    oci.tokens.lock().unwrap().valid.insert(token.clone());
    let rpst = dir.path().join("rpst");
    let rp_key = dir.path().join("rp.pem");
    std::fs::write(&rpst, &token).unwrap();
    std::fs::write(
        &rp_key,
        crate::support::oci::s(&v["credentials"], "private_key_pkcs8_pem"),
    )
    .unwrap();
    let database_url = fresh_database().await.unwrap();
    let port = free_port();
    let log = dir.path().join("serve.log");
    let extra = [
        (
            "CALOPS_MAIL_TRANSPORT",
            format!("smtp://127.0.0.1:{smtp_port}"),
        ),
        ("CALOPS_SMTP_CA_FILE", cert.display().to_string()),
        ("CALOPS_SMTP_USERNAME", SMTP_USER.to_string()),
        ("CALOPS_SMTP_PASSWORD_REF", format!("vault:{SECRET}")),
        ("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2".to_string()),
        ("OCI_RESOURCE_PRINCIPAL_RPST", rpst.display().to_string()),
        (
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM",
            rp_key.display().to_string(),
        ),
        ("OCI_RESOURCE_PRINCIPAL_REGION", "ap-sydney-1".to_string()),
        ("CALOPS_ENDPOINT_SECRETS", oci.base.to_string()),
    ];
    let server = serve_with(&database_url, port, smtp_port, &log, &extra);
    let base = format!("http://127.0.0.1:{port}");
    healthy(&base).await;
    assert_eq!(
        oci.hits(&format!("/20190301/secretbundles/{SECRET}")),
        1,
        "serve read the SMTP password from Vault once, at start"
    );
    let c = Client::at(&base);
    let t = tenant(&c, 1, None).await;
    book(
        &c,
        &t,
        booking(t.event_types[0], &slot(0), "ann@example.com", &[]),
    )
    .await;
    let all = wait_for_mail(&py, &maildir, 2, 30).await;
    assert_eq!(
        rcpts(&all.iter().collect::<Vec<_>>()),
        ["ann@example.com", t.host_email.as_str()]
    );
    let environ = std::fs::read(format!("/proc/{}/environ", server.0.id())).unwrap();
    drop(server);
    assert!(!String::from_utf8_lossy(&environ).contains(&password));
    assert!(!std::fs::read_to_string(&log).unwrap().contains(&password));
}
