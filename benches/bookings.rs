//! Bookings per second and latency percentiles at 32 concurrent clients booking distinct
//! slots of one host over HTTP on loopback, side by side with the raw PostgreSQL rate of
//! single-row insert transactions from 32 connections to the same cluster (same settings).
//! Also measured: bookings with an `Idempotency-Key`, bookings of a 45-minute type (the general
//! path, which reads busy time first), and the same raw inserts into the `bookings` table itself
//! (its triggers and constraints: what the schema allows before any HTTP or checks).
//! `cargo bench --bench bookings` runs the full measurement; without `--bench` (under
//! `cargo test --all-targets`) it makes one quick, small pass.
//!
//! The test cluster runs without durability (fsync=off, synchronous_commit=off), so both
//! sides are CPU-bound. `cargo bench --bench bookings -- --durable` measures both sides
//! against a cluster with production durability instead (fsync=on, synchronous_commit=on,
//! full_page_writes=on: every commit waits for its WAL flush, as in production).
//! `-- --without-calendar-triggers` drops the connected-calendar write-back triggers (migration
//! 11) first: run it and the plain bench back to back to see what they cost the booking path.
//! The mail comparison waits, untimed, after each mail-on round until its outbox has drained, so
//! that the mail-off rounds do not pay for the other side's mail (`-- --no-drain`: do not wait).
//! `-- --mail-only` runs only the mail on / mail off comparison; `-- --mail-workers=N` gives the
//! mail-on side N workers instead of the default (0: the outbox rows are written by the booking
//! statements but nothing is sent, which separates the cost of queueing from that of sending);
//! `-- --yield-max=S` holds the mail back for bookings for at most S seconds instead of the
//! service's default 10 (0: never; the timed rounds last a few seconds, so the default keeps
//! nearly all sending out of them, and 0 measures sending while booking).

use calops_testkit::bench::post;
use calops_testkit::{TestApp, BOOTSTRAP_TOKEN};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 32;
/// General-path bookings a day: 45-minute meetings 90 minutes apart within 00:00-23:00.
const GENERAL_PER_DAY: usize = 15;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    if !calops_testkit::postgres_available() {
        calops_testkit::skip_or_fail(
            "bookings bench",
            "PostgreSQL server binaries are not installed (run scripts/setup)",
        );
        return;
    }
    let durable = std::env::args().any(|a| a == "--durable");
    let total = if full { 10_000 } else { 128 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(total, full, durable))
        .expect("bench failed");
}

/// One measured booking: 201 or an error. The answer is read but not parsed (the raw side
/// parses nothing either; the bookings are counted in the database at the end).
async fn book(
    c: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
    idempotency_key: Option<String>,
) -> anyhow::Result<()> {
    let mut rq = c.post(&url).bearer_auth(token).json(&body);
    if let Some(v) = calops_testkit::api_version("POST", &url) {
        rq = rq.header("cal-api-version", v);
    }
    if let Some(k) = idempotency_key {
        rq = rq.header("Idempotency-Key", k);
    }
    let r = rq.send().await?;
    let status = r.status();
    let bytes = r.bytes().await?;
    anyhow::ensure!(
        status == 201,
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    Ok(())
}

struct Stats {
    n: usize,
    secs: f64,
    lat_ms: Vec<f64>,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        if self.lat_ms.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_ms.len() as f64 - 1.0) * p).round() as usize;
        self.lat_ms[i]
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<44} {:>6} ops in {:>6.2} s = {:>8.0} /s   p50 {:>6.2} ms  p95 {:>6.2} ms  p99 {:>6.2} ms",
            self.n,
            self.secs,
            self.n as f64 / self.secs,
            self.pct(0.50),
            self.pct(0.95),
            self.pct(0.99)
        )
    }
}

/// Run `op(i)` for i in 0..total from `CLIENTS` workers; latencies sorted.
async fn drive<F, Fut>(total: usize, op: F) -> anyhow::Result<Stats>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let op = Arc::new(op);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (next, op) = (next.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                op(worker, i).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut lat_ms = Vec::with_capacity(total);
    for t in tasks {
        lat_ms.extend(t.await??);
    }
    let secs = started.elapsed().as_secs_f64();
    lat_ms.sort_by(f64::total_cmp);
    Ok(Stats {
        n: total,
        secs,
        lat_ms,
    })
}

/// The i-th distinct half-hour slot from 2031-03-03 00:00Z on (47 a day).
fn slot(i: usize) -> String {
    let t0: jiff::Timestamp = "2031-03-03T00:00:00Z".parse().expect("time");
    let i = i as i64;
    let m = (i / 47) * 24 * 60 + (i % 47) * 30;
    (t0 + jiff::SignedDuration::from_mins(m)).to_string()
}

/// A private cluster with PostgreSQL's default (production) durability, removed at exit.
async fn durable_app() -> anyhow::Result<(TestApp, calops::pg::Cluster)> {
    let dir = tempfile::Builder::new()
        .prefix("calops-bench-pg-")
        .tempdir()?
        .keep();
    let mut cluster = calops::pg::Cluster::init_or_open(
        &dir,
        calops::pg::Options {
            settings: vec![
                ("fsync".into(), "on".into()),
                ("synchronous_commit".into(), "on".into()),
                ("full_page_writes".into(), "on".into()),
                ("max_connections".into(), "300".into()),
            ],
            ..calops::pg::Options::default()
        },
    )?;
    calops_testkit::pg::remove_when_process_exits(&cluster, std::process::id())?;
    cluster.start()?;
    cluster.create_database("bench").await?;
    // As the test app: the bench measures bookings, not the rate limiter.
    let config = calops_testkit::app_config(
        &cluster.url("bench"),
        None,
        calops::service::ratelimit::policy::Limits::OFF,
    );
    Ok((TestApp::spawn_with(config).await?, cluster))
}

/// An organization with one host free all day and a 30-minute event type: (API key,
/// organization id, host id, event type id).
async fn tenant(http: &reqwest::Client, app: &TestApp) -> anyhow::Result<(String, i64, i64, i64)> {
    let org = post(
        http,
        app.url("/v2/organizations"),
        BOOTSTRAP_TOKEN,
        json!({"name": "Bench Org"}),
    )
    .await?;
    let key = org["apiKey"].as_str().unwrap_or_default().to_string();
    let org_id = org["id"].as_i64().unwrap_or_default();
    let user = post(
        http,
        app.url(&format!("/v2/organizations/{org_id}/users")),
        &key,
        json!({"name": "Host", "email": "host@example.com", "timeZone": "UTC"}),
    )
    .await?;
    let user_id = user["id"].as_i64().unwrap_or_default();
    post(http, app.url("/v2/schedules"), &key, json!({
        "userId": user_id, "name": "Always", "timeZone": "UTC",
        "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday","Sunday"],
                          "startTime": "00:00", "endTime": "23:59"}]
    })).await?;
    let et = post(
        http,
        app.url("/v2/event-types"),
        &key,
        json!({
            "userId": user_id, "title": "Call", "slug": "call", "lengthInMinutes": 30
        }),
    )
    .await?;
    let et_id = et["id"].as_i64().unwrap_or_default();
    Ok((key, org_id, user_id, et_id))
}

/// (pending, all) messages of an outbox; a booking change not yet made into its messages counts
/// as three pending messages (what each booking of the bench queues).
async fn pending(c: &tokio_postgres::Client) -> anyhow::Result<(i64, i64)> {
    let r = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'), count(*),
               (SELECT 3 * count(*) FROM mail_events)
             FROM mail_outbox",
            &[],
        )
        .await?;
    let events: i64 = r.get(2);
    Ok((r.get::<_, i64>(0) + events, r.get::<_, i64>(1) + events))
}

/// Bookings per second with mail off and with mail on (Maildir transport, its workers sending
/// while the clients book), each on a fresh database of the same cluster, in alternating
/// rounds so drift of a busy machine hits both sides alike: (off, on).
async fn mail_on_off(
    http: &reqwest::Client,
    total: usize,
    workers: Option<usize>,
) -> anyhow::Result<(Stats, Stats)> {
    let maildir = tempfile::tempdir()?;
    let mut sides = Vec::new();
    for on in [false, true] {
        let mut config = calops_testkit::app_config(
            &calops_testkit::fresh_database().await?,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        );
        if on {
            config.mail = calops::service::mail::Settings {
                transport: Some(calops::service::mail::Transport::Maildir(
                    maildir.path().to_path_buf(),
                )),
                from: "bookings@example.com".into(),
                public_url: Some("https://book.example.com".into()),
                ..Default::default()
            };
            if let Some(n) = workers {
                config.mail.workers = n;
            }
            if let Some(d) = yield_max()? {
                config.mail.yield_max = d;
            }
        }
        let app = TestApp::spawn_with(config).await?;
        let (key, _, _, et_id) = tenant(http, &app).await?;
        sides.push((app, Arc::new(key), et_id, Vec::new()));
    }
    // The mail-on side's database, to see how far its workers got.
    let outbox = {
        let (c, conn) =
            tokio_postgres::connect(&sides[1].0.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c
    };
    // With no workers nothing is sent, so there is nothing to wait for.
    let drain = !std::env::args().any(|a| a == "--no-drain") && workers != Some(0);
    let (mut sent_in_rounds, mut drained) = (0i64, Duration::ZERO);
    let rounds = 4;
    for round in 0..rounds {
        for (side, (app, key, et_id, stats)) in sides.iter_mut().enumerate() {
            let (h, k, url, et_id) = (http.clone(), key.clone(), app.url("/v2/bookings"), *et_id);
            let per = total / rounds;
            let before = pending(&outbox).await?;
            stats.push(
                drive(per, move |_, i| {
                    let (h, k, url) = (h.clone(), k.clone(), url.clone());
                    async move {
                        book(
                            &h,
                            url,
                            &k,
                            json!({"start": slot(round * per + i), "eventTypeId": et_id,
                                   "attendee": {"name": "Client", "email": "client@example.com",
                                                "timeZone": "UTC"},
                                   "guests": ["guest@example.com"]}),
                            None,
                        )
                        .await
                    }
                })
                .await?,
            );
            if side == 1 {
                // Messages sent while this round's clients booked (also those queued before).
                let after = pending(&outbox).await?;
                sent_in_rounds += (before.0 + after.1 - before.1) - after.0;
                // The on side's mail is sent before the next round of either side starts, so
                // the mail-off side's rounds do not pay for it (not timed for either side).
                if drain {
                    let t = Instant::now();
                    while pending(&outbox).await?.0 > 0 {
                        anyhow::ensure!(
                            t.elapsed() < Duration::from_secs(300),
                            "the mail backlog did not drain in 300 s"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    drained += t.elapsed();
                }
            }
        }
    }
    let (left, all) = pending(&outbox).await?;
    println!(
        "  (mail on: {sent_in_rounds} of {all} messages sent during the timed rounds; {}",
        if drain {
            format!(
                "the rest drained in {:.2} s, untimed, after the rounds)",
                drained.as_secs_f64()
            )
        } else if workers == Some(0) {
            format!("{left} queued at the end; 0 workers: nothing is sent)")
        } else {
            format!("{left} still pending at the end; `--no-drain`: sent during later rounds of both sides)")
        }
    );
    let mut out = sides.into_iter().map(|(_, _, _, stats)| {
        let mut lat_ms: Vec<f64> = stats.iter().flat_map(|s| s.lat_ms.clone()).collect();
        lat_ms.sort_by(f64::total_cmp);
        Stats {
            n: stats.iter().map(|s| s.n).sum(),
            secs: stats.iter().map(|s| s.secs).sum(),
            lat_ms,
        }
    });
    let off = out.next().expect("two sides");
    let on = out.next().expect("two sides");
    Ok((off, on))
}

/// `--yield-max=S` (seconds), if given: how long the mail workers hold back for bookings at
/// most (`CALOPS_MAIL_YIELD_MAX`; 0: never), to measure sending under a steady stream.
fn yield_max() -> anyhow::Result<Option<Duration>> {
    std::env::args()
        .find_map(|a| a.strip_prefix("--yield-max=").map(str::to_string))
        .map(|s| {
            s.parse::<f64>()
                .ok()
                .and_then(|v| Duration::try_from_secs_f64(v).ok())
                .ok_or_else(|| anyhow::anyhow!("--yield-max={s}: give seconds, e.g. 0 or 2.5"))
        })
        .transpose()
}

/// `--mail-workers=N`, if given.
fn mail_workers() -> anyhow::Result<Option<usize>> {
    std::env::args()
        .find_map(|a| a.strip_prefix("--mail-workers=").map(str::to_string))
        .map(|n| {
            n.parse()
                .map_err(|e| anyhow::anyhow!("--mail-workers={n}: {e}"))
        })
        .transpose()
}

/// The mail on / mail off comparison, printed.
async fn mail_comparison(http: &reqwest::Client, total: usize) -> anyhow::Result<()> {
    let workers = mail_workers()?;
    let (off, on) = mail_on_off(http, total, workers).await?;
    let rate = |s: &Stats| s.n as f64 / s.secs;
    println!("{}", off.line("mail off (1 guest; fresh database)"));
    let held = yield_max()?.unwrap_or(calops::service::mail::Settings::default().yield_max);
    let pacing = format!("held back for bookings at most {:.1} s", held.as_secs_f64());
    let what = match workers {
        Some(0) => "mail on (Maildir, 1 booking event queued a booking, 0 workers)".to_string(),
        Some(n) => format!("mail on (Maildir, 3 messages a booking, {n} workers, {pacing})"),
        None => format!("mail on (Maildir, 3 messages a booking, {pacing})"),
    };
    println!("{}", on.line(&what));
    println!("mail on / mail off = {:.2}", rate(&on) / rate(&off));
    Ok(())
}

async fn run(total: usize, full: bool, durable: bool) -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--mail-only") {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(30))
            .build()?;
        println!("bookings bench, mail on / off only ({CLIENTS} concurrent clients)");
        return mail_comparison(&http, total).await;
    }
    let (app, _cluster) = if durable {
        let (app, cluster) = durable_app().await?;
        (app, Some(cluster))
    } else {
        (TestApp::spawn().await?, None)
    };
    if std::env::args().any(|a| a == "--without-calendar-triggers") {
        let (c, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        c.batch_execute(
            "DROP TRIGGER bookings_caldav_inserted ON bookings;
             DROP TRIGGER bookings_caldav_updated ON bookings;",
        )
        .await?;
        println!("(connected-calendar write-back triggers dropped)");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(30))
        .build()?;
    let (key, org_id, user_id, et_id) = tenant(&http, &app).await?;

    // Warm up connections and caches on slots far from the measured ones.
    for i in 0..CLIENTS {
        post(
            &http,
            app.url("/v2/bookings"),
            &key,
            json!({"start": slot(total + 47 * 3 + i), "eventTypeId": et_id,
                   "attendee": {"name": "Warm", "email": "warm@example.com", "timeZone": "UTC"}}),
        )
        .await?;
    }

    let url = app.url("/v2/bookings");
    let (h, k) = (http.clone(), Arc::new(key.clone()));
    let service = drive(total, move |_, i| {
        let (h, k, url) = (h.clone(), k.clone(), url.clone());
        async move {
            book(
                &h,
                url,
                &k,
                json!({"start": slot(i), "eventTypeId": et_id,
                       "attendee": {"name": "Client", "email": "client@example.com", "timeZone": "UTC"}}),
                None,
            )
            .await
        }
    })
    .await?;
    let metrics = http
        .get(app.private_url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    // How the direct bookings were written (store::batch), from the service's own counters.
    let batching = format!(
        "{:.1} bookings per batch, {} of {} booked alone",
        counter("calops_booking_batched_total ")
            / counter("calops_booking_batches_total ").max(1.0),
        counter("calops_booking_batch_handed_back_total "),
        total + CLIENTS
    );

    // With an Idempotency-Key (recorded by the same statement), on the next days' slots.
    let url = app.url("/v2/bookings");
    let (h, k) = (http.clone(), Arc::new(key.clone()));
    let keyed = drive(total, move |_, i| {
        let (h, k, url) = (h.clone(), k.clone(), url.clone());
        async move {
            book(
                &h,
                url,
                &k,
                json!({"start": slot(total + 47 * 4 + i), "eventTypeId": et_id,
                       "attendee": {"name": "Client", "email": "client@example.com", "timeZone": "UTC"}}),
                Some(format!("bench-{i}")),
            )
            .await
        }
    })
    .await?;

    // Days after those booked so far: the general path's, then the raw inserts into bookings.
    let general_day = ((2 * total + 47 * 4) / 47 + 2) as i64;
    let schema_day = general_day as usize + total / GENERAL_PER_DAY + 2;

    // The general path: a 45-minute type, whose grid busy time can move, so each booking reads
    // the host's busy time, then books in a transaction. It has a host of its own, free
    // 00:00-23:00 every day: each day's grid starts at 00:00 and starts 90 minutes apart stay
    // on it whatever else is booked (a booking moves the grid only for the rest of its day).
    let host2 = post(
        &http,
        app.url(&format!("/v2/organizations/{org_id}/users")),
        &key,
        json!({"name": "Host Two", "email": "host2@example.com", "timeZone": "UTC"}),
    )
    .await?["id"]
        .as_i64()
        .unwrap_or_default();
    post(&http, app.url("/v2/schedules"), &key, json!({
        "userId": host2, "name": "Days", "timeZone": "UTC",
        "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday","Sunday"],
                          "startTime": "00:00", "endTime": "23:00"}]
    })).await?;
    let long = post(
        &http,
        app.url("/v2/event-types"),
        &key,
        json!({"userId": host2, "title": "Long", "slug": "long", "lengthInMinutes": 45}),
    )
    .await?["id"]
        .as_i64()
        .unwrap_or_default();
    let url = app.url("/v2/bookings");
    let (h, k) = (http.clone(), Arc::new(key.clone()));
    let general = drive(total, move |_, i| {
        let (h, k, url) = (h.clone(), k.clone(), url.clone());
        async move {
            let t0: jiff::Timestamp = "2031-03-03T00:00:00Z".parse()?;
            let start = t0
                + jiff::SignedDuration::from_hours(24 * (general_day + (i / GENERAL_PER_DAY) as i64))
                + jiff::SignedDuration::from_mins(90 * (i % GENERAL_PER_DAY) as i64);
            book(
                &h,
                url,
                &k,
                json!({"start": start.to_string(), "eventTypeId": long,
                       "attendee": {"name": "Client", "email": "client@example.com", "timeZone": "UTC"}}),
                None,
            )
            .await
        }
    })
    .await?;

    // Raw PostgreSQL: one single-row INSERT transaction per operation, 32 connections.
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        let (c, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        conns.push(Arc::new(c));
    }
    conns[0]
        .batch_execute(
            "CREATE TABLE raw_insert (id bigserial PRIMARY KEY, host bigint NOT NULL,
               start_at timestamptz NOT NULL, end_at timestamptz NOT NULL, attendee jsonb NOT NULL)",
        )
        .await?;
    let conns = Arc::new(conns);
    // What the schema itself allows: the same single-row INSERT transactions, into `bookings`
    // (triggers, occupancy and its exclusion constraint, calendar and cache bookkeeping,
    // foreign keys), one row per statement, on free slots from `schema_day` on. No HTTP, no checks, no webhook events.
    let schema = {
        let conns = conns.clone();
        drive(total, move |worker, i| {
            let c = conns[worker].clone();
            async move {
                let start: jiff::Timestamp = slot(47 * schema_day + i).parse()?;
                let end = start + jiff::SignedDuration::from_mins(30);
                c.execute(
                    "INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at,
                       end_at, attendee) VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6)",
                    &[
                        &org_id,
                        &et_id,
                        &user_id,
                        &start,
                        &end,
                        &json!({"name": "Client", "email": "client@example.com"}),
                    ],
                )
                .await?;
                Ok(())
            }
        })
        .await?
    };
    let raw =
        drive(total, move |worker, i| {
            let c = conns[worker].clone();
            async move {
                let start: jiff::Timestamp = slot(i).parse()?;
                let end = start + jiff::SignedDuration::from_mins(30);
                c.execute(
                "INSERT INTO raw_insert (host, start_at, end_at, attendee) VALUES ($1, $2, $3, $4)",
                &[&1i64, &start, &end, &json!({"name": "Client", "email": "client@example.com"})],
            )
            .await?;
                Ok(())
            }
        })
        .await?;

    let db = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(db.1);
    let accepted: i64 =
        db.0.query_one(
            "SELECT count(*) FROM bookings WHERE status = 'accepted'",
            &[],
        )
        .await?
        .get(0);
    anyhow::ensure!(
        accepted as usize == 4 * total + CLIENTS,
        "expected {} bookings, found {accepted}",
        4 * total + CLIENTS
    );
    println!(
        "bookings bench ({}): {CLIENTS} concurrent clients, distinct slots of one host; {}",
        if full {
            "full"
        } else {
            "quick pass; run `cargo bench --bench bookings` for the real numbers"
        },
        if durable {
            "durable cluster (fsync=on, synchronous_commit=on)"
        } else {
            "test cluster (fsync=off, synchronous_commit=off; `-- --durable` for production durability)"
        }
    );
    println!("{}", service.line("POST /v2/bookings (HTTP, 201)"));
    println!("  ({batching})");
    println!("{}", keyed.line("  with Idempotency-Key"));
    println!("{}", general.line("  45-minute type (general path)"));
    println!("{}", raw.line("raw PostgreSQL single-row INSERT txn"));
    println!(
        "{}",
        schema.line("  the same into bookings (schema ceiling)")
    );
    let rate = |s: &Stats| s.n as f64 / s.secs;
    mail_comparison(&http, total).await?;
    println!(
        "service / raw = {:.2}   (schema ceiling / raw = {:.2}; service / schema ceiling = {:.2})",
        rate(&service) / rate(&raw),
        rate(&schema) / rate(&raw),
        rate(&service) / rate(&schema)
    );
    Ok(())
}
