//! Slots query latency over HTTP on loopback: one host with a month of bookings, 7-day and
//! 31-day queries at 1 and 32 concurrent clients. Run with `cargo bench --bench slots`.
//! (Under `cargo test --all-targets` it only says how to run it.)

use calops_testkit::bench::{load, post};
use calops_testkit::TestApp;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MONTH_START: &str = "2031-03-01";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("slots bench: run with `cargo bench --bench slots` (skipped under cargo test)");
        return;
    }
    if calops_testkit::require_tool("slots bench", "pg_config").is_none()
        && !calops_testkit::postgres_available()
    {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run()).expect("bench failed");
}

async fn run() -> anyhow::Result<()> {
    let (app, http, key, org_id) = calops_testkit::bench::app_with_org("Bench Org").await?;
    let user = post(
        &http,
        app.url(&format!("/v2/organizations/{org_id}/users")),
        &key,
        json!({"name": "Host", "email": "host@example.com", "timeZone": "America/New_York"}),
    )
    .await?;
    let user_id = user["id"].as_i64().unwrap_or_default();
    post(&http, app.url("/v2/schedules"), &key, json!({
        "userId": user_id, "name": "Working hours", "timeZone": "America/New_York",
        "availability": [
            {"days": ["Monday","Tuesday","Wednesday","Thursday","Friday"], "startTime": "08:00", "endTime": "18:00"},
            {"days": ["Saturday"], "startTime": "10:00", "endTime": "14:00"}
        ],
        "overrides": [{"date": "2031-03-17", "startTime": "00:00", "endTime": "00:00"}]
    })).await?;
    let et = post(&http, app.url("/v2/event-types"), &key, json!({
        "userId": user_id, "title": "Consultation", "slug": "consultation", "lengthInMinutes": 30,
        "slotInterval": 15, "beforeEventBuffer": 5, "afterEventBuffer": 10
    })).await?;
    let et_id = et["id"].as_i64().unwrap_or_default();

    // A month of bookings: 6 a weekday, 75 minutes apart from 09:00 local.
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let first: jiff::civil::Date = MONTH_START.parse()?;
    let store = &app.running.state.store;
    let mut n = 0;
    for day in 0..31 {
        let d = first.checked_add(jiff::Span::new().days(day))?;
        if matches!(
            d.weekday(),
            jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
        ) {
            continue;
        }
        for i in 0..6 {
            let start = d.at(9, 0, 0, 0).to_zoned(tz.clone())?.timestamp()
                + jiff::SignedDuration::from_mins(75 * i);
            let end = start + jiff::SignedDuration::from_mins(30);
            store
                .insert_accepted_booking(org_id, et_id, start, end, &json!({"name": "A"}))
                .await?;
            n += 1;
        }
    }
    println!(
        "slots bench: 1 host, {n} bookings in March 2031, 30-min slots every 15 min, buffers 5/10"
    );
    // A second replica on the same database with the slot cache off: every query reads
    // PostgreSQL (what a cache miss costs).
    let uncached = TestApp::spawn_with(calops::service::config::Config {
        slot_cache: false,
        ..calops_testkit::app_config(
            &app.database_url,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    })
    .await?;
    println!(
        "{:<10} {:<10} {:>8} {:>9} {:>11} {:>11} {:>10} {:>7}",
        "cache", "range", "clients", "requests", "median ms", "p99 ms", "req/s", "slots"
    );
    for (cache, target, (label, days)) in [
        ("on", &app, ("7 days", 7)),
        ("on", &app, ("31 days", 31)),
        ("on+writes", &app, ("31 days", 31)),
        ("off", &uncached, ("7 days", 7)),
        ("off", &uncached, ("31 days", 31)),
    ] {
        // "on+writes": meanwhile the host gets a booking, or loses it, every 10 ms; each
        // change drops the host's busy time from the cache, and the next query reloads it.
        let writes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = (cache == "on+writes").then(|| {
            let (store, writes, stop) = (store.clone(), writes.clone(), stop.clone());
            tokio::spawn(async move {
                let start: jiff::Timestamp = "2031-03-01T16:00:00Z".parse().expect("time");
                let nb = calops::service::store::bookings::NewBooking {
                    org_id,
                    event_type_id: et_id,
                    start,
                    end: start + jiff::SignedDuration::from_mins(30),
                    attendee: json!({"name": "W", "email": "w@example.com", "timeZone": "UTC"}),
                    guests: json!([]),
                    metadata: json!({}),
                    reservation_uid: None,
                    location: None,
                    booking_fields_responses: json!({}),
                };
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let Ok(calops::service::store::bookings::BookOutcome::Created(b)) =
                        store.create_booking(&nb, None, |_| json!({})).await
                    else {
                        break;
                    };
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if store.cancel_booking(org_id, b.uid, None).await.is_err() {
                        break;
                    }
                    writes.fetch_add(2, Ordering::Relaxed);
                }
            })
        });
        let end = first.checked_add(jiff::Span::new().days(days - 1))?;
        let url = target.url(&format!(
            "/v2/slots?eventTypeId={et_id}&start={MONTH_START}&end={end}&timeZone=Europe/Berlin"
        ));
        let check: Value = http
            .get(&url)
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        let slots: usize = check["data"]
            .as_object()
            .map(|m| {
                m.values()
                    .map(|v| v.as_array().map_or(0, |a| a.len()))
                    .sum()
            })
            .unwrap_or(0);
        anyhow::ensure!(slots > 0, "no slots: {check}");
        for (clients, total) in [(1usize, 400usize), (32, 3200)] {
            // Warm up connections and caches.
            load(&http, &url, &key, clients, clients * 5).await?;
            let (lat, wall) = load(&http, &url, &key, clients, total).await?;
            let p = |q: f64| {
                lat[((lat.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
            };
            println!(
                "{:<10} {:<10} {:>8} {:>9} {:>11.2} {:>11.2} {:>10.0} {:>7}",
                cache,
                label,
                clients,
                total,
                p(0.5),
                p(0.99),
                total as f64 / wall.as_secs_f64(),
                slots
            );
        }
        if let Some(w) = writer {
            stop.store(true, Ordering::Relaxed);
            w.await?;
            println!(
                "{:<10} ({} booking changes of the host during these runs)",
                "",
                writes.load(Ordering::Relaxed)
            );
        }
    }
    // The same queries without HTTP or the database: pure slot computation plus rendering.
    let ctx = store
        .slot_context(
            org_id,
            et_id,
            first.at(0, 0, 0, 0).to_zoned(tz.clone())?.timestamp()
                - jiff::SignedDuration::from_hours(72),
            first.at(0, 0, 0, 0).to_zoned(tz.clone())?.timestamp()
                + jiff::SignedDuration::from_hours(24 * 35),
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("event type vanished"))?;
    let sched = ctx
        .schedule
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no schedule"))?;
    for (label, days) in [("7 days", 7), ("31 days", 31)] {
        let end = first.checked_add(jiff::Span::new().days(days - 1))?;
        let params: Vec<(String, String)> = [
            ("eventTypeId", et_id.to_string()),
            ("start", MONTH_START.to_string()),
            ("end", end.to_string()),
            ("timeZone", "Europe/Berlin".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let rounds = 2000;
        let t = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            // The 2024-09-04 shape, as GET /v2/slots reads and writes it.
            use calops::service::api::versions::slots::{Current, SlotsApi};
            let q = Current
                .query(params.clone(), &mut Vec::new())
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let avail = calops::service::domain::hours::stored_availability(
                &sched.time_zone,
                &sched.availability,
                &sched.overrides,
            )
            .map_err(|e| anyhow::anyhow!(e))?;
            let busy: Vec<calops::service::domain::slots::Busy> = ctx
                .busy
                .iter()
                .map(|b| calops::service::domain::slots::Busy {
                    start: b.start.as_second(),
                    end: b.end.as_second(),
                    before_buffer: i64::from(b.before_buffer),
                    after_buffer: i64::from(b.after_buffer),
                    same_event_type: b.same_event_type,
                })
                .collect();
            let rules = calops::service::domain::slots::Rules {
                length: 30,
                slot_interval: Some(15),
                minimum_notice: 0,
                before_buffer: 5,
                after_buffer: 10,
                window: None,
                per_day_limit: None,
                offset_start: 0,
            };
            let found = calops::service::domain::slots::compute(
                &avail,
                &rules,
                &busy,
                &calops::service::domain::slots::Query {
                    start: q.start,
                    end: q.end,
                    now: 0,
                },
            );
            n += Current.render(&found, &q, 30, &[]).len();
        }
        let per = t.elapsed() / rounds;
        println!(
            "{label:<10} in-process compute + render: {:.1} us per query ({} bytes)",
            per.as_secs_f64() * 1e6,
            n / rounds as usize
        );
    }
    uncached.running.shutdown().await?;
    app.running.shutdown().await?;
    Ok(())
}
