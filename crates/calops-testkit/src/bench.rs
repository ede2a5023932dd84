//! What the HTTP benchmarks share: a JSON POST that must succeed, and a load loop that
//! measures every request's latency.

use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// POST `body` as JSON with a bearer token; the response's `data` (an error unless 2xx).
pub async fn post(
    c: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let mut rq = c.post(&url).bearer_auth(token).json(&body);
    // calops' own clients speak the newest Cal.com shapes of versioned routes.
    if let Some(v) = crate::api_version("POST", &url) {
        rq = rq.header("cal-api-version", v);
    }
    let r = rq.send().await?;
    let status = r.status();
    let v: Value = r.json().await?;
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v["data"].clone())
}

/// A service on a fresh database, an HTTP client for it, and a new organization there:
/// (app, client, API key, organization id).
pub async fn app_with_org(
    name: &str,
) -> anyhow::Result<(crate::TestApp, reqwest::Client, String, i64)> {
    let app = crate::TestApp::spawn().await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let org = post(
        &http,
        app.url("/v2/organizations"),
        crate::BOOTSTRAP_TOKEN,
        serde_json::json!({ "name": name }),
    )
    .await?;
    let key = org["apiKey"].as_str().unwrap_or_default().to_string();
    let org_id = org["id"].as_i64().unwrap_or_default();
    Ok((app, http, key, org_id))
}

/// `total` GETs of `url` spread over `clients` concurrent loops; sorted latencies and the wall
/// time.
pub async fn load(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    clients: usize,
    total: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, key, next) = (http.clone(), url.to_string(), key.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                let r = http.get(&url).bearer_auth(&key).send().await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.bytes().await?;
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
    Ok((all, wall))
}

/// The `q` quantile (0..=1) of sorted latencies, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0
}
