//! `GET /v2/slots` for 31 days at 32 clients, for a host with a connected calendar holding
//! 500 events (50 of them weekly recurring, in Europe/Berlin) side by side with the same host
//! setup without a calendar, in one run on one service. The calendar is a real Radicale
//! (from scripts/setup's venv) synced by the service itself. The goal: p99 with the calendar
//! within 20% of p99 without. Run with `cargo bench --bench caldav`.

use calops_testkit::bench::{load, post, quantile_ms};
use calops_testkit::caldav::{Kind, TestCalDav, PASSWORD, USER};
use calops_testkit::TestApp;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("caldav bench: run with `cargo bench --bench caldav` (skipped under cargo test)");
        return;
    }
    if !calops_testkit::postgres_available() {
        calops_testkit::skip_or_fail("caldav bench", "PostgreSQL is not installed");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run()).expect("bench failed");
}

/// A host working 08:00-18:00 Europe/Berlin on weekdays with a 30-minute event type; its id.
async fn host(
    http: &reqwest::Client,
    app: &TestApp,
    key: &str,
    org_id: i64,
    name: &str,
) -> anyhow::Result<(i64, i64)> {
    let user = post(
        http,
        app.url(&format!("/v2/organizations/{org_id}/users")),
        key,
        json!({"name": name, "email": format!("{name}@example.com"), "timeZone": "Europe/Berlin"}),
    )
    .await?;
    let user_id = user["id"].as_i64().unwrap_or_default();
    post(http, app.url("/v2/schedules"), key, json!({
        "userId": user_id, "name": "Work", "timeZone": "Europe/Berlin",
        "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday"], "startTime": "08:00", "endTime": "18:00"}]
    })).await?;
    let et = post(http, app.url("/v2/event-types"), key, json!({
        "userId": user_id, "title": "Call", "slug": format!("call-{name}"), "lengthInMinutes": 30,
        "beforeEventBuffer": 5, "afterEventBuffer": 10
    })).await?;
    Ok((user_id, et["id"].as_i64().unwrap_or_default()))
}

/// 450 single events and 50 weekly ones over the next 40 days, 08:00-18:00 Berlin.
fn events(from: jiff::civil::Date) -> Vec<(String, String)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(500);
    (0..500)
        .map(|i| {
            let d = from.checked_add(jiff::Span::new().days(rng.gen_range(0..40))).expect("date");
            let (h, m) = (rng.gen_range(8..17), [0, 15, 30, 45][rng.gen_range(0..4)]);
            let start = d.at(h, m, 0, 0).strftime("%Y%m%dT%H%M%S").to_string();
            let end = d.at(h + 1, m, 0, 0).strftime("%Y%m%dT%H%M%S").to_string();
            let rule = if i < 50 { "RRULE:FREQ=WEEKLY;COUNT=10\r\n" } else { "" };
            let ics = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calops bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:{end}\r\n{rule}SUMMARY:busy {i}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            (format!("bench-{i}.ics"), ics)
        })
        .collect()
}

fn slots_in(v: &Value) -> usize {
    v["data"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|v| v.as_array().map_or(0, |a| a.len()))
                .sum()
        })
        .unwrap_or(0)
}

async fn run() -> anyhow::Result<()> {
    let Some(server) = TestCalDav::start("caldav bench", Kind::Radicale) else {
        return Ok(());
    };
    let (app, http, key, org_id) = calops_testkit::bench::app_with_org("Bench").await?;
    let (with_user, with_et) = host(&http, &app, &key, org_id, "with").await?;
    let (_, without_et) = host(&http, &app, &key, org_id, "without").await?;

    let from = jiff::Zoned::now().date().tomorrow()?;
    let cal = server.make_calendar("work").await?;
    let evs = events(from);
    let t = Instant::now();
    for chunk in evs.chunks(16) {
        futures::future::try_join_all(chunk.iter().map(|(f, ics)| server.put(&cal, f, ics)))
            .await?;
    }
    println!(
        "caldav bench: 500 events (50 weekly, 10 each) put into Radicale in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let conn = post(
        &http,
        app.url("/v2/calendars/caldav/credentials"),
        &key,
        json!({"userId": with_user, "url": server.url(), "username": USER, "password": PASSWORD}),
    )
    .await?;
    post(
        &http,
        app.url("/v2/selected-calendars"),
        &key,
        json!({"integration": "caldav", "externalId": cal, "credentialId": conn["credentialId"]}),
    )
    .await?;

    let to = from.checked_add(jiff::Span::new().days(30))?;
    let url = |et: i64| {
        app.url(&format!(
            "/v2/slots?eventTypeId={et}&start={from}&end={to}&timeZone=Europe/Berlin"
        ))
    };
    // Wait for the sync: the host with the calendar has fewer slots.
    let base: Value = http
        .get(url(without_et))
        .bearer_auth(&key)
        .send()
        .await?
        .json()
        .await?;
    let t = Instant::now();
    loop {
        let v: Value = http
            .get(url(with_et))
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        if slots_in(&v) < slots_in(&base) {
            println!("caldav bench: synced in {:.1}s; slots over 31 days: {} with the calendar, {} without",
                t.elapsed().as_secs_f64(), slots_in(&v), slots_in(&base));
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "the calendar did not sync: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let busy: i64 = {
        let (c, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.query_one("SELECT count(*) FROM external_busy", &[])
            .await?
            .get(0)
    };
    println!("caldav bench: {busy} busy intervals stored for the connected calendar (shared, busy machine: compare the two rows of one run)");
    println!(
        "{:<18} {:>8} {:>9} {:>11} {:>11} {:>10}",
        "host", "clients", "requests", "median ms", "p99 ms", "req/s"
    );
    let mut p99 = [Vec::new(), Vec::new()];
    // Interleaved rounds, so that both sides see the same machine load.
    for round in 0..3 {
        for (i, (label, et)) in [("without calendar", without_et), ("with calendar", with_et)]
            .into_iter()
            .enumerate()
        {
            let u = url(et);
            load(&http, &u, &key, 32, 160).await?;
            let (lat, wall) = load(&http, &u, &key, 32, 3200).await?;
            p99[i].push(quantile_ms(&lat, 0.99));
            println!(
                "{:<18} {:>8} {:>9} {:>11.2} {:>11.2} {:>10.0}   (round {})",
                label,
                32,
                lat.len(),
                quantile_ms(&lat, 0.5),
                quantile_ms(&lat, 0.99),
                lat.len() as f64 / wall.as_secs_f64(),
                round + 1
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (a, b) = (median(&mut p99[0]), median(&mut p99[1]));
    println!(
        "p99 (median of 3 rounds): without {a:.2} ms, with {b:.2} ms: {:+.1}% (goal: within +20%)",
        (b / a - 1.0) * 100.0
    );
    app.running.shutdown().await?;
    Ok(())
}
