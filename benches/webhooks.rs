//! Webhooks: booking latency with and without an active subscription (the outbox row is
//! written in the booking transaction either way; with one, it matches a subscriber), and
//! delivery lag (201 of the booking to the signed POST arriving at a receiver on 127.0.0.1)
//! and delivery throughput with the default 8 workers.
//! `cargo bench --bench webhooks` runs the full measurement; without `--bench` (under
//! `cargo test --all-targets`) it makes one quick, small pass.

use calops::service::config::Config;
use calops::service::domain::webhooks::sign;
use calops::service::webhooks::Settings;
use calops_testkit::{fresh_database, TestApp, BOOTSTRAP_TOKEN};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const SECRET: &str = "bench-secret-0123456789";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !calops_testkit::postgres_available() {
        calops_testkit::skip_or_fail(
            "webhooks bench",
            "PostgreSQL server binaries are not installed (run scripts/setup)",
        );
        return;
    }
    let n = if full { 2_000 } else { 48 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n)).expect("bench failed");
}

async fn post(c: &reqwest::Client, url: String, token: &str, body: Value) -> anyhow::Result<Value> {
    let mut rq = c.post(&url).bearer_auth(token).json(&body);
    if let Some(v) = calops_testkit::api_version("POST", &url) {
        rq = rq.header("cal-api-version", v);
    }
    let r = rq.send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v["data"].clone())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn line(what: &str, n: usize, secs: f64, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{what:<40} {n:>6} in {secs:>6.2} s = {:>7.0} /s   p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms",
        n as f64 / secs,
        pct(&ms, 0.5),
        pct(&ms, 0.95),
        pct(&ms, 0.99)
    );
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

/// Book slots `from..from+n` with CLIENTS concurrent clients; per booking uid, when its 201 came.
async fn book(
    base: &str,
    key: &str,
    et: i64,
    from: usize,
    n: usize,
) -> anyhow::Result<(f64, Vec<f64>, HashMap<String, Instant>)> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let next = Arc::new(AtomicUsize::new(from));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (http, next, base, key) = (
            http.clone(),
            next.clone(),
            base.to_string(),
            key.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= from + n {
                    return anyhow::Ok(out);
                }
                let t = Instant::now();
                let b = post(
                    &http,
                    format!("{base}/v2/bookings"),
                    &key,
                    json!({"start": slot(i), "eventTypeId": et,
                    "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}}),
                )
                .await?;
                out.push((
                    b["uid"].as_str().unwrap_or_default().to_string(),
                    t.elapsed().as_secs_f64() * 1000.0,
                    Instant::now(),
                ));
            }
        }));
    }
    let mut lat = Vec::new();
    let mut done = HashMap::new();
    for t in tasks {
        for (uid, ms, at) in t.await?? {
            lat.push(ms);
            done.insert(uid, at);
        }
    }
    Ok((started.elapsed().as_secs_f64(), lat, done))
}

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn receive(
    axum::extract::State(seen): axum::extract::State<Seen>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let now = jiff::Timestamp::now().as_second();
    if sign::verify_cal(SECRET.as_bytes(), &body, &h("x-cal-signature-256")).is_err()
        || sign::verify_timestamped(SECRET.as_bytes(), &body, &h("x-calops-signature"), now, 300)
            .is_err()
    {
        return axum::http::StatusCode::UNAUTHORIZED;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    if let Some(uid) = v["payload"]["uid"].as_str() {
        seen.lock()
            .unwrap()
            .entry(uid.to_string())
            .or_insert_with(Instant::now);
    }
    axum::http::StatusCode::OK
}

async fn run(n: usize) -> anyhow::Result<()> {
    let config = Config {
        db_pool_size: 32,
        // The receiver is on 127.0.0.1: allowed explicitly (deliveries reach public addresses
        // only by default).
        webhooks: Settings {
            allow_private: calops::service::domain::webhooks::reach::AllowList::parse(
                "127.0.0.0/8",
            )
            .expect("a CIDR"),
            ..Settings::default()
        },
        ..calops_testkit::app_config(
            &fresh_database().await?,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    };
    let app = TestApp::spawn_with(config).await?;
    let http = reqwest::Client::new();
    let base = app.base.clone();
    let org = post(
        &http,
        format!("{base}/v2/organizations"),
        BOOTSTRAP_TOKEN,
        json!({"name": "Bench"}),
    )
    .await?;
    let key = org["apiKey"].as_str().unwrap_or_default().to_string();
    let org_id = org["id"].as_i64().unwrap_or_default();
    let user = post(
        &http,
        format!("{base}/v2/organizations/{org_id}/users"),
        &key,
        json!({"name": "Host", "email": "host@bench.example.com", "timeZone": "UTC"}),
    )
    .await?;
    let days = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    post(
        &http,
        format!("{base}/v2/schedules"),
        &key,
        json!({"userId": user["id"], "name": "Work", "timeZone": "UTC",
        "availability": [{"days": days, "startTime": "08:00", "endTime": "20:00"}]}),
    )
    .await?;
    let et = post(
        &http,
        format!("{base}/v2/event-types"),
        &key,
        json!({"userId": user["id"], "title": "Call", "slug": "call", "lengthInMinutes": 30}),
    )
    .await?["id"]
        .as_i64()
        .unwrap_or_default();

    println!(
        "webhooks bench: {n} bookings per phase, {CLIENTS} clients, debug={}",
        cfg!(debug_assertions)
    );
    let (secs, lat, _) = book(&base, &key, et, 0, n).await?;
    line("bookings, no subscription", n, secs, lat);

    let seen: Seen = Arc::default();
    let rx = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(seen.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, rx).await });
    post(
        &http,
        format!("{base}/v2/webhooks"),
        &key,
        json!({"subscriberUrl": hook, "triggers": ["BOOKING_CREATED"], "secret": SECRET}),
    )
    .await?;
    let started = Instant::now();
    let (secs, lat, done) = book(&base, &key, et, n, n).await?;
    line("bookings, one subscription", n, secs, lat);
    let until = Instant::now() + Duration::from_secs(120);
    while seen.lock().unwrap().len() < n {
        anyhow::ensure!(
            Instant::now() < until,
            "deliveries did not all arrive in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = started.elapsed().as_secs_f64();
    let seen = seen.lock().unwrap().clone();
    let lag: Vec<f64> = done
        .iter()
        .filter_map(|(uid, at)| {
            seen.get(uid)
                .map(|r| r.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    line(
        "delivery lag (201 -> signed POST received)",
        lag.len(),
        all,
        lag,
    );
    app.running.shutdown().await?;
    Ok(())
}
