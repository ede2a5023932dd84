//! Calendar files: render time of one ICS (pure), and write latency to the filesystem backend
//! (atomic: temp file, fsync, rename) and to an S3-compatible server (`moto` on 127.0.0.1,
//! when the venv from scripts/setup is there). `cargo bench --bench ics` runs the full
//! measurement; without `--bench` (under `cargo test --all-targets`) one quick, small pass.

use calops::service::ics::{render, Event, Person};
use calops::service::objstore::{self, ObjectStore};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn event(i: usize) -> Event {
    Event {
        uid: format!("0b8c6a52-6f0e-4a57-9d0f-{i:012}"),
        sequence: (i % 5) as i32,
        cancelled: i % 7 == 0,
        stamp: "2031-03-01T08:00:00Z".parse().unwrap(),
        start: "2031-03-03T09:00:00Z".parse().unwrap(),
        end: "2031-03-03T09:30:00Z".parse().unwrap(),
        summary: "Call between Host and Zoë Ångström-Ōkubo 日本語の名前, with notes; long".into(),
        description: Some(format!("Booking {i}\nsecond line")),
        organizer: Person {
            name: Some("Host".into()),
            email: "host@example.com".into(),
        },
        attendees: (0..3)
            .map(|k| Person {
                name: Some(format!("Attendee {k} with a rather long name, 名前")),
                email: format!("a{k}@example.com"),
            })
            .collect(),
        required_attendees: 1,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn writes(store: &dyn ObjectStore, n: usize, label: &str) {
    let body = render(&event(1)).into_bytes();
    let mut lat = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let s = Instant::now();
        store
            .put(&format!("ics/1/{i}.ics"), body.clone(), "text/calendar")
            .await
            .expect("put");
        lat.push(s.elapsed());
    }
    let total = t.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{label}: {n} writes of {} B, {:.0} writes/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        body.len(),
        n as f64 / total,
        percentile(&lat, 0.5),
        percentile(&lat, 0.95),
        percentile(&lat, 0.99)
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let renders = if full { 50_000 } else { 200 };
    let t = Instant::now();
    let mut bytes = 0;
    for i in 0..renders {
        bytes += render(&event(i)).len();
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "render: {renders} calendars, {:.1} µs each, {:.0} MB/s",
        secs * 1e6 / renders as f64,
        bytes as f64 / secs / 1e6
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n = if full { 500 } else { 10 };
    let dir = tempfile::tempdir().expect("tempdir");
    rt.block_on(writes(
        &objstore::FsStore::new(dir.path().to_path_buf()),
        n,
        "filesystem",
    ));

    let py = std::path::Path::new("/opt/calops-venv/bin/python3");
    if !py.exists() {
        calops_testkit::skip_or_fail(
            "ics bench (s3)",
            "/opt/calops-venv is missing (run scripts/setup)",
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut moto = Command::new(py)
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
        .expect("moto");
    let url = format!("s3://bench?endpoint=http://127.0.0.1:{port}&region=us-east-1&access_key=env:K&secret_key=env:S");
    let spec = objstore::Spec::parse(&url, &|_| Some("bench".into())).expect("spec");
    let objstore::Spec::S3(s3) = spec else {
        unreachable!("an s3:// URL parses to S3")
    };
    let store = objstore::s3::S3Store::new(&s3).expect("store");
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(60);
        while store.create_bucket().await.is_err() {
            assert!(Instant::now() < until, "moto did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        writes(&store, n, "s3 (moto)").await;
    });
    let _ = moto.kill();
    let _ = moto.wait();
}
