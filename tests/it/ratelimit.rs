//! Rate limits and the Redis booking lock against a real `redis-server` (started by each test
//! on a free port on 127.0.0.1) and a real PostgreSQL cluster, over real HTTP: 429s and their
//! headers, counts shared by two service instances, the in-process fallback, Redis killed and
//! restarted mid-run, and the booking race with Redis configured.

use crate::support::api::Client;
use crate::support::ALL_DAYS;
use calops::service::ratelimit::lock::{Acquired, BookingLocks};
use calops::service::ratelimit::policy::{Limit, Limits};
use calops::service::ratelimit::redis_conn::SharedRedis;
use calops_testkit::{app_config, fresh_database, have_pg, TestApp, TestRedis, BOOTSTRAP_TOKEN};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn per_minute(availability: u64, bookings: u64) -> Limits {
    let m = |n| Limit {
        requests: n,
        period: Duration::from_secs(60),
    };
    Limits {
        availability: Some(m(availability)),
        bookings: Some(m(bookings)),
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

struct Tenant {
    key: String,
    key_id: i64,
    event_type_id: i64,
}

/// An organization with a host working round the clock (minus a minute) and a 30-minute
/// event type; the org's API key and its id.
async fn tenant(c: &Client, name: &str) -> Tenant {
    let org = c
        .create("/v2/organizations", BOOTSTRAP_TOKEN, json!({"name": name}))
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &key,
            json!({"name": "Host", "email": format!("host@{}.example.com", org["slug"].as_str().unwrap()), "timeZone": "UTC"}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.create(
        "/v2/schedules",
        &key,
        json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
               "availability": [{"days": ALL_DAYS, "startTime": "00:00", "endTime": "23:59"}]}),
    )
    .await;
    let event_type_id = c
        .create(
            "/v2/event-types",
            &key,
            json!({"title": "Call", "slug": "call", "lengthInMinutes": 30, "userId": user_id}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    Tenant {
        key,
        key_id: 0,
        event_type_id,
    }
}

/// The id of the API key (the rate-limit counters are keyed by it).
async fn key_id(database_url: &str, org_name: &str) -> i64 {
    let (db, conn) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query_one(
        "SELECT k.id FROM api_keys k JOIN organizations o ON o.id = k.org_id WHERE o.name = $1 ORDER BY k.id LIMIT 1",
        &[&org_name],
    )
    .await
    .unwrap()
    .get(0)
}

fn slots_path(t: &Tenant) -> String {
    format!(
        "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-03",
        t.event_type_id
    )
}

fn booking(et: i64, start: &str) -> Value {
    json!({"start": start, "eventTypeId": et,
           "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin"}})
}

async fn redis_conn(r: &TestRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(r.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn redis_get(r: &TestRedis, key: &str) -> Option<u64> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis_conn(r).await)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_429_with_headers_and_are_shared_by_two_instances_through_redis() {
    let test = "limits_answer_429_with_headers_and_are_shared_by_two_instances_through_redis";
    if !have_pg(test) {
        return;
    }
    let Some(redis) = TestRedis::start(test) else {
        return;
    };
    let db = fresh_database().await.unwrap();
    // Two replicas of one deployment: one database, one Redis.
    let a = TestApp::spawn_with(redis.app_config(&db, per_minute(5, 3)))
        .await
        .unwrap();
    let b = TestApp::spawn_with(redis.app_config(&db, per_minute(5, 3)))
        .await
        .unwrap();
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    let mut t = tenant(&ca, "Limited").await;
    t.key_id = key_id(&db, "Limited").await;
    let other = tenant(&ca, "Other").await;

    // Three on A, two on B: one count.
    let mut remaining = Vec::new();
    for c in [&ca, &ca, &ca, &cb, &cb] {
        let (s, v, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(header(&h, "x-ratelimit-limit"), Some(5));
        let reset = header(&h, "x-ratelimit-reset").unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        assert!(h.get("retry-after").is_none());
        remaining.push(header(&h, "x-ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, [4, 3, 2, 1, 0]);
    let counter = format!("calops:ratelimit:availability:key:{}", t.key_id);
    assert_eq!(redis_get(&redis, &counter).await, Some(5));

    // The sixth, on either instance, is refused in the service's error shape.
    for c in [&ca, &cb] {
        let (s, v, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["details"]["limit"], 5);
        assert_eq!(v["error"]["details"]["class"], "availability");
        let retry = header(&h, "retry-after").unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        assert_eq!(header(&h, "x-ratelimit-reset"), Some(retry));
        assert_eq!(header(&h, "x-ratelimit-remaining"), Some(0));
        assert_eq!(header(&h, "x-ratelimit-limit"), Some(5));
    }
    // The TTL is the window: set once, by the first request.
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&counter)
        .query_async(&mut redis_conn(&redis).await)
        .await
        .unwrap();
    assert!((1..=60_000).contains(&pttl), "PTTL {pttl}");

    // Another key has its own count; bookings have their own limit; unlimited routes carry
    // no headers; a request without a key is a 401 and counts against nobody.
    let (s, _, h) = cb
        .raw(
            Method::GET,
            &slots_path(&other),
            Some(&other.key),
            None,
            None,
        )
        .await;
    assert_eq!(
        (s, header(&h, "x-ratelimit-remaining")),
        (StatusCode::OK, Some(4))
    );
    let (s, v, h) = ca
        .raw(
            Method::POST,
            "/v2/bookings",
            Some(&t.key),
            Some(booking(t.event_type_id, "2031-03-03T09:00:00Z")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(header(&h, "x-ratelimit-limit"), Some(3));
    assert_eq!(header(&h, "x-ratelimit-remaining"), Some(2));
    let uid = v["data"]["uid"].as_str().unwrap().to_string();
    let (s, _, h) = cb
        .raw(
            Method::GET,
            &format!("/v2/bookings/{uid}"),
            Some(&t.key),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(h.get("x-ratelimit-limit").is_none());
    let (s, _, _) = ca.raw(Method::GET, &slots_path(&t), None, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Refused bodies count too (the limit is on requests), cancel counts as a booking request.
    let (s, _, _) = cb
        .raw(
            Method::POST,
            "/v2/bookings",
            Some(&t.key),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, h) = cb
        .raw(
            Method::POST,
            &format!("/v2/bookings/{uid}/cancel"),
            Some(&t.key),
            Some(json!({})),
            None,
        )
        .await;
    assert_eq!(
        (s, header(&h, "x-ratelimit-remaining")),
        (StatusCode::OK, Some(0))
    );
    let (s, v, _) = ca
        .raw(
            Method::POST,
            "/v2/slots/reservations",
            Some(&t.key),
            Some(json!({"eventTypeId": t.event_type_id, "slotStart": "2031-03-03T10:00:00Z"})),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v["error"]["details"]["class"], "bookings");

    // 429s are counted per class, on the instance that answered them.
    let text = ca.metrics().await;
    assert!(
        text.contains("calops_rate_limited_total{class=\"availability\"} 1"),
        "{text}"
    );
    assert!(text.contains("calops_rate_limited_total{class=\"bookings\"} 1"));
    assert!(text.contains("calops_rate_limit_redis_fallbacks_total 0"));
    let (_, h, _) = ca.raw(Method::GET, "/health", None, None, None).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["rateLimits"]["backend"], "redis");
    a.running.shutdown().await.unwrap();
    b.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_limits_are_counted_in_process() {
    if !have_pg("without_redis_limits_are_counted_in_process") {
        return;
    }
    let db = fresh_database().await.unwrap();
    let app = TestApp::spawn_with(app_config(&db, None, per_minute(2, 20)))
        .await
        .unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Solo").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (s, _, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        seen.push((s.as_u16(), header(&h, "x-ratelimit-remaining")));
    }
    assert_eq!(seen, [(200, Some(1)), (200, Some(0)), (429, Some(0))]);
    let (_, h, _) = c.raw(Method::GET, "/health", None, None, None).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["checks"]["redis"]["status"], "not_configured");
    assert_eq!(h["rateLimits"]["backend"], "in_process");
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_falls_back_in_process_then_limits_resume_through_redis() {
    let test = "redis_killed_mid_run_falls_back_in_process_then_limits_resume_through_redis";
    if !have_pg(test) {
        return;
    }
    let Some(mut redis) = TestRedis::start(test) else {
        return;
    };
    let db = fresh_database().await.unwrap();
    let app = TestApp::spawn_with(redis.app_config(&db, per_minute(10, 20)))
        .await
        .unwrap();
    let c = Client::new(&app);
    let mut t = tenant(&c, "Outage").await;
    t.key_id = key_id(&db, "Outage").await;
    let counter = format!("calops:ratelimit:availability:key:{}", t.key_id);
    for want in [9, 8, 7] {
        let (s, _, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(
            (s, header(&h, "x-ratelimit-remaining")),
            (StatusCode::OK, Some(want))
        );
    }
    assert_eq!(redis_get(&redis, &counter).await, Some(3));

    // Redis dies: requests keep succeeding, promptly, counted in-process (a fresh window).
    redis.kill();
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        let (s, v, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        remaining.push(header(&h, "x-ratelimit-remaining").unwrap());
    }
    assert_eq!(remaining, [9, 8, 7, 6]);
    // Bookings go ahead without the lock.
    let (s, v, _) = c
        .raw(
            Method::POST,
            "/v2/bookings",
            Some(&t.key),
            Some(booking(t.event_type_id, "2031-03-03T09:00:00Z")),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, h, _) = c.raw(Method::GET, "/health", None, None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["checks"]["redis"]["status"], "down");
    assert_eq!(h["rateLimits"]["backend"], "in_process");
    // The in-process count still limits: 6 left, the 7th is refused.
    for _ in 0..6 {
        let (s, _, _) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _, _) = c
        .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);

    // Redis is back (empty): within a few seconds the counts are Redis's again.
    redis.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut resumed = false;
    while Instant::now() < deadline {
        let (_, _, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        if let Some(n) = redis_get(&redis, &counter).await {
            // This request was counted in Redis (1) and answered from that count.
            assert_eq!(n, 1);
            assert_eq!(header(&h, "x-ratelimit-remaining"), Some(9));
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        resumed,
        "limits did not resume through Redis after the restart"
    );
    for want in (0..9).rev() {
        let (s, _, h) = c
            .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
            .await;
        assert_eq!(
            (s, header(&h, "x-ratelimit-remaining")),
            (StatusCode::OK, Some(want))
        );
    }
    let (s, _, _) = c
        .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(redis_get(&redis, &counter).await, Some(11));
    // /health checks at most once a second: the next round sees Redis back.
    let deadline = Instant::now() + Duration::from_secs(5);
    let h = loop {
        let (_, h, _) = c.raw(Method::GET, "/health", None, None, None).await;
        if h["status"] == "ok" || Instant::now() > deadline {
            break h;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["rateLimits"]["backend"], "redis");
    let text = c.metrics().await;
    // At least the two refusals above (more if requests were refused in-process while Redis
    // was coming back).
    let refused: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("calops_rate_limited_total{class=\"availability\"} "))
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(refused >= 2, "{text}");
    assert!(!text.contains("calops_rate_limit_redis_fallbacks_total 0\n"));
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stops_answering_costs_requests_at_most_the_timeout() {
    let test = "a_redis_that_stops_answering_costs_requests_at_most_the_timeout";
    if !have_pg(test) {
        return;
    }
    let Some(redis) = TestRedis::start(test) else {
        return;
    };
    let db = fresh_database().await.unwrap();
    let app = TestApp::spawn_with(redis.app_config(&db, per_minute(100, 100)))
        .await
        .unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Frozen").await;
    let (s, _, h) = c
        .raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
        .await;
    assert_eq!(
        (s, header(&h, "x-ratelimit-remaining")),
        (StatusCode::OK, Some(99))
    );
    // Frozen, not dead: the socket stays open and nothing comes back.
    redis.pause();
    let mut slowest = Duration::ZERO;
    for i in 0..8 {
        let started = Instant::now();
        let (s, v, _) = if i == 4 {
            c.raw(
                Method::POST,
                "/v2/bookings",
                Some(&t.key),
                Some(booking(t.event_type_id, "2031-03-03T11:00:00Z")),
                None,
            )
            .await
        } else {
            c.raw(Method::GET, &slots_path(&t), Some(&t.key), None, None)
                .await
        };
        assert!(s.is_success(), "{s}: {v}");
        slowest = slowest.max(started.elapsed());
    }
    eprintln!("frozen Redis: slowest request {slowest:?}");
    // The 250 ms timeout once (then the breaker skips Redis), plus the request's own work.
    assert!(slowest < Duration::from_millis(1500), "slowest {slowest:?}");
    let (_, h, _) = c.raw(Method::GET, "/health", None, None, None).await;
    assert_eq!(h["status"], "degraded", "{h}");
    redis.resume();
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_locks_are_exclusive_and_released_only_by_their_holder() {
    let Some(redis) =
        TestRedis::start("booking_locks_are_exclusive_and_released_only_by_their_holder")
    else {
        return;
    };
    let shared = SharedRedis::new(&redis.url(), Duration::from_millis(250)).map(Arc::new);
    let locks = BookingLocks::new(shared);
    let Acquired::Held(first) = locks.acquire("calops:booking-lock:t:1").await else {
        panic!("the first request should hold the lock");
    };
    // A second request waits until the first releases, then goes on without holding it.
    let waiter = {
        let locks = locks.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = locks.acquire("calops:booking-lock:t:1").await;
            (r, started.elapsed())
        })
    };
    // It keeps waiting while the lock is held.
    let held_since = Instant::now();
    while held_since.elapsed() < Duration::from_millis(150) {
        assert!(!waiter.is_finished(), "the second request did not wait");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.release().await;
    let (r, waited) = waiter.await.unwrap();
    assert!(matches!(r, Acquired::WaitedForOther), "{r:?}");
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert_eq!(
        redis_get(&redis, "calops:booking-lock:t:1").await,
        None,
        "released"
    );

    // A holder whose key was replaced (expired, taken by another) does not delete the new key.
    let Acquired::Held(stale) = locks.acquire("calops:booking-lock:t:2").await else {
        panic!("free lock");
    };
    let _: () = redis::cmd("SET")
        .arg("calops:booking-lock:t:2")
        .arg("someone-else")
        .query_async(&mut redis_conn(&redis).await)
        .await
        .unwrap();
    stale.release().await;
    let v: Option<String> = redis::cmd("GET")
        .arg("calops:booking-lock:t:2")
        .query_async(&mut redis_conn(&redis).await)
        .await
        .unwrap();
    assert_eq!(v.as_deref(), Some("someone-else"));

    // A lock dropped unreleased (a cancelled request) is released in the background.
    let Acquired::Held(dropped) = locks.acquire("calops:booking-lock:t:3").await else {
        panic!("free lock");
    };
    drop(dropped);
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis_get(&redis, "calops:booking-lock:t:3").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "a dropped lock was not released in the background"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Redis gone: no lock, at once.
    drop(redis);
    let started = Instant::now();
    assert!(matches!(
        locks.acquire("calops:booking-lock:t:4").await,
        Acquired::NoLock
    ));
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Rounds of the race with Redis (default 50; `CALOPS_REDIS_RACE_ROUNDS` changes it). The
/// 200-round race without Redis is in tests/bookings.rs.
fn race_rounds() -> usize {
    std::env::var("CALOPS_REDIS_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_sixty_four_clients_race_for_one_slot_and_exactly_one_wins() {
    let test = "with_redis_sixty_four_clients_race_for_one_slot_and_exactly_one_wins";
    if !have_pg(test) {
        return;
    }
    let Some(redis) = TestRedis::start(test) else {
        return;
    };
    let db = fresh_database().await.unwrap();
    // Limits off: this is about the lock; the rate limiter would refuse 64 clients of one key.
    let mut config = redis.app_config(&db, Limits::OFF);
    // A Redis call slower than the timeout trips the breaker for a second, and releases in that
    // second are skipped by design (the key then expires after LOCK_TTL). On a loaded machine
    // 64 clients can stall a call past the 250 ms default, which would leave keys behind that
    // say nothing about the lock; this test is about the lock, so Redis gets time to answer.
    config.redis_timeout = Duration::from_secs(3);
    let app = TestApp::spawn_with(config).await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "RedisRace").await;
    let rounds = race_rounds();
    let key = Arc::new(t.key.clone());
    let t0: jiff::Timestamp = "2031-03-03T00:00:00Z".parse().unwrap();
    let started = Instant::now();
    for round in 0..rounds as i64 {
        let start = (t0
            + jiff::SignedDuration::from_mins((round / 47) * 24 * 60 + (round % 47) * 30))
        .to_string();
        let mut tasks = Vec::with_capacity(64);
        for i in 0..64 {
            let (c, key) = (c.clone(), key.clone());
            let mut body = booking(t.event_type_id, &start);
            body["attendee"]["name"] = json!(format!("Client {i}"));
            tasks.push(tokio::spawn(async move {
                c.raw(Method::POST, "/v2/bookings", Some(&key), Some(body), None)
                    .await
            }));
        }
        let (mut created, mut conflicts) = (0, 0);
        for task in tasks {
            let (s, v, _) = task.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(v["error"]["code"], "booking_conflict");
                    conflicts += 1
                }
                other => panic!("round {round}: unexpected {other}: {v}"),
            }
        }
        assert_eq!((created, conflicts), (1, 63), "round {round} at {start}");
    }
    eprintln!(
        "race with Redis: {rounds} rounds x 64 clients in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The lock was really taken (every client tried SET NX) and every lock was released.
    let mut conn = redis_conn(&redis).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let set_calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_set:calls="))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Clients that saw the slot taken in their slot check never got as far as the lock.
    assert!(
        (rounds as u64..=64 * rounds as u64).contains(&set_calls),
        "{set_calls} SETs: {stats}"
    );
    eprintln!("race with Redis: {set_calls} lock attempts");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("calops:booking-lock:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let (pg, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = pg
        .query_one(
            "SELECT count(*) FROM bookings WHERE status = 'accepted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, rounds as i64);
    app.running.shutdown().await.unwrap();
}
