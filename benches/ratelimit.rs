//! Cost of the rate limiter and the booking lock: in-process decisions, decisions through a
//! real redis-server on loopback (sequential latency and 32 concurrent tasks), and one
//! uncontended lock acquire + release. Run with `cargo bench --bench ratelimit`.
//! (Under `cargo test --all-targets` it only says how to run it.)

use calops::service::ratelimit::lock::{Acquired, BookingLocks};
use calops::service::ratelimit::policy::{Class, Limit, Limits};
use calops::service::ratelimit::redis_conn::SharedRedis;
use calops::service::ratelimit::{Backend, RateLimiter};
use calops_testkit::TestRedis;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "ratelimit bench: run with `cargo bench --bench ratelimit` (skipped under cargo test)"
        );
        return;
    }
    let Some(redis) = TestRedis::start("ratelimit bench") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&redis));
}

fn limits() -> Limits {
    let l = Limit {
        requests: 1_000_000,
        period: Duration::from_secs(3600),
    };
    Limits {
        availability: Some(l),
        bookings: Some(l),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let total: Duration = samples.iter().sum();
    println!(
        "{name:<44} n={:<6} p50={:>8.1} us  p95={:>8.1} us  p99={:>8.1} us  ({:.0}/s sequential)",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        samples.len() as f64 / total.as_secs_f64()
    );
}

async fn run(redis: &TestRedis) {
    // In-process.
    let local = RateLimiter::new(limits(), None);
    let n = 200_000;
    let t = Instant::now();
    for i in 0..n {
        let who = format!("key:{}", i % 1000);
        let (d, b) = local
            .check(Class::Availability, &who)
            .await
            .expect("limited");
        assert!(d.allowed && b == Backend::InProcess);
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "in-process decisions                         n={n:<6} {:.2} us each ({:.0}/s, one task)",
        secs / n as f64 * 1e6,
        n as f64 / secs
    );

    // Through Redis, sequential.
    let shared = SharedRedis::new(&redis.url(), Duration::from_millis(250)).map(Arc::new);
    let limiter = Arc::new(RateLimiter::new(limits(), shared.clone()));
    let mut samples = Vec::new();
    for i in 0..5_000 {
        let who = format!("key:{}", i % 100);
        let t = Instant::now();
        let (d, b) = limiter.check(Class::Bookings, &who).await.expect("limited");
        samples.push(t.elapsed());
        assert!(d.allowed && b == Backend::Redis, "{b:?}");
    }
    report("Redis decisions, one at a time", samples);

    // Through Redis, 32 concurrent tasks on the shared multiplexed connection.
    let per_task = 1_000;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..32 {
        let limiter = limiter.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let who = format!("key:{task}:{}", i % 10);
                let t = Instant::now();
                let (_, b) = limiter
                    .check(Class::Availability, &who)
                    .await
                    .expect("limited");
                assert_eq!(b, Backend::Redis);
                s.push(t.elapsed());
            }
            s
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    let secs = t.elapsed().as_secs_f64();
    all.sort();
    println!(
        "Redis decisions, 32 concurrent tasks         n={:<6} p50={:>8.1} us  p95={:>8.1} us  p99={:>8.1} us  ({:.0}/s total)",
        all.len(),
        percentile(&all, 0.50),
        percentile(&all, 0.95),
        percentile(&all, 0.99),
        all.len() as f64 / secs
    );

    // One uncontended lock: SET NX PX, then the compare-and-delete script.
    let locks = BookingLocks::new(shared);
    let mut samples = Vec::new();
    for i in 0..2_000 {
        let key = format!("calops:booking-lock:bench:{i}");
        let t = Instant::now();
        match locks.acquire(&key).await {
            Acquired::Held(g) => g.release().await,
            other => panic!("expected to hold the lock: {other:?}"),
        }
        samples.push(t.elapsed());
    }
    report("booking lock acquire + release (free)", samples);
    assert_eq!(
        limiter.fallbacks(),
        0,
        "Redis never fell back during the run"
    );
}
