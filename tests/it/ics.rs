//! Booking calendars (ICS) in object storage and composite bookings, against real servers:
//! PostgreSQL (the shared test cluster), the service over HTTP on 127.0.0.1, the filesystem
//! backend, and an S3-compatible server (`moto` from PyPI, started on 127.0.0.1). Calendar
//! files are checked with an independent parser (Python's `icalendar` package).

use crate::support::api::{code, Client};
use crate::support::{db, eventually, ALL_DAYS};
use calops::service::objstore::{self, ObjectStore};
use calops_testkit::{fresh_database, have_pg, TestApp, BOOTSTRAP_TOKEN};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Python with `icalendar` (and `moto` when `moto` is true).
fn python(test: &str, moto: bool) -> Option<PathBuf> {
    let imports = if moto {
        "import icalendar, moto, flask"
    } else {
        "import icalendar"
    };
    crate::support::python(test, imports)
}

/// Parse a calendar with Python's icalendar; one JSON object per file.
const PARSE_ICS: &str = r#"
import json, sys
from icalendar import Calendar
out = []
for path in sys.argv[1:]:
    cal = Calendar.from_ical(open(path, 'rb').read())
    ev = [c for c in cal.walk('VEVENT')]
    assert len(ev) == 1, len(ev)
    e = ev[0]
    att = e.get('ATTENDEE')
    att = att if isinstance(att, list) else ([att] if att is not None else [])
    out.append({
        'method': str(cal.get('METHOD')),
        'version': str(cal.get('VERSION')),
        'prodid': str(cal.get('PRODID')),
        'uid': str(e.get('UID')),
        'sequence': int(e.get('SEQUENCE')),
        'status': str(e.get('STATUS')),
        'summary': str(e.get('SUMMARY')),
        'dtstart': e.decoded('DTSTART').isoformat(),
        'dtend': e.decoded('DTEND').isoformat(),
        'dtstamp': e.decoded('DTSTAMP').isoformat(),
        'organizer': str(e.get('ORGANIZER')),
        'attendees': [str(a) for a in att],
        'attendee_names': [str(a.params.get('CN', '')) for a in att],
    })
print(json.dumps(out))
"#;

fn parse_ics(py: &Path, texts: &[&[u8]]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["-c".to_string(), PARSE_ICS.to_string()];
    for (i, t) in texts.iter().enumerate() {
        let p = dir.path().join(format!("{i}.ics"));
        std::fs::write(&p, t).unwrap();
        args.push(p.display().to_string());
    }
    let out = Command::new(py).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "icalendar refused the file: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(texts[0])
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// RFC 5545 framing that a lenient parser would not catch: CRLF only, no line over 75 octets.
fn assert_framing(text: &[u8]) {
    let s = std::str::from_utf8(text).expect("UTF-8");
    assert!(s.ends_with("\r\n"));
    for line in s.split("\r\n") {
        assert!(!line.contains('\n') && !line.contains('\r'), "bare LF/CR");
        assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
    }
}

struct Tenant {
    org_id: i64,
    key: String,
    event_type_id: i64,
}

/// An organization with a host working 09:00-12:00 UTC every day and a 30-minute event type.
async fn tenant(c: &Client, name: &str) -> Tenant {
    let org = c
        .create("/v2/organizations", BOOTSTRAP_TOKEN, json!({"name": name}))
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let event_type_id = host(c, &key, org_id, "host", 0).await;
    Tenant {
        org_id,
        key,
        event_type_id,
    }
}

/// Another host of the organization with its own 30-minute event type (buffers `after`).
async fn host(c: &Client, key: &str, org_id: i64, name: &str, after: i64) -> i64 {
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            key,
            json!({"name": format!("Host {name}"), "email": format!("{name}-{org_id}@example.com"), "timeZone": "UTC"}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.create(
        "/v2/schedules",
        key,
        json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
               "availability": [{"days": ALL_DAYS, "startTime": "09:00", "endTime": "12:00"}]}),
    )
    .await;
    c.create(
        "/v2/event-types",
        key,
        json!({"userId": user_id, "title": format!("Call {name}"), "slug": format!("call-{name}"),
               "lengthInMinutes": 30, "afterEventBuffer": after}),
    )
    .await["id"]
        .as_i64()
        .unwrap()
}

/// A long multibyte attendee name, so that ATTENDEE lines must fold inside UTF-8 text.
const LONG_NAME: &str = "Zoë Ångström-Ōkubo 日本語の名前 with a rather long tail, truly";

fn booking(et: i64, start: &str) -> Value {
    json!({"start": start, "eventTypeId": et, "guests": ["guest@example.com"],
           "attendee": {"name": LONG_NAME, "email": "zoe@example.com", "timeZone": "Europe/Berlin"}})
}

/// Wait until the object under `key` shows SEQUENCE `seq`; its bytes.
async fn object_with_sequence(store: &dyn ObjectStore, key: &str, seq: i32) -> Vec<u8> {
    let want = format!("\r\nSEQUENCE:{seq}\r\n");
    eventually(30, &format!("{key} with SEQUENCE:{seq}"), || async {
        match store.get(key).await {
            Ok(Some(b)) if String::from_utf8_lossy(&b).contains(&want) => Some(b),
            _ => None,
        }
    })
    .await
}

fn config(database_url: String, storage: Option<String>) -> calops::service::config::Config {
    calops::service::config::Config {
        object_storage_url: storage,
        db_pool_size: 8,
        ..calops_testkit::app_config(
            &database_url,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ics_files_on_the_filesystem_follow_create_reschedule_and_cancel() {
    let test = "ics_files_on_the_filesystem_follow_create_reschedule_and_cancel";
    if !have_pg(test) {
        return;
    }
    let Some(py) = python(test, false) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(dir.path())
        .unwrap()
        .to_string();
    let app = TestApp::spawn_with(config(fresh_database().await.unwrap(), Some(url)))
        .await
        .unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Icsfs").await;
    let store = objstore::FsStore::new(dir.path().to_path_buf());

    let b = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T09:00:00Z"),
        )
        .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    let key = format!("ics/{}/{uid}.ics", t.org_id);
    let first = object_with_sequence(&store, &key, 0).await;
    assert_framing(&first);
    let p = &parse_ics(&py, &[&first])[0];
    assert_eq!(p["method"], "REQUEST");
    assert_eq!(p["version"], "2.0");
    assert_eq!(p["uid"], uid.as_str());
    assert_eq!(p["sequence"], 0);
    assert_eq!(p["status"], "CONFIRMED");
    assert_eq!(p["dtstart"], "2031-03-03T09:00:00+00:00");
    assert_eq!(p["dtend"], "2031-03-03T09:30:00+00:00");
    assert!(
        p["organizer"].as_str().unwrap().starts_with("mailto:host-"),
        "{p}"
    );
    assert_eq!(
        p["attendees"],
        json!(["mailto:zoe@example.com", "mailto:guest@example.com"])
    );
    // The folded multibyte name comes back whole through an independent parser.
    assert_eq!(p["attendee_names"][0], LONG_NAME);
    // Served from storage, byte for byte.
    let (served, source) = ics(&c, &uid, &t.key).await;
    assert_eq!(
        (served.as_slice(), source.as_str()),
        (first.as_slice(), "storage")
    );

    // Reschedule: same calendar UID and file, SEQUENCE 1, new times.
    let moved = c
        .create(
            &format!("/v2/bookings/{uid}/reschedule"),
            &t.key,
            json!({"start": "2031-03-03T10:00:00Z"}),
        )
        .await;
    let new_uid = moved["uid"].as_str().unwrap().to_string();
    assert_ne!(new_uid, uid);
    let second = object_with_sequence(&store, &key, 1).await;
    let p = &parse_ics(&py, &[&second])[0];
    assert_eq!(
        (p["method"].as_str(), p["uid"].as_str()),
        (Some("REQUEST"), Some(uid.as_str()))
    );
    assert_eq!(p["dtstart"], "2031-03-03T10:00:00+00:00");
    assert_eq!(p["dtend"], "2031-03-03T10:30:00+00:00");
    assert!(!dir
        .path()
        .join(format!("ics/{}/{new_uid}.ics", t.org_id))
        .exists());
    // Either booking of the chain answers with the calendar as it stands.
    assert_eq!(ics(&c, &uid, &t.key).await.0, second);
    assert_eq!(ics(&c, &new_uid, &t.key).await.0, second);

    // Cancel: METHOD:CANCEL, STATUS:CANCELLED, SEQUENCE 2.
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{new_uid}/cancel"),
            &t.key,
            json!({"cancellationReason": "ill; sorry, really"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let third = object_with_sequence(&store, &key, 2).await;
    assert_framing(&third);
    let p = &parse_ics(&py, &[&third])[0];
    assert_eq!(p["method"], "CANCEL");
    assert_eq!(p["status"], "CANCELLED");
    assert_eq!(p["uid"], uid.as_str());
    assert_eq!(p["dtstart"], "2031-03-03T10:00:00+00:00");

    // Nothing is left pending; the health check reports the directory.
    let db = db(&app.database_url).await;
    let pending: i64 = eventually(10, "no pending writes", || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM ics_pending", &[])
            .await
            .unwrap()
            .get(0);
        (n == 0).then_some(n)
    })
    .await;
    assert_eq!(pending, 0);
    let (s, h) = c.get("/health", "").await;
    assert_eq!(
        (s, &h["checks"]["objectStorage"]["status"]),
        (StatusCode::OK, &json!("up"))
    );
    // A booking of another organization's calendar is not visible.
    let other = tenant(&c, "Icsother").await;
    let (s, v) = c.get(&format!("/v2/bookings/{uid}/ics"), &other.key).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "not_found"), "{v}");
    app.running.shutdown().await.unwrap();
}

/// A `moto` S3 server on 127.0.0.1:`port`, killed on drop.
struct Moto {
    child: Child,
}

impl Moto {
    async fn start(py: &Path, port: u16) -> Moto {
        let child = Command::new(py)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto");
        let m = Moto { child };
        let http = reqwest::Client::new();
        eventually(60, "moto to answer", || {
            let http = http.clone();
            async move {
                http.get(format!("http://127.0.0.1:{port}/"))
                    .send()
                    .await
                    .ok()
                    .map(|_| ())
            }
        })
        .await;
        m
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ics_files_in_s3_are_written_after_a_storage_outage() {
    let test = "ics_files_in_s3_are_written_after_a_storage_outage";
    if !have_pg(test) {
        return;
    }
    let Some(py) = python(test, true) else { return };
    let port = free_port();
    let moto = Moto::start(&py, port).await;
    // Credentials by reference: the service reads them from these variables.
    crate::support::env::expect(&[
        ("CALOPS_TEST_S3_KEY", "AKIDCALOPSTEST"),
        ("CALOPS_TEST_S3_SECRET", "calops-test-secret-value"),
    ]);
    let url = format!(
        "s3://calops-ics?endpoint=http://127.0.0.1:{port}&region=us-east-1&access_key=env:CALOPS_TEST_S3_KEY&secret_key=env:CALOPS_TEST_S3_SECRET"
    );
    let spec = objstore::Spec::parse(&url, &|n| std::env::var(n).ok()).unwrap();
    let objstore::Spec::S3(s3spec) = &spec else {
        panic!("{spec:?}")
    };
    let bucket = objstore::s3::S3Store::new(s3spec).unwrap();
    bucket.create_bucket().await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(objstore::s3::S3Store::new(s3spec).unwrap());

    let app = TestApp::spawn_with(config(fresh_database().await.unwrap(), Some(url)))
        .await
        .unwrap();
    let c = Client::new(&app);
    let (_, h) = c.get("/health", "").await;
    assert_eq!(h["checks"]["objectStorage"]["status"], "up", "{h}");
    let t = tenant(&c, "Icss3").await;

    let b = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T09:00:00Z"),
        )
        .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    let key = format!("ics/{}/{uid}.ics", t.org_id);
    let stored = object_with_sequence(store.as_ref(), &key, 0).await;
    assert_framing(&stored);
    let p = &parse_ics(&py, &[&stored])[0];
    assert_eq!(
        (
            p["method"].as_str(),
            p["uid"].as_str(),
            p["sequence"].as_i64()
        ),
        (Some("REQUEST"), Some(uid.as_str()), Some(0))
    );
    let (served, source) = eventually(10, "the ICS served from storage", || async {
        let (b, s) = ics(&c, &uid, &t.key).await;
        (s == "storage").then_some((b, s))
    })
    .await;
    assert_eq!((served, source.as_str()), (stored.clone(), "storage"));

    // Storage goes away: health says so, bookings still succeed.
    moto.stop();
    // (`/health` keeps its result for a second.)
    let (s, h) = eventually(10, "/health to report the storage outage", || async {
        let (s, h) = c.get("/health", "").await;
        (h["status"] == "degraded").then_some((s, h))
    })
    .await;
    assert_eq!(s, 200);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["checks"]["objectStorage"]["status"], "down", "{h}");
    assert!(
        !h.to_string().contains("calops-test-secret-value")
            && !h.to_string().contains("AKIDCALOPSTEST")
    );
    let b2 = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T10:00:00Z"),
        )
        .await;
    let uid2 = b2["uid"].as_str().unwrap().to_string();
    let (s, v) = c
        .post(&format!("/v2/bookings/{uid}/cancel"), &t.key, json!({}))
        .await;
    assert_eq!(s, 200, "{v}");
    // The writes are pending, with the failure recorded (no secret in it).
    let db = db(&app.database_url).await;
    let err: String = eventually(15, "a recorded failed write", || async {
        db.query_opt(
            "SELECT last_error FROM ics_pending WHERE ical_uid = $1::text::uuid AND attempts >= 1 AND last_error IS NOT NULL",
            &[&uid2],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
    })
    .await;
    assert!(err.contains("calops-ics"), "{err}");
    assert!(
        !err.contains("AKIDCALOPSTEST") && !err.contains("X-Amz-Signature"),
        "{err}"
    );
    // Meanwhile GET renders from the database.
    let (rendered, source) = ics(&c, &uid2, &t.key).await;
    assert_eq!(source, "database");
    let p = &parse_ics(&py, &[&rendered])[0];
    assert_eq!(
        (p["uid"].as_str(), p["sequence"].as_i64()),
        (Some(uid2.as_str()), Some(0))
    );

    // Storage returns (empty: moto keeps nothing): both calendars are written.
    let _moto = Moto::start(&py, port).await;
    bucket.create_bucket().await.unwrap();
    let key2 = format!("ics/{}/{uid2}.ics", t.org_id);
    let second = object_with_sequence(store.as_ref(), &key2, 0).await;
    let cancelled = object_with_sequence(store.as_ref(), &key, 1).await;
    let parsed = parse_ics(&py, &[&second, &cancelled]);
    assert_eq!(
        (parsed[0]["method"].as_str(), parsed[0]["dtstart"].as_str()),
        (Some("REQUEST"), Some("2031-03-03T10:00:00+00:00"))
    );
    assert_eq!(
        (parsed[1]["method"].as_str(), parsed[1]["status"].as_str()),
        (Some("CANCEL"), Some("CANCELLED"))
    );
    eventually(10, "no pending writes", || async {
        let n: i64 = db
            .query_one("SELECT count(*) FROM ics_pending", &[])
            .await
            .unwrap()
            .get(0);
        (n == 0).then_some(())
    })
    .await;
    let (_, h) = c.get("/health", "").await;
    assert_eq!(h["checks"]["objectStorage"]["status"], "up", "{h}");
    app.running.shutdown().await.unwrap();
}

fn segment(et: i64, start: &str) -> Value {
    json!({"eventTypeId": et, "start": start})
}

fn composite(segments: Vec<Value>) -> Value {
    json!({"segments": segments, "guests": ["guest@example.com"],
           "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "UTC"}})
}

/// Accepted bookings of an event type's host.
async fn accepted_of(db: &tokio_postgres::Client, et: i64) -> i64 {
    db.query_one(
        "SELECT count(*) FROM bookings b JOIN event_types e ON e.user_id = b.host_user_id
         WHERE e.id = $1 AND b.status = 'accepted'",
        &[&et],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composite_bookings_are_all_or_nothing_and_name_the_segment() {
    let test = "composite_bookings_are_all_or_nothing_and_name_the_segment";
    if !have_pg(test) {
        return;
    }
    let Some(py) = python(test, false) else {
        return;
    };
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Composite").await;
    let a = t.event_type_id;
    let b = host(&c, &t.key, t.org_id, "second", 10).await;
    let db = db(&app.database_url).await;

    // A, a pause, then B with another host: both booked, in request order.
    let v = c
        .create(
            "/v2/bookings/composite",
            &t.key,
            composite(vec![
                segment(a, "2031-03-03T09:00:00Z"),
                segment(b, "2031-03-03T10:00:00Z"),
            ]),
        )
        .await;
    let booked = v.as_array().unwrap();
    assert_eq!(booked.len(), 2);
    assert_eq!(
        (
            booked[0]["eventTypeId"].as_i64(),
            booked[0]["start"].as_str()
        ),
        (Some(a), Some("2031-03-03T09:00:00.000Z"))
    );
    assert_eq!(
        (
            booked[1]["eventTypeId"].as_i64(),
            booked[1]["start"].as_str()
        ),
        (Some(b), Some("2031-03-03T10:00:00.000Z"))
    );
    assert_ne!(booked[0]["hosts"][0]["id"], booked[1]["hosts"][0]["id"]);
    // Each segment is a booking with its own calendar (no storage here: rendered from the database).
    let uid1 = booked[1]["uid"].as_str().unwrap();
    let (text, source) = ics(&c, uid1, &t.key).await;
    assert_eq!(source, "database");
    let p = &parse_ics(&py, &[&text])[0];
    assert_eq!(
        (p["uid"].as_str(), p["dtstart"].as_str()),
        (Some(uid1), Some("2031-03-03T10:00:00+00:00"))
    );

    // An Idempotency-Key returns the first result on a retry, without booking again.
    let body = composite(vec![
        segment(a, "2031-03-06T09:00:00Z"),
        segment(b, "2031-03-06T10:00:00Z"),
    ]);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let res = c
            .http
            .post(format!("{}/v2/bookings/composite", c.base))
            .bearer_auth(&t.key)
            .header("Idempotency-Key", "composite-key-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let replayed = res.headers().get("idempotent-replayed").is_some();
        assert_eq!(res.status(), StatusCode::CREATED);
        let v: Value = res.json().await.unwrap();
        answers.push((replayed, v["data"].clone()));
    }
    assert_eq!((answers[0].0, answers[1].0), (false, true));
    assert_eq!(answers[0].1, answers[1].1);
    assert_eq!(answers[0].1.as_array().unwrap().len(), 2);

    // The second segment is taken: 409 naming segment 1, and the first segment stays free.
    c.create(
        "/v2/bookings",
        &t.key,
        json!({"start": "2031-03-04T11:00:00Z", "eventTypeId": b,
        "attendee": {"name": "X", "email": "x@example.com", "timeZone": "UTC"}}),
    )
    .await;
    let before = (accepted_of(&db, a).await, accepted_of(&db, b).await);
    let (s, v) = c
        .post(
            "/v2/bookings/composite",
            &t.key,
            composite(vec![
                segment(a, "2031-03-04T09:00:00Z"),
                segment(b, "2031-03-04T11:00:00Z"),
            ]),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_conflict"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["segment"], 1, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("segments[1]:"),
        "{v}"
    );
    // Not a slot (outside working hours): 422 naming segment 1; nothing booked.
    let (s, v) = c
        .post(
            "/v2/bookings/composite",
            &t.key,
            composite(vec![
                segment(a, "2031-03-04T09:00:00Z"),
                segment(b, "2031-03-04T13:00:00Z"),
            ]),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["segment"], 1);
    assert_eq!(
        (accepted_of(&db, a).await, accepted_of(&db, b).await),
        before
    );
    // Out of order, unknown event type, bad input: each named.
    let (s, v) = c
        .post(
            "/v2/bookings/composite",
            &t.key,
            composite(vec![
                segment(a, "2031-03-05T10:00:00Z"),
                segment(b, "2031-03-05T09:00:00Z"),
            ]),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "validation_error"),
        "{v}"
    );
    assert_eq!(
        v["error"]["details"]["fields"][0]["field"], "segments[1].start",
        "{v}"
    );
    let (s, v) = c
        .post(
            "/v2/bookings/composite",
            &t.key,
            composite(vec![
                segment(a, "2031-03-05T09:00:00Z"),
                segment(999_999, "2031-03-05T10:00:00Z"),
            ]),
        )
        .await;
    assert_eq!(
        (s, v["error"]["details"]["segment"].as_i64()),
        (StatusCode::NOT_FOUND, Some(1)),
        "{v}"
    );
    let (s, v) = c
        .post("/v2/bookings/composite", &t.key, json!({"segments": []}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        (accepted_of(&db, a).await, accepted_of(&db, b).await),
        before
    );

    // Concurrent composites share their last segment (B at 11:30); each has its own first
    // segment (A at 09:00 ... 11:00). Exactly one wins per round; the losers get 409 naming
    // segment 1 and keep nothing, not even their own free first segment.
    let rounds = 8;
    let clients = 5;
    for round in 0..rounds {
        let day = format!("2031-04-{:02}", round + 1);
        let mut tasks = Vec::new();
        for k in 0..clients {
            let (c, key) = (c.clone(), t.key.clone());
            let body = composite(vec![
                segment(
                    a,
                    &format!("{day}T{:02}:{:02}:00Z", 9 + k / 2, (k % 2) * 30),
                ),
                segment(b, &format!("{day}T11:30:00Z")),
            ]);
            tasks.push(tokio::spawn(async move {
                c.post("/v2/bookings/composite", &key, body).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            let (s, v) = task.await.unwrap();
            match s {
                StatusCode::CREATED => won += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(
                        (code(&v), v["error"]["details"]["segment"].as_i64()),
                        ("booking_conflict", Some(1)),
                        "{v}"
                    )
                }
                other => panic!("round {round}: {other} {v}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM bookings WHERE status = 'accepted' AND start_at >= $1::text::timestamptz
                   AND start_at < $1::text::timestamptz + interval '1 day'",
                &[&day],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            n, 2,
            "round {round}: the winner's two segments and nothing else"
        );
    }
    app.running.shutdown().await.unwrap();
}

/// Migration 4 over bookings made before it: calendar UIDs follow reschedule chains and
/// SEQUENCE counts reschedules and the cancel; every calendar gets a pending write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_four_backfills_calendar_uids_along_reschedule_chains() {
    if !have_pg("migration_four_backfills_calendar_uids_along_reschedule_chains") {
        return;
    }
    use calops::service::store::{migrations::MIGRATIONS, Store};
    let url = fresh_database().await.unwrap();
    let c = db(&url).await;
    c.batch_execute(MIGRATIONS[0].2).await.unwrap();
    c.batch_execute(MIGRATIONS[1].2).await.unwrap();
    c.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO schema_migrations (version, name) VALUES (1, 'one'), (2, 'two');
         INSERT INTO organizations (name, slug) VALUES ('Old', 'old');
         INSERT INTO users (org_id, name, email, time_zone) VALUES (1, 'H', 'h@example.com', 'UTC');
         INSERT INTO event_types (org_id, user_id, title, slug, length_minutes) VALUES (1, 1, 'Call', 'call', 30);
         INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at, status, rescheduled_to_uid)
           VALUES ('00000000-0000-0000-0000-00000000000a', 1, 1, 1, '2031-03-03T09:00Z', '2031-03-03T09:30Z', 'cancelled', '00000000-0000-0000-0000-00000000000b');
         INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at, status, rescheduled_from_uid, rescheduled_to_uid)
           VALUES ('00000000-0000-0000-0000-00000000000b', 1, 1, 1, '2031-03-03T10:00Z', '2031-03-03T10:30Z', 'cancelled', '00000000-0000-0000-0000-00000000000a', '00000000-0000-0000-0000-00000000000c');
         INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at, status, rescheduled_from_uid)
           VALUES ('00000000-0000-0000-0000-00000000000c', 1, 1, 1, '2031-03-03T11:00Z', '2031-03-03T11:30Z', 'cancelled', '00000000-0000-0000-0000-00000000000b'),
                  ('00000000-0000-0000-0000-00000000000d', 1, 1, 1, '2031-03-04T11:00Z', '2031-03-04T11:30Z', 'accepted', NULL);",
    )
    .await
    .unwrap();
    let store = Store::new(&url, 2).unwrap();
    let applied = store.migrate().await.unwrap();
    assert!(applied.contains(&4), "{applied:?}");
    let rows: Vec<(String, String, i32)> = c
        .query(
            "SELECT uid::text, ical_uid::text, ical_sequence FROM bookings ORDER BY uid",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let a = "00000000-0000-0000-0000-00000000000a".to_string();
    let d = "00000000-0000-0000-0000-00000000000d".to_string();
    assert_eq!(rows[0], (a.clone(), a.clone(), 0));
    assert_eq!((rows[1].1.clone(), rows[1].2), (a.clone(), 1));
    // Rescheduled twice, then cancelled: 2 + 1.
    assert_eq!((rows[2].1.clone(), rows[2].2), (a.clone(), 3));
    assert_eq!(rows[3], (d.clone(), d.clone(), 0));
    let pending: Vec<String> = c
        .query("SELECT ical_uid::text FROM ics_pending ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(pending, [a, d]);
}

/// A pending write outlives the process: storage is unusable while a booking is made, the
/// service stops, storage comes back, and the next start writes the calendar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_calendar_writes_survive_a_restart() {
    if !have_pg("pending_calendar_writes_survive_a_restart") {
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let root = parent.path().join("objects");
    let url = url::Url::from_directory_path(&root).unwrap().to_string();
    let database_url = fresh_database().await.unwrap();
    let app = TestApp::spawn_with(config(database_url.clone(), Some(url.clone())))
        .await
        .unwrap();
    let c = Client::new(&app);
    let (_, h) = c.get("/health", "").await;
    assert_eq!(h["checks"]["objectStorage"]["status"], "down", "{h}");
    let t = tenant(&c, "Restart").await;
    let b = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T09:00:00Z"),
        )
        .await;
    let uid = b["uid"].as_str().unwrap().to_string();
    let db = db(&database_url).await;
    eventually(15, "a failed attempt", || async {
        let r = db
            .query_opt(
                "SELECT last_error FROM ics_pending WHERE attempts >= 1",
                &[],
            )
            .await
            .unwrap();
        r.and_then(|r| r.get::<_, Option<String>>(0))
    })
    .await;
    app.running.shutdown().await.unwrap();

    std::fs::create_dir(&root).unwrap();
    let app = TestApp::spawn_with(config(database_url, Some(url)))
        .await
        .unwrap();
    let store = objstore::FsStore::new(root.clone());
    let text = object_with_sequence(&store, &format!("ics/{}/{uid}.ics", t.org_id), 0).await;
    assert!(String::from_utf8_lossy(&text).contains(&format!("\r\nUID:{uid}\r\n")));
    app.running.shutdown().await.unwrap();
}

/// Storage configured without its credentials (OCI's native URL, and no resource principal):
/// the service starts, /health says why storage is down, bookings succeed, and their writes
/// wait instead of being dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_without_credentials_degrades_and_keeps_writes_pending() {
    let test = "storage_without_credentials_degrades_and_keeps_writes_pending";
    if !have_pg(test) {
        return;
    }
    let url = format!(
        "https://objectstorage.ap-sydney-1.oraclecloud.com/n/ns{}/b/calops",
        free_port()
    );
    let app = TestApp::spawn_with(config(fresh_database().await.unwrap(), Some(url)))
        .await
        .unwrap();
    let c = Client::new(&app);
    // The private listener shows why (anonymous callers of the public one see statuses).
    let (s, h) = Client::at(&app.private_base).get("/health", "").await;
    assert_eq!(
        (s, &h["status"]),
        (StatusCode::OK, &json!("degraded")),
        "{h}"
    );
    // OCI's native URL: the resource principal signs, and there is none here.
    let why = h["checks"]["objectStorage"]["error"].as_str().unwrap();
    assert!(why.contains("OCI_RESOURCE_PRINCIPAL_VERSION"), "{why}");
    let t = tenant(&c, "Nocreds").await;
    c.create(
        "/v2/bookings",
        &t.key,
        booking(t.event_type_id, "2031-03-03T09:00:00Z"),
    )
    .await;
    // The write is recorded with the booking and stays while the writer runs its rounds
    // (it has no usable storage to write to, and must not drop what it cannot write).
    let db = db(&app.database_url).await;
    let pending = || async {
        db.query_one("SELECT count(*) FROM ics_pending", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(pending().await, 1, "the booking records its write");
    let until = Instant::now() + calops::service::calendar::POLL * 3;
    while Instant::now() < until {
        assert_eq!(pending().await, 1, "the write waits for usable storage");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.running.shutdown().await.unwrap();
}

/// GET the ICS: (bytes, source header).
async fn ics(c: &Client, uid: &str, token: &str) -> (Vec<u8>, String) {
    let res = c
        .http
        .get(format!("{}/v2/bookings/{uid}/ics", c.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/calendar; charset=utf-8"
    );
    let source = res.headers()["x-calops-ics-source"]
        .to_str()
        .unwrap()
        .to_string();
    (res.bytes().await.unwrap().to_vec(), source)
}
