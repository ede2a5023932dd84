//! Signed webhooks against real servers: a private PostgreSQL cluster, the service on
//! 127.0.0.1, and webhook receivers (HTTP servers on 127.0.0.1) that verify both signatures
//! and refuse stale timestamps. Covers delivery on create/cancel/reschedule, retries, the dead
//! letter, the circuit breaker, replays, two replicas sharing one database, secrets never
//! shown, and the durability of the outbox across `kill -9` of the real `calops serve`.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use calops::service::config::Config;
use calops::service::domain::webhooks::secrets::SecretKey;
use calops::service::domain::webhooks::sign;
use calops::service::webhooks::Settings;
use calops_testkit::{fresh_database, have_pg, TestApp, BOOTSTRAP_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec_correct-horse-battery-staple-7f3a";
const SEAL_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

// ---- a webhook receiver ------------------------------------------------------------------

/// One request the receiver accepted as authentic.
#[derive(Debug, Clone)]
struct Received {
    delivery: String,
    event: String,
    attempt: u32,
    body: Value,
    answered: u16,
}

/// Decides the status for the n-th authentic request (0-based).
type Answer = Box<dyn Fn(usize) -> u16 + Send + Sync>;

struct Receiver {
    secret: Vec<u8>,
    answer: Mutex<Answer>,
    seen: Mutex<Vec<Received>>,
    rejected: AtomicUsize,
    count: AtomicUsize,
}

struct Hook {
    url: String,
    rx: Arc<Receiver>,
}

impl Hook {
    async fn start(secret: &str, answer: Answer) -> Hook {
        let rx = Arc::new(Receiver {
            secret: secret.as_bytes().to_vec(),
            answer: Mutex::new(answer),
            seen: Mutex::new(Vec::new()),
            rejected: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(rx.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        Hook { url, rx }
    }

    fn set_answer(&self, a: Answer) {
        *self.rx.answer.lock().unwrap() = a;
    }

    fn seen(&self) -> Vec<Received> {
        self.rx.seen.lock().unwrap().clone()
    }

    fn ok(&self) -> Vec<Received> {
        self.seen()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    fn rejected(&self) -> usize {
        self.rx.rejected.load(Ordering::SeqCst)
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Verify `X-Cal-Signature-256` and `X-Calops-Signature` (5 minutes tolerance), as a real
/// receiver would; 401 for anything unsigned, forged or stale.
async fn receive(State(rx): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let cal = sign::verify_cal(&rx.secret, &body, &h("x-cal-signature-256"));
    let ts = sign::verify_timestamped(&rx.secret, &body, &h("x-calops-signature"), now_unix(), 300);
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    if cal.is_err() || ts.is_err() || parsed.is_none() {
        rx.rejected.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let n = rx.count.fetch_add(1, Ordering::SeqCst);
    let code = (rx.answer.lock().unwrap())(n);
    rx.seen.lock().unwrap().push(Received {
        delivery: h("x-calops-delivery"),
        event: h("x-calops-event"),
        attempt: h("x-calops-attempt").parse().unwrap_or(0),
        body: parsed.unwrap(),
        answered: code,
    });
    StatusCode::from_u16(code).unwrap()
}

fn always(code: u16) -> Answer {
    Box::new(move |_| code)
}

// ---- the service -------------------------------------------------------------------------

fn settings(f: impl FnOnce(&mut Settings)) -> Settings {
    let mut s = Settings {
        workers: 2,
        max_attempts: 3,
        backoff_base: Duration::from_millis(40),
        backoff_max: Duration::from_millis(200),
        timeout: Duration::from_secs(3),
        breaker_threshold: 100,
        breaker_cooldown: Duration::from_secs(60),
        poll_interval: Duration::from_millis(200),
        secret_key: Some(SecretKey::parse(SEAL_KEY).unwrap()),
        retention: Duration::from_secs(86_400),
        // The receivers listen on 127.0.0.1, which deliveries may reach only when allowed.
        allow_private: loopback_webhooks(),
    };
    f(&mut s);
    s
}

fn config(database_url: String, webhooks: Settings) -> Config {
    Config {
        db_pool_size: 8,
        webhooks,
        ..calops_testkit::app_config(
            &database_url,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    }
}

async fn app(webhooks: Settings) -> TestApp {
    let db = fresh_database().await.unwrap();
    TestApp::spawn_with(config(db, webhooks)).await.unwrap()
}

use crate::support::api::{code, Client};
use crate::support::{db, loopback_webhooks, ALL_DAYS};

struct Tenant {
    key: String,
    event_type_id: i64,
}

/// An organization with a host free 08:00-20:00 UTC every day and a 30-minute event type.
async fn tenant(c: &Client, name: &str) -> Tenant {
    let org = c
        .ok(
            Method::POST,
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            Some(json!({"name": name})),
        )
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .ok(Method::POST, &format!("/v2/organizations/{org_id}/users"), &key,
            Some(json!({"name": "Host", "email": format!("host@{}.example.com", org["slug"].as_str().unwrap()), "timeZone": "UTC"})))
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.ok(
        Method::POST,
        "/v2/schedules",
        &key,
        Some(json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
        "availability": [{"days": ALL_DAYS, "startTime": "08:00", "endTime": "20:00"}]})),
    )
    .await;
    let et = c
        .ok(
            Method::POST,
            "/v2/event-types",
            &key,
            Some(
                json!({"userId": user_id, "title": "Call", "slug": "call", "lengthInMinutes": 30}),
            ),
        )
        .await;
    Tenant {
        key,
        event_type_id: et["id"].as_i64().unwrap(),
    }
}

/// The i-th distinct 30-minute slot from 2031-01-01 08:00 UTC (24 a day).
fn slot(i: usize) -> String {
    let day: jiff::civil::Date = "2031-01-01".parse().unwrap();
    let d = day
        .checked_add(jiff::Span::new().days((i / 24) as i64))
        .unwrap();
    let minutes = 8 * 60 + (i % 24) * 30;
    format!("{d}T{:02}:{:02}:00Z", minutes / 60, minutes % 60)
}

fn booking(et: i64, start: &str) -> Value {
    json!({"start": start, "eventTypeId": et,
           "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin"}})
}

async fn subscribe(c: &Client, t: &Tenant, url: &str, triggers: &[&str]) -> i64 {
    let w = c
        .ok(
            Method::POST,
            "/v2/webhooks",
            &t.key,
            Some(json!({"subscriberUrl": url, "triggers": triggers, "secret": SECRET})),
        )
        .await;
    w["id"].as_i64().unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Check `f` every 20 ms for `window`: it must hold throughout (for "nothing more happens"
/// over a stretch of time, such as a breaker's cooldown).
async fn holds_for(what: &str, window: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + window;
    while Instant::now() < until {
        assert!(f(), "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait (up to 20 s) until no delivery in the database at `url` is pending: every attempt
/// has been recorded (after its receiver answered) and none is left to make.
async fn outbox_idle(url: &str) {
    let d = db(url).await;
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 = d
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if pending == 0 {
            return;
        }
        assert!(Instant::now() < until, "{pending} deliveries still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn deliveries(c: &Client, t: &Tenant, hook: i64) -> Vec<Value> {
    let v = c
        .call(
            Method::GET,
            &format!("/v2/webhooks/{hook}/deliveries?take=250"),
            Some(&t.key),
            None,
        )
        .await
        .1;
    v["data"].as_array().cloned().unwrap_or_default()
}

/// The deliveries of `hook` once there are `count` and `done` holds for each: an attempt is
/// recorded just after the receiver answered it.
async fn settled(
    c: &Client,
    t: &Tenant,
    hook: i64,
    count: usize,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    for _ in 0..200 {
        let ds = deliveries(c, t, hook).await;
        if ds.len() >= count && ds.iter().all(&done) {
            return ds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deliveries(c, t, hook).await
}

// ---- tests -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_are_delivered_signed_in_cal_com_shape_and_secrets_stay_hidden() {
    if !have_pg("bookings_are_delivered_signed_in_cal_com_shape_and_secrets_stay_hidden") {
        return;
    }
    let app = app(settings(|_| {})).await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Acme").await;
    let other = tenant(&c, "Bravo").await;
    let all = Hook::start(SECRET, always(200)).await;
    let created_only = Hook::start(SECRET, always(200)).await;
    let inactive = Hook::start(SECRET, always(200)).await;

    // CRUD and validation; the secret is write-only.
    let (s, v) = c
        .call(Method::POST, "/v2/webhooks", Some(&t.key),
            Some(json!({"subscriberUrl": "ftp://x", "triggers": ["MEETING_ENDED"], "secret": SECRET})))
        .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let hook = subscribe(
        &c,
        &t,
        &all.url,
        &[
            "BOOKING_CREATED",
            "BOOKING_CANCELLED",
            "BOOKING_RESCHEDULED",
        ],
    )
    .await;
    let h2 = subscribe(&c, &t, &created_only.url, &["BOOKING_CREATED"]).await;
    let h3 = subscribe(&c, &t, &inactive.url, &["BOOKING_CREATED"]).await;
    let w = c
        .ok(
            Method::PATCH,
            &format!("/v2/webhooks/{h3}"),
            &t.key,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(w["active"], false);
    let w = c
        .ok(Method::GET, &format!("/v2/webhooks/{hook}"), &t.key, None)
        .await;
    assert_eq!(w["subscriberUrl"], all.url);
    assert_eq!(w["hasSecret"], true);
    assert_eq!(w["circuitBreaker"]["state"], "closed");
    assert!(w.get("secret").is_none());
    let list = c.ok(Method::GET, "/v2/webhooks", &t.key, None).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    // Another organization cannot see, change, replay or delete it.
    for (m, p) in [
        (Method::GET, format!("/v2/webhooks/{hook}")),
        (Method::PATCH, format!("/v2/webhooks/{hook}")),
        (Method::DELETE, format!("/v2/webhooks/{hook}")),
        (Method::GET, format!("/v2/webhooks/{hook}/deliveries")),
    ] {
        let (s, v) = c
            .call(m.clone(), &p, Some(&other.key), Some(json!({})))
            .await;
        assert_eq!(s, 404, "{m} {p}: {v}");
    }
    assert_eq!(
        c.ok(Method::GET, "/v2/webhooks", &other.key, None).await,
        json!([])
    );
    // Only admin keys manage webhooks.
    let org_id = c.ok(Method::GET, "/v2/webhooks", &t.key, None).await[0]["organizationId"]
        .as_i64()
        .unwrap();
    let reader = c
        .ok(
            Method::POST,
            &format!("/v2/organizations/{org_id}/api-keys"),
            &t.key,
            Some(json!({"scopes": ["read", "book"]})),
        )
        .await["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = c
        .call(Method::GET, "/v2/webhooks", Some(&reader), None)
        .await;
    assert_eq!(s, 403);

    // Create, cancel, reschedule.
    let a = c
        .ok(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, &slot(0))),
        )
        .await;
    let b = c
        .ok(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, &slot(1))),
        )
        .await;
    c.ok(
        Method::POST,
        &format!("/v2/bookings/{}/cancel", a["uid"].as_str().unwrap()),
        &t.key,
        Some(json!({"cancellationReason": "ill"})),
    )
    .await;
    let moved = c
        .ok(
            Method::POST,
            &format!("/v2/bookings/{}/reschedule", b["uid"].as_str().unwrap()),
            &t.key,
            Some(json!({"start": slot(5)})),
        )
        .await;
    // The other organization's booking reaches none of these.
    c.ok(
        Method::POST,
        "/v2/bookings",
        &other.key,
        Some(booking(other.event_type_id, &slot(0))),
    )
    .await;

    wait_for("four deliveries", 20, || {
        all.ok().len() >= 4 && created_only.ok().len() >= 2
    })
    .await;
    outbox_idle(&app.database_url).await;
    let got = all.ok();
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(all.rejected(), 0);
    let by: HashMap<(String, String), Value> = got
        .iter()
        .map(|r| {
            (
                (
                    r.body["triggerEvent"].as_str().unwrap().to_string(),
                    r.body["payload"]["uid"].as_str().unwrap().to_string(),
                ),
                r.body.clone(),
            )
        })
        .collect();
    let created = &by[&(
        "BOOKING_CREATED".to_string(),
        a["uid"].as_str().unwrap().to_string(),
    )];
    assert_eq!(
        created["payload"]["startTime"],
        slot(0).replace(":00Z", ":00.000Z")
    );
    assert_eq!(created["payload"]["status"], "ACCEPTED");
    assert_eq!(created["payload"]["eventTypeId"], t.event_type_id);
    assert_eq!(
        created["payload"]["attendees"][0]["email"],
        "ann@example.com"
    );
    assert_eq!(created["payload"]["organizer"]["name"], "Host");
    assert!(by.contains_key(&(
        "BOOKING_CREATED".to_string(),
        b["uid"].as_str().unwrap().to_string()
    )));
    let cancelled = &by[&(
        "BOOKING_CANCELLED".to_string(),
        a["uid"].as_str().unwrap().to_string(),
    )];
    assert_eq!(cancelled["payload"]["status"], "CANCELLED");
    assert_eq!(cancelled["payload"]["cancellationReason"], "ill");
    let resched = &by[&(
        "BOOKING_RESCHEDULED".to_string(),
        moved["uid"].as_str().unwrap().to_string(),
    )];
    assert_eq!(resched["payload"]["rescheduleUid"], b["uid"]);
    assert_eq!(
        resched["payload"]["startTime"],
        slot(5).replace(":00Z", ":00.000Z")
    );
    assert_eq!(
        resched["payload"]["rescheduleStartTime"],
        slot(1).replace(":00Z", ":00.000Z")
    );
    // Triggers filter; inactive subscriptions get nothing.
    assert!(created_only
        .ok()
        .iter()
        .all(|r| r.body["triggerEvent"] == "BOOKING_CREATED"));
    assert_eq!(created_only.ok().len(), 2);
    assert!(inactive.seen().is_empty());

    // History: delivered on the first attempt, with the attempt recorded.
    let ds = settled(&c, &t, hook, 4, |d| d["status"] == "delivered").await;
    assert_eq!(ds.len(), 4);
    for d in &ds {
        assert_eq!(d["status"], "delivered", "{d}");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["history"][0]["statusCode"], 200);
    }
    let (_, h2d) = c
        .call(
            Method::GET,
            &format!("/v2/webhooks/{h2}/deliveries?status=delivered"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(h2d["pagination"]["totalItems"], 2);

    // A receiver refuses forged and stale requests.
    let body = br#"{"triggerEvent":"BOOKING_CREATED"}"#;
    let stale = now_unix() - 3600;
    let res = reqwest::Client::new()
        .post(&all.url)
        .header(
            "X-Cal-Signature-256",
            sign::cal_signature(SECRET.as_bytes(), body),
        )
        .header(
            "X-Calops-Signature",
            sign::timestamped_signature(SECRET.as_bytes(), stale, body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(all.rejected(), 1);

    // The secret is sealed at rest and never returned.
    let d = db(&app.database_url).await;
    let rows = d
        .query("SELECT secret, secret_key_id FROM webhooks", &[])
        .await
        .unwrap();
    for r in rows {
        let bytes: Vec<u8> = r.get(0);
        let kid: Option<String> = r.get(1);
        assert!(kid.is_some());
        assert!(!bytes
            .windows(10)
            .any(|w| SECRET.as_bytes().windows(10).any(|s| s == w)));
    }
    // Removing the secret: Cal.com's marker, no timestamped header (the receiver then refuses).
    let w = c
        .ok(
            Method::PATCH,
            &format!("/v2/webhooks/{hook}"),
            &t.key,
            Some(json!({"secret": null})),
        )
        .await;
    assert_eq!(w["hasSecret"], false);
    let deleted = c
        .ok(Method::DELETE, &format!("/v2/webhooks/{h3}"), &t.key, None)
        .await;
    assert_eq!(deleted["id"], h3);
    let (s, _) = c
        .call(
            Method::GET,
            &format!("/v2/webhooks/{h3}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert!(!c.saw(SECRET), "a response echoed the webhook secret");

    // Retention (a day here): finished deliveries older than that go, with their attempts;
    // pending ones stay whatever their age.
    d.execute(
        "UPDATE webhook_deliveries SET created_at = now() - interval '2 days'",
        &[],
    )
    .await
    .unwrap();
    d.execute(
        "INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event, body,
           created_at, next_attempt_at)
         SELECT id, org_id, gen_random_uuid(), 'BOOKING_CREATED', '{}',
           now() - interval '2 days', now() + interval '1 day' FROM webhooks WHERE id = $1",
        &[&hook],
    )
    .await
    .unwrap();
    let count = |sql: &'static str| {
        let d = &d;
        async move { d.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let until = Instant::now() + Duration::from_secs(20);
    while count("SELECT count(*) FROM webhook_deliveries WHERE status <> 'pending'").await > 0 {
        assert!(Instant::now() < until, "old deliveries were not purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(count("SELECT count(*) FROM webhook_deliveries").await, 1);
    assert_eq!(count("SELECT count(*) FROM webhook_attempts").await, 0);
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_deliveries_retry_with_backoff_then_dead_letter_and_replay() {
    if !have_pg("failed_deliveries_retry_with_backoff_then_dead_letter_and_replay") {
        return;
    }
    let app = app(settings(|s| s.max_attempts = 3)).await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Acme").await;
    // Fails twice, then succeeds.
    let flaky = Hook::start(SECRET, Box::new(|n| if n < 2 { 500 } else { 200 })).await;
    let down = Hook::start(SECRET, always(503)).await;
    let h1 = subscribe(&c, &t, &flaky.url, &["BOOKING_CREATED"]).await;
    let h2 = subscribe(&c, &t, &down.url, &["BOOKING_CREATED"]).await;
    let started = Instant::now();
    let b = c
        .ok(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, &slot(0))),
        )
        .await;

    wait_for("the flaky receiver to accept", 20, || {
        !flaky.ok().is_empty()
    })
    .await;
    let seen = flaky.seen();
    assert_eq!(
        seen.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(seen
        .iter()
        .all(|r| r.delivery == seen[0].delivery && r.body["payload"]["uid"] == b["uid"]));
    let d = &settled(&c, &t, h1, 1, |d| d["status"] == "delivered").await[0];
    // Backoff: base 40 ms doubling, jitter in [0.5, 1): attempts at least 20 then 40 ms apart.
    let at: Vec<jiff::Timestamp> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["startedAt"].as_str().unwrap().parse().unwrap())
        .collect();
    let gap = |i: usize| at[i + 1].duration_since(at[i]).as_millis();
    assert!(gap(0) >= 20 && gap(1) >= 40, "{at:?}");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 3);
    let codes: Vec<Value> = d["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].clone())
        .collect();
    assert_eq!(codes, vec![json!(500), json!(500), json!(200)]);

    // Always down: three attempts, then a dead letter, and no more attempts.
    wait_for("the dead letter", 20, || down.seen().len() >= 3).await;
    let mut d = Value::Null;
    for _ in 0..100 {
        d = deliveries(&c, &t, h2).await[0].clone();
        if d["status"] == "dead" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(d["status"], "dead", "{d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["lastStatusCode"], 503);
    assert_eq!(d["lastError"], "HTTP 503");
    outbox_idle(&app.database_url).await;
    holds_for(
        "a dead letter is not retried",
        Duration::from_millis(300),
        || down.seen().len() == 3,
    )
    .await;

    // Replaying the dead letter once the receiver is back delivers the same event.
    down.set_answer(always(200));
    let id = d["id"].as_str().unwrap();
    let r = c
        .ok(
            Method::POST,
            &format!("/v2/webhooks/{h2}/deliveries/{id}/replay"),
            &t.key,
            None,
        )
        .await;
    assert_eq!(r["replayOf"], d["id"]);
    assert_eq!(r["eventId"], d["eventId"]);
    assert_eq!(r["status"], "pending");
    wait_for("the replay", 20, || !down.ok().is_empty()).await;
    let got = &down.ok()[0];
    assert_eq!(got.event, d["eventId"].as_str().unwrap());
    assert_eq!(got.delivery, r["id"].as_str().unwrap());
    assert_eq!(got.attempt, 1);
    let (s, _) = c
        .call(
            Method::POST,
            &format!(
                "/v2/webhooks/{h2}/deliveries/{}/replay",
                uuid::Uuid::new_v4()
            ),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, 404);
    assert_eq!(flaky.rejected() + down.rejected(), 0);
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_opens_after_five_failures_and_skips_while_open() {
    if !have_pg("the_circuit_breaker_opens_after_five_failures_and_skips_while_open") {
        return;
    }
    let cooldown = Duration::from_secs(4);
    let app = app(settings(|s| {
        s.max_attempts = 50;
        s.backoff_base = Duration::from_millis(20);
        s.backoff_max = Duration::from_millis(40);
        s.breaker_threshold = 5;
        s.breaker_cooldown = cooldown;
    }))
    .await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Acme").await;
    let hook = Hook::start(SECRET, always(500)).await;
    let h = subscribe(&c, &t, &hook.url, &["BOOKING_CREATED"]).await;
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(0))),
    )
    .await;
    wait_for("five failures", 20, || hook.seen().len() >= 5).await;
    let opened = Instant::now();
    // The fifth failure is recorded just after the receiver answered it.
    let mut w = Value::Null;
    for _ in 0..100 {
        w = c
            .ok(Method::GET, &format!("/v2/webhooks/{h}"), &t.key, None)
            .await;
        if w["circuitBreaker"]["state"] == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w["circuitBreaker"]["state"], "open", "{w}");
    assert_eq!(w["circuitBreaker"]["consecutiveFailures"], 5);
    // While open, nothing is attempted: not the retry, not a new event.
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(1))),
    )
    .await;
    holds_for(
        "no attempts while the breaker is open",
        Duration::from_millis(1500),
        || hook.seen().len() == 5,
    )
    .await;
    assert!(
        opened.elapsed() < cooldown,
        "the machine is too slow for this test's timing"
    );
    let ds = deliveries(&c, &t, h).await;
    assert_eq!(ds.len(), 2);
    assert!(
        ds.iter()
            .any(|d| d["attempts"] == 0 && d["status"] == "pending"),
        "{ds:?}"
    );
    // Half-open after the cooldown: one trial; it fails, so the breaker opens again.
    wait_for("the trial attempt", 20, || hook.seen().len() >= 6).await;
    assert!(opened.elapsed() >= cooldown - Duration::from_millis(200));
    holds_for(
        "only one trial while half-open",
        Duration::from_millis(500),
        || hook.seen().len() == 6,
    )
    .await;
    // The receiver recovers: after the next cooldown both deliveries go through and the
    // breaker closes.
    hook.set_answer(always(200));
    wait_for("recovery", 20, || hook.ok().len() >= 2).await;
    let mut w = Value::Null;
    for _ in 0..100 {
        w = c
            .ok(Method::GET, &format!("/v2/webhooks/{h}"), &t.key, None)
            .await;
        if w["circuitBreaker"]["state"] == "closed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(w["circuitBreaker"]["state"], "closed", "{w}");
    assert_eq!(w["circuitBreaker"]["consecutiveFailures"], 0);
    assert_eq!(hook.rejected(), 0);
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_time_range_resends_each_original_event_once() {
    if !have_pg("replay_of_a_time_range_resends_each_original_event_once") {
        return;
    }
    // Polling only every minute: everything below arrives through LISTEN/NOTIFY wake-ups
    // (the waits time out after 20 s).
    let app = app(settings(|s| s.poll_interval = Duration::from_secs(60))).await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Acme").await;
    let hook = Hook::start(SECRET, always(200)).await;
    let h = subscribe(&c, &t, &hook.url, &["BOOKING_CREATED", "BOOKING_CANCELLED"]).await;
    let before = jiff::Timestamp::now();
    for i in 0..3 {
        c.ok(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, &slot(i))),
        )
        .await;
    }
    wait_for("three deliveries", 20, || hook.ok().len() >= 3).await;
    // Everything after this instant (the next booking's events included) is outside the range.
    let middle = jiff::Timestamp::now();
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(3))),
    )
    .await;
    wait_for("four deliveries", 20, || hook.ok().len() >= 4).await;
    // Replay one delivery first: replays are not originals, so the range skips them.
    let first = deliveries(&c, &t, h).await.last().cloned().unwrap();
    c.ok(
        Method::POST,
        &format!(
            "/v2/webhooks/{h}/deliveries/{}/replay",
            first["id"].as_str().unwrap()
        ),
        &t.key,
        None,
    )
    .await;
    wait_for("the single replay", 20, || hook.ok().len() >= 5).await;

    let r = c
        .ok(
            Method::POST,
            &format!("/v2/webhooks/{h}/replay"),
            &t.key,
            Some(json!({"from": before.to_string(), "to": middle.to_string()})),
        )
        .await;
    assert_eq!(r["count"], 3, "{r}");
    wait_for("the range replay", 20, || hook.ok().len() >= 8).await;
    outbox_idle(&app.database_url).await;
    let got = hook.ok();
    assert_eq!(got.len(), 8);
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_event.entry(r.event.clone()).or_default() += 1;
    }
    // Events 1-3 were sent again by the range (event 1 also by the single replay); event 4
    // was outside it.
    let mut counts: Vec<usize> = per_event.values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2, 2, 3]);
    let unique: HashSet<&String> = got.iter().map(|r| &r.delivery).collect();
    assert_eq!(unique.len(), 8, "every replay is a new delivery");
    // Bad ranges are refused, with each problem named.
    let (s, v) = c
        .call(
            Method::POST,
            &format!("/v2/webhooks/{h}/replay"),
            Some(&t.key),
            Some(json!({"from": middle.to_string(), "to": before.to_string()})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = c
        .call(
            Method::POST,
            &format!("/v2/webhooks/{h}/replay"),
            Some(&t.key),
            Some(json!({"from": "yesterday", "to": "x"})),
        )
        .await;
    assert_eq!(s, 400);
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    assert_eq!(hook.rejected(), 0);
    app.running.shutdown().await.unwrap();
}

/// A range replay is bounded: more than `MAX_REPLAY_DAYS` is refused before anything is read,
/// and a range holding more than `MAX_REPLAY_ROWS` original events sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_replays_are_capped_in_span_and_rows() {
    if !have_pg("range_replays_are_capped_in_span_and_rows") {
        return;
    }
    use calops::service::api::webhooks::{MAX_REPLAY_DAYS, MAX_REPLAY_ROWS};
    let app = app(settings(|_| {})).await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Acme").await;
    let hook = Hook::start(SECRET, always(200)).await;
    let h = subscribe(&c, &t, &hook.url, &["BOOKING_CREATED"]).await;
    let before = jiff::Timestamp::now();
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(0))),
    )
    .await;
    wait_for("the delivery", 20, || !hook.ok().is_empty()).await;
    outbox_idle(&app.database_url).await;
    let replay = |from: jiff::Timestamp, to: jiff::Timestamp| {
        let (c, path, key) = (&c, format!("/v2/webhooks/{h}/replay"), t.key.clone());
        async move {
            c.call(
                Method::POST,
                &path,
                Some(&key),
                Some(json!({"from": from.to_string(), "to": to.to_string()})),
            )
            .await
        }
    };
    let day = jiff::SignedDuration::from_hours(24);
    let end = |days: i64| before.checked_add(day * (days as i32)).unwrap();

    // The span: exactly the longest range is accepted, a second more is not.
    let (s, v) = replay(before, end(MAX_REPLAY_DAYS)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["data"]["count"], 1, "{v}");
    let too_long = end(MAX_REPLAY_DAYS)
        .checked_add(jiff::SignedDuration::from_secs(1))
        .unwrap();
    let (s, v) = replay(before, too_long).await;
    assert_eq!((s.as_u16(), code(&v)), (400, "validation_error"), "{v}");
    assert!(v.to_string().contains("days after from"), "{v}");

    // The rows: MAX_REPLAY_ROWS original events in the range (written past the API, as
    // already delivered) are replayed; one more and nothing is sent at all. (The subscription
    // is paused first, so that the thousand replays are recorded but not sent.)
    c.ok(
        Method::PATCH,
        &format!("/v2/webhooks/{h}"),
        &t.key,
        Some(json!({"active": false})),
    )
    .await;
    let d = db(&app.database_url).await;
    let copy = |n: i64| {
        let d = &d;
        async move {
            d.execute(
                "INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event,
                   booking_uid, body, status, delivered_at)
                 SELECT webhook_id, org_id, gen_random_uuid(), trigger_event, booking_uid, body,
                   'delivered', now()
                 FROM (SELECT * FROM webhook_deliveries WHERE replay_of IS NULL LIMIT 1) o,
                   generate_series(1, $1::bigint)",
                &[&n],
            )
            .await
            .unwrap();
        }
    };
    let originals = "SELECT count(*) FROM webhook_deliveries WHERE replay_of IS NULL";
    let replays = "SELECT count(*) FROM webhook_deliveries WHERE replay_of IS NOT NULL";
    let count = |sql: &'static str| {
        let d = &d;
        async move { d.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let have = count(originals).await;
    copy(MAX_REPLAY_ROWS - have).await;
    assert_eq!(count(originals).await, MAX_REPLAY_ROWS);
    let replayed_before = count(replays).await;
    let (s, v) = replay(before, end(1)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["data"]["count"], MAX_REPLAY_ROWS, "{v}");
    assert_eq!(count(replays).await, replayed_before + MAX_REPLAY_ROWS);
    copy(1).await;
    let replayed_before = count(replays).await;
    let (s, v) = replay(before, end(1)).await;
    assert_eq!((s.as_u16(), code(&v)), (422, "replay_too_large"), "{v}");
    assert_eq!(count(replays).await, replayed_before, "nothing was sent");
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_database_never_make_the_same_attempt_twice() {
    if !have_pg("two_replicas_on_one_database_never_make_the_same_attempt_twice") {
        return;
    }
    let fast = || {
        settings(|s| {
            s.workers = 4;
            s.max_attempts = 10;
            s.backoff_base = Duration::from_millis(10);
            s.backoff_max = Duration::from_millis(50);
        })
    };
    let one = app(fast()).await;
    let two = TestApp::spawn_with(config(one.database_url.clone(), fast()))
        .await
        .unwrap();
    let (c1, c2) = (Client::at(&one.base), Client::at(&two.base));
    let t = tenant(&c1, "Acme").await;
    // Every third request fails, so retries race too.
    let hook = Hook::start(SECRET, Box::new(|n| if n % 3 == 0 { 500 } else { 200 })).await;
    subscribe(&c1, &t, &hook.url, &["BOOKING_CREATED"]).await;
    let n = 60;
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = if i % 2 == 0 { c1.clone() } else { c2.clone() };
        let (key, et) = (t.key.clone(), t.event_type_id);
        tasks.push(tokio::spawn(async move {
            c.ok(
                Method::POST,
                "/v2/bookings",
                &key,
                Some(booking(et, &slot(i))),
            )
            .await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_for("every booking delivered", 60, || {
        hook.ok()
            .iter()
            .map(|r| r.delivery.clone())
            .collect::<HashSet<_>>()
            .len()
            >= n
    })
    .await;
    let d = db(&one.database_url).await;
    let pending = || async {
        d.query_one(
            "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0)
    };
    for _ in 0..200 {
        if pending().await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pending().await, 0);
    let seen = hook.seen();
    let mut attempts = HashSet::new();
    for r in &seen {
        assert!(
            attempts.insert((r.delivery.clone(), r.attempt)),
            "attempt made twice: {r:?}"
        );
    }
    let delivered: Vec<&Received> = seen.iter().filter(|r| r.answered == 200).collect();
    let unique: HashSet<&String> = delivered.iter().map(|r| &r.delivery).collect();
    assert_eq!(delivered.len(), n, "each delivery succeeds exactly once");
    assert_eq!(unique.len(), n);
    // The database agrees: one attempt row per request the receiver saw.
    let rows: i64 = d
        .query_one("SELECT count(*) FROM webhook_attempts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows as usize, seen.len());
    assert_eq!(hook.rejected(), 0);
    two.running.shutdown().await.unwrap();
    one.running.shutdown().await.unwrap();
}

// ---- where deliveries may go ---------------------------------------------------------------

/// The last stored error and duration of a webhook's only delivery, once it has an attempt.
async fn first_failure(c: &Client, t: &Tenant, hook: i64) -> Value {
    let ds = settled(c, t, hook, 1, |d| {
        d["attempts"].as_i64().unwrap_or(0) >= 1 && !d["lastError"].is_null()
    })
    .await;
    assert_eq!(ds.len(), 1, "{ds:?}");
    assert!(
        !ds[0]["lastError"].is_null(),
        "webhook {hook}: no failed attempt (was it delivered?): {}",
        ds[0]
    );
    ds[0].clone()
}

/// Without the allow-list a delivery never connects to loopback, whether the subscriber URL
/// names the address or a name that resolves to it, and whether the subscription was checked
/// at creation or written some other way; with it, the stored error of a failed attempt is
/// the same for a closed port, a port that is not HTTP and one that never answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_never_reach_private_addresses_unless_allowed() {
    if !have_pg("deliveries_never_reach_private_addresses_unless_allowed") {
        return;
    }
    let receiver = Hook::start(SECRET, always(200)).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let guarded = app(settings(|s| s.allow_private = Default::default())).await;
    let c = Client::at(&guarded.base);
    let t = tenant(&c, "Guarded").await;

    // An address literal is refused when subscribing, in every spelling.
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        "http://169.254.169.254/opc/v2/instance/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
    ] {
        let (s, v) = c
            .call(Method::POST, "/v2/webhooks", Some(&t.key),
                Some(json!({"subscriberUrl": url, "triggers": ["BOOKING_CREATED"], "secret": SECRET})))
            .await;
        assert_eq!(s, 400, "{url}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("CALOPS_WEBHOOK_ALLOW_PRIVATE"),
            "{url}: {v}"
        );
    }
    // A name is checked where it resolves, at delivery: localhost is loopback.
    let by_name = subscribe(
        &c,
        &t,
        &format!("http://localhost:{port}/hook"),
        &["BOOKING_CREATED"],
    )
    .await;
    // A subscription written past the API (another replica's settings, an old row) is
    // checked at delivery all the same.
    let db = db(&guarded.database_url).await;
    let by_row: i64 = db
        .query_one(
            "INSERT INTO webhooks (org_id, subscriber_url, triggers, active)
             SELECT org_id, $1, triggers, true FROM webhooks WHERE id = $2 RETURNING id",
            &[&receiver.url, &by_name],
        )
        .await
        .unwrap()
        .get(0);
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(0))),
    )
    .await;
    for hook in [by_name, by_row] {
        let d = first_failure(&c, &t, hook).await;
        let e = d["lastError"].as_str().unwrap();
        assert!(
            e.starts_with("refused: ")
                && e.contains("loopback")
                && e.contains("CALOPS_WEBHOOK_ALLOW_PRIVATE"),
            "webhook {hook}: {d}"
        );
        assert!(d["history"][0]["statusCode"].is_null(), "{d}");
    }
    assert!(
        receiver.seen().is_empty() && receiver.rejected() == 0,
        "a delivery got through"
    );
    guarded.running.shutdown().await.unwrap();

    // Allowed: the receiver gets it; and failures without an HTTP answer look alike.
    let allowed = app(settings(|s| s.timeout = Duration::from_millis(600))).await;
    let c = Client::at(&allowed.base);
    let t = tenant(&c, "Allowed").await;
    let closed = calops::pg::free_port().unwrap();
    let not_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let not_http_port = not_http.local_addr().unwrap().port();
    let silent_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in not_http.incoming().flatten() {
            use std::io::Write;
            let mut s = s;
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        }
    });
    let _silent = silent; // accepts (the kernel queues) and never answers
    let ok = subscribe(&c, &t, &receiver.url, &["BOOKING_CREATED"]).await;
    let mut failing = Vec::new();
    for p in [closed, not_http_port, silent_port] {
        failing.push(
            subscribe(
                &c,
                &t,
                &format!("http://127.0.0.1:{p}/hook"),
                &["BOOKING_CREATED"],
            )
            .await,
        );
    }
    c.ok(
        Method::POST,
        "/v2/bookings",
        &t.key,
        Some(booking(t.event_type_id, &slot(1))),
    )
    .await;
    wait_for("the allowed delivery", 20, || receiver.ok().len() == 1).await;
    assert_eq!(
        settled(&c, &t, ok, 1, |d| d["status"] == "delivered").await[0]["status"],
        "delivered"
    );
    let mut stored = Vec::new();
    for hook in failing {
        let d = first_failure(&c, &t, hook).await;
        let attempt = &d["history"][0];
        stored.push((
            d["lastError"].as_str().unwrap().to_string(),
            attempt["statusCode"].clone(),
            attempt["durationMs"].clone(),
        ));
    }
    assert!(
        stored.iter().all(|s| s == &stored[0]),
        "closed, non-HTTP and silent ports must look alike: {stored:?}"
    );
    assert_eq!(
        stored[0].2,
        Value::Null,
        "no duration without an HTTP answer"
    );
    assert!(!stored[0].0.contains("refused"), "{stored:?}");
    allowed.running.shutdown().await.unwrap();
}

/// Wait (up to 60 s) until the outbox holds exactly `count` deliveries and all of them are
/// delivered: from then on nothing more is sent.
async fn outbox_settled(d: &tokio_postgres::Client, count: usize) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let row = d
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status = 'delivered') FROM webhook_deliveries",
                &[],
            )
            .await
            .unwrap();
        let (all, delivered): (i64, i64) = (row.get(0), row.get(1));
        assert!(
            all as usize <= count,
            "{all} deliveries in the outbox, {count} expected"
        );
        if all as usize == count && delivered == all {
            return;
        }
        assert!(
            Instant::now() < until,
            "the outbox did not settle: {delivered} of {all} delivered, {count} expected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- durability: kill -9 the real binary ---------------------------------------------------

struct Serve {
    child: std::process::Child,
    base: String,
}

fn serve(database_url: &str, port: u16, log: &std::path::Path) -> Serve {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_calops"))
        .arg("serve")
        .env("DATABASE_URL", database_url)
        .env("CALOPS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALOPS_ADMIN_TOKEN_REF", "env:CALOPS_TEST_BOOT")
        .env("CALOPS_TEST_BOOT", BOOTSTRAP_TOKEN)
        .env("CALOPS_WEBHOOK_SECRET_KEY_REF", "env:CALOPS_TEST_SEAL")
        .env("CALOPS_TEST_SEAL", SEAL_KEY)
        .env("CALOPS_WEBHOOK_MAX_ATTEMPTS", "100")
        .env("CALOPS_WEBHOOK_BACKOFF", "100ms")
        .env("CALOPS_WEBHOOK_BACKOFF_MAX", "400ms")
        .env("CALOPS_WEBHOOK_BREAKER_COOLDOWN", "300ms")
        .env("CALOPS_WEBHOOK_POLL", "200ms")
        .env("CALOPS_WEBHOOK_TIMEOUT", "1s")
        .env("CALOPS_WEBHOOK_ALLOW_PRIVATE", "127.0.0.0/8")
        // The clients book flat out; the default 20 bookings a minute per key would stop them.
        .env("CALOPS_RATE_LIMIT_BOOKINGS", "off")
        .env_remove("REDIS_URL")
        .env_remove("CALOPS_OBJECT_STORAGE_URL")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting calops serve");
    Serve {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn healthy(base: &str) {
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_every_confirmed_booking_and_its_webhook() {
    if !have_pg("kill_9_keeps_every_confirmed_booking_and_its_webhook") {
        return;
    }
    let database_url = fresh_database().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("serve.log");
    let mut server = serve(&database_url, port, &log);
    healthy(&server.base).await;
    let c = Client::at(&server.base);
    let t = tenant(&c, "Acme").await;
    // The receiver refuses everything until the restart, so every BOOKING_CREATED is still in
    // the outbox when the server dies.
    let hook = Hook::start(SECRET, always(503)).await;
    subscribe(&c, &t, &hook.url, &["BOOKING_CREATED"]).await;

    let confirmed = Arc::new(Mutex::new(Vec::<String>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let dead = Arc::new(AtomicBool::new(false));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (http, base, key, et) = (
            http.clone(),
            server.base.clone(),
            t.key.clone(),
            t.event_type_id,
        );
        let (confirmed, next, dead) = (confirmed.clone(), next.clone(), dead.clone());
        clients.push(tokio::spawn(async move {
            while !dead.load(Ordering::SeqCst) {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let res = http
                    .post(format!("{base}/v2/bookings"))
                    .header("cal-api-version", "2024-08-13")
                    .bearer_auth(&key)
                    .json(&booking(et, &slot(i)))
                    .send()
                    .await;
                let Ok(res) = res else { continue };
                if res.status() == 201 {
                    if let Ok(v) = res.json::<Value>().await {
                        confirmed
                            .lock()
                            .unwrap()
                            .push(v["data"]["uid"].as_str().unwrap().to_string());
                    }
                }
            }
        }));
    }
    wait_for("bookings under way", 60, || {
        confirmed.lock().unwrap().len() >= 40
    })
    .await;
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    dead.store(true, Ordering::SeqCst);
    for cl in clients {
        cl.await.unwrap();
    }
    let confirmed: Vec<String> = confirmed.lock().unwrap().clone();
    assert!(confirmed.len() >= 40);
    eprintln!("{} bookings confirmed before kill -9", confirmed.len());
    // Every 201 is in the database.
    let d = db(&database_url).await;
    let stored: HashSet<String> = d
        .query(
            "SELECT uid::text FROM bookings WHERE status = 'accepted'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for uid in &confirmed {
        assert!(
            stored.contains(uid),
            "booking {uid} got a 201 but is not in the database"
        );
    }
    assert!(hook.ok().is_empty());

    // Restart; the receiver is back: every confirmed booking's webhook arrives.
    hook.set_answer(always(200));
    let mut server = serve(&database_url, port, &log);
    healthy(&server.base).await;
    wait_for("every confirmed booking's webhook", 60, || {
        let got: HashSet<String> = hook
            .ok()
            .iter()
            .map(|r| {
                r.body["payload"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        confirmed.iter().all(|u| got.contains(u))
    })
    .await;
    assert_eq!(hook.rejected(), 0);
    // Bookings that committed but whose response was lost are delivered too, each exactly
    // once: wait until the outbox has nothing left to send (every delivery recorded as
    // delivered, which happens after the receiver answered), then count per booking.
    outbox_settled(&d, stored.len()).await;
    let mut per_booking: HashMap<String, usize> = HashMap::new();
    for r in hook.ok() {
        *per_booking
            .entry(r.body["payload"]["uid"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_booking.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let got: HashSet<String> = per_booking.into_keys().collect();
    assert_eq!(got, stored);
    eprintln!(
        "{} bookings stored ({} confirmed), all delivered after the restart",
        stored.len(),
        confirmed.len()
    );
    unsafe {
        libc::kill(server.child.id() as i32, libc::SIGTERM);
    }
    server.child.wait().unwrap();
    // The secret appeared in no log line of either run, nor in any response.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("webhook delivered"),
        "the log should show deliveries"
    );
    assert!(!text.contains(SECRET), "the webhook secret was logged");
    assert!(!c.saw(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composite_booking_announces_each_segment_and_a_refused_one_nothing() {
    if !have_pg("a_composite_booking_announces_each_segment_and_a_refused_one_nothing") {
        return;
    }
    let app = app(settings(|_| {})).await;
    let c = Client::at(&app.base);
    let t = tenant(&c, "Composite").await;
    let hook = Hook::start(SECRET, always(200)).await;
    subscribe(&c, &t, &hook.url, &["BOOKING_CREATED"]).await;
    let body = |a: usize, b: usize| {
        json!({"segments": [{"eventTypeId": t.event_type_id, "start": slot(a)},
                            {"eventTypeId": t.event_type_id, "start": slot(b)}],
               "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "UTC"}})
    };
    let booked = c
        .ok(
            Method::POST,
            "/v2/bookings/composite",
            &t.key,
            Some(body(0, 2)),
        )
        .await;
    let mut uids: Vec<String> = booked
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(uids.len(), 2, "{booked}");
    // The second segment overlaps the first composite: all or nothing, so no event either.
    let (s, v) = c
        .call(
            Method::POST,
            "/v2/bookings/composite",
            Some(&t.key),
            Some(body(4, 2)),
        )
        .await;
    assert_eq!(s, 409, "{v}");
    outbox_settled(&db(&app.database_url).await, 2).await;
    let mut got: Vec<String> = hook
        .ok()
        .iter()
        .map(|r| {
            assert_eq!(r.body["triggerEvent"], "BOOKING_CREATED");
            r.body["payload"]["uid"].as_str().unwrap().to_string()
        })
        .collect();
    got.sort();
    uids.sort();
    assert_eq!(
        got, uids,
        "one BOOKING_CREATED per booked segment, none for the refused one"
    );
}
