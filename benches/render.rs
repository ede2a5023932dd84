//! Time to render the Sydney showcase profile (`prod-au`): load is excluded, render and hash
//! are measured; writing to disk is measured separately. Run: `cargo bench --bench render`.

use calops::render::{self, RenderInput, Slot};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn stats(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<Duration>() / n as u32;
    println!(
        "{name:<28} n={n:<5} min={:>9.3?} median={:>9.3?} p95={:>9.3?} mean={:>9.3?}",
        samples[0],
        samples[n / 2],
        samples[n * 95 / 100],
        mean
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary too, without it:
    // then a few iterations prove it works without slowing the test suite.
    let full = std::env::args().any(|a| a == "--bench");
    let (renders, writes) = if full { (500, 50) } else { (5, 2) };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let t = Instant::now();
    let loaded = calops::profile::load_with("prod-au", &[root.join("profiles")], vec![])
        .expect("profiles/prod-au.toml");
    println!("load profile prod-au (once)   {:?}", t.elapsed());
    let digest = "1".repeat(64);
    let slots = BTreeMap::from([(
        "blue".to_string(),
        Slot::active(&format!(
            "ap-sydney-1.ocir.io/ns/calops/scheduler@sha256:{digest}"
        )),
    )]);
    let input = RenderInput::from_profile(&loaded.profile, slots, Some("1.12.0".into()))
        .expect("render input");

    // The first render also compiles the embedded templates (once per process).
    let t = Instant::now();
    let first = render::render(&input).expect("render");
    println!("first render (compiles templates) {:?}", t.elapsed());
    println!(
        "files: {}, bytes: {}",
        first.files.len(),
        first.files.values().map(|s| s.len()).sum::<usize>()
    );

    let mut render_only = Vec::new();
    let mut render_hash = Vec::new();
    for _ in 0..renders {
        let t = Instant::now();
        let r = render::render(&input).expect("render");
        render_only.push(t.elapsed());
        let t = Instant::now();
        let h = r.content_hash();
        render_hash.push(render_only.last().copied().unwrap_or_default() + t.elapsed());
        assert_eq!(h.len(), 64);
    }
    stats("render prod-au", render_only);
    stats("render + content hash", render_hash);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut write = Vec::new();
    for _ in 0..writes {
        let t = Instant::now();
        render::write::write_to(&first, dir.path()).expect("write");
        write.push(t.elapsed());
    }
    stats("write to disk", write);
}
