//! The booking pages under load, side by side with the API in the same run: the booker page
//! (month calendar and the first free day's slots) and a chosen day's slot list, against
//! `GET /v2/slots` for the same month and the same day, at 1 and 32 concurrent clients over
//! HTTP on loopback. One host with a month of bookings. Prints p50/p95/p99 and page sizes
//! (goal: p99 under 20 ms at 32 clients, every page under 50 KB with its CSS).
//! Run with `cargo bench --bench pages`; under `cargo test --all-targets` it only says so.

use calops_testkit::bench::post;
use calops_testkit::{TestApp, BOOTSTRAP_TOKEN};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MONTH: &str = "2031-03";
const DAY: &str = "2031-03-10";

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("pages bench: run with `cargo bench --bench pages` (skipped under cargo test)");
        return;
    }
    if calops_testkit::require_tool("pages bench", "pg_config").is_none()
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
    let app = TestApp::spawn().await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let org = post(
        &http,
        app.url("/v2/organizations"),
        BOOTSTRAP_TOKEN,
        json!({"name": "Bench Org"}),
    )
    .await?;
    let key = org["apiKey"].as_str().unwrap_or_default().to_string();
    let org_id = org["id"].as_i64().unwrap_or_default();
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
        ]
    })).await?;
    let et = post(&http, app.url("/v2/event-types"), &key, json!({
        "userId": user_id, "title": "Consultation", "slug": "consultation", "lengthInMinutes": 30,
        "slotInterval": 15, "beforeEventBuffer": 5, "afterEventBuffer": 10
    })).await?;
    let et_id = et["id"].as_i64().unwrap_or_default();
    // A month of bookings: 6 a weekday, 75 minutes apart from 09:00 local.
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let first: jiff::civil::Date = format!("{MONTH}-01").parse()?;
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
    let page = format!(
        "/{}/{}/consultation",
        org["slug"].as_str().unwrap_or_default(),
        user["username"].as_str().unwrap_or_default()
    );
    println!("pages bench: 1 host, {n} bookings in {MONTH}, 30-min slots every 15 min, invitee in Europe/Berlin");
    println!("(a shared, busy machine: compare the rows of one run, not across runs)");
    let zone = "Europe%2FBerlin";
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "page: booker (month + first day)",
            format!("{page}?month={MONTH}&tz={zone}"),
            None,
        ),
        (
            "api: /v2/slots month",
            format!("/v2/slots?eventTypeId={et_id}&start={MONTH}-01&end={MONTH}-31&timeZone=Europe/Berlin"),
            Some(key.as_str()),
        ),
        (
            "page: a day's slot list",
            format!("{page}?month={MONTH}&date={DAY}&tz={zone}"),
            None,
        ),
        (
            "api: /v2/slots day",
            format!("/v2/slots?eventTypeId={et_id}&start={DAY}&end={DAY}&timeZone=Europe/Berlin"),
            Some(key.as_str()),
        ),
    ];
    println!(
        "{:<34} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "request", "clients", "requests", "p50 ms", "p95 ms", "p99 ms", "req/s", "bytes"
    );
    for (clients, total) in [(1usize, 300usize), (32, 3200)] {
        for (label, path, token) in &cases {
            let url = app.url(path);
            let bytes = load(&http, &url, *token, 1, 1).await?.2;
            load(&http, &url, *token, clients, clients * 5).await?;
            let (lat, wall, _) = load(&http, &url, *token, clients, total).await?;
            let p = |q: f64| {
                lat[((lat.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
            };
            println!(
                "{:<34} {:>7} {:>8} {:>8.2} {:>8.2} {:>8.2} {:>8.0} {:>9}",
                label,
                clients,
                total,
                p(0.5),
                p(0.95),
                p(0.99),
                total as f64 / wall.as_secs_f64(),
                bytes
            );
        }
    }
    // Every kind of page, its size with the inline CSS and script (goal: under 50 KB).
    let slot_page = http
        .get(app.url(&format!("{page}?month={MONTH}&date={DAY}&tz={zone}")))
        .send()
        .await?
        .text()
        .await?;
    let slot = slot_page
        .split("href=\"")
        .map(|s| {
            s.split('"')
                .next()
                .unwrap_or("")
                .replace("&amp;", "&")
                .replace("&#x2f;", "/")
        })
        .find(|h| h.contains("slot="))
        .ok_or_else(|| anyhow::anyhow!("no slot link"))?;
    let mut sizes = Vec::new();
    for (label, path) in [
        (
            "profile",
            page.rsplit_once('/')
                .map(|p| p.0.to_string())
                .unwrap_or_default(),
        ),
        ("booker", format!("{page}?month={MONTH}&tz={zone}")),
        ("booker with form", slot),
        ("404", "/nobody/here".to_string()),
        ("home", "/".to_string()),
    ] {
        let body = http.get(app.url(&path)).send().await?.bytes().await?;
        sizes.push(format!("{label} {} B", body.len()));
        anyhow::ensure!(body.len() < 50 * 1024, "{label} is {} bytes", body.len());
    }
    println!("page sizes (CSS and script inline): {}", sizes.join(", "));
    Ok(())
}

/// `total` GETs of `url` from `clients` concurrent clients: sorted latencies, wall time, and
/// the size of one answer.
async fn load(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    clients: usize,
    total: usize,
) -> anyhow::Result<(Vec<Duration>, Duration, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let size = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, token, next, size) = (
            http.clone(),
            url.to_string(),
            token.map(str::to_string),
            next.clone(),
            size.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let mut rq = http.get(&url);
                if let Some(k) = &token {
                    rq = rq.bearer_auth(k);
                }
                let r = rq.send().await?;
                anyhow::ensure!(r.status().is_success(), "{url}: status {}", r.status());
                let b = r.bytes().await?;
                size.store(b.len(), Ordering::Relaxed);
                lat.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    let wall = started.elapsed();
    all.sort();
    Ok((all, wall, size.load(Ordering::Relaxed)))
}
