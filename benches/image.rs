//! Benchmark of the `calops` image: cross-build times, assembly, first push, unchanged
//! re-push, and `skopeo copy` of the same OCI layout to the same registry as a baseline; then
//! the end-to-end proof for the real image: each platform pulled back with skopeo, unpacked,
//! and `calops --version` run (arm64 under `qemu-aarch64-static -L <rootfs>`, amd64 in
//! `chroot <rootfs>`). The test suite (`tests/image.rs`) proves the same with a small fixture
//! binary, because a cold arm64 build of calops takes minutes.
//!
//! `cargo bench --bench image` runs it. Settings (environment):
//! - CALOPS_BENCH_PROFILE: cargo profile for the calops binaries (default `release`);
//! - CALOPS_BENCH_DEBUG: if set (e.g. `0`), CARGO_PROFILE_<P>_DEBUG for the builds;
//! - CALOPS_BENCH_ITERS: pushes per measurement (default 5).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only assembles a small image in
//! memory and exits, so the test suite stays fast.

use calops::image::auth::CredentialSource;
use calops::image::pipeline::{
    assemble, assemble_all, assemble_index, plan_builds, resolve_base, BinarySource,
};
use calops::image::reference::ImageReference;
use calops::image::registry::RegistryClient;
use calops::image::toolchain::{run_cargo, CargoBuild};
use calops::image::{build_image, ImageBuildOptions, Platform};
use calops::ui::Ui;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (run scripts/setup)");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    if !bench_mode {
        smoke();
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let profile = std::env::var("CALOPS_BENCH_PROFILE").unwrap_or_else(|_| "release".into());
    let iters: usize = std::env::var("CALOPS_BENCH_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    if let Ok(d) = std::env::var("CALOPS_BENCH_DEBUG") {
        let var = format!("CARGO_PROFILE_{}_DEBUG", profile.to_ascii_uppercase());
        std::env::set_var(&var, &d);
        println!("setting {var}={d}");
    }
    let platforms = vec![Platform::linux_amd64(), Platform::linux_arm64()];

    // 1. Cross-build calops itself for both platforms.
    let mut o = ImageBuildOptions::new(
        "127.0.0.1:1/calops",
        root.join("Cargo.toml"),
        target_dir.clone(),
    );
    o.binary = BinarySource::Cargo(CargoBuild {
        manifest_path: root.join("Cargo.toml"),
        bin: "calops".into(),
        profile: profile.clone(),
        target_dir: target_dir.clone(),
        locked: true,
    });
    let mut binaries = BTreeMap::new();
    for (p, cmd, how) in plan_builds(&o).expect("cross toolchain (run scripts/setup)") {
        let cmd = cmd.unwrap();
        let t = Instant::now();
        let path = run_cargo(&cmd).expect("cargo build of calops");
        let size = std::fs::metadata(&path).unwrap().len();
        println!(
            "build {p:<12} profile={profile:<8} {:>8.1} s  binary {:.1} MB  ({how})",
            secs(t.elapsed()),
            size as f64 / 1e6
        );
        binaries.insert(p, path);
    }

    // 2. A registry with a Debian-built base image (pushed with skopeo).
    let reg = Registry::start();
    let host = format!("127.0.0.1:{}", reg.port);
    let tmp = target_dir.join("tmp");
    let base_dir = tmp.join("bench-image-base");
    calops::image::debian_base::write_base_layout(
        &base_dir,
        &["amd64", "arm64"],
        &tmp.join("image-debian"),
    )
    .expect("base image from Debian packages");
    let out = Command::new("skopeo")
        .args(["copy", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:base", base_dir.display()))
        .arg(format!("docker://{host}/base:1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut opts = ImageBuildOptions::new(
        &format!("{host}/calops"),
        root.join("Cargo.toml"),
        target_dir.clone(),
    );
    opts.base = format!("{host}/base:1");
    opts.tag = Some("bench".into());
    opts.insecure_registry = true;
    opts.credentials = CredentialSource::None;
    opts.binary = BinarySource::Prebuilt(binaries.clone());
    opts.platforms = platforms.clone();

    // 3. Assembly (pure: layers, configs, manifests, index), binaries already in memory.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let base_ref: ImageReference = opts.base.parse().unwrap();
    let client = RegistryClient::new(&host, &host, true, None, "none").unwrap();
    let (_, bases) = rt
        .block_on(resolve_base(&client, &base_ref, &platforms))
        .unwrap();
    let bins: Vec<Vec<u8>> = platforms
        .iter()
        .map(|p| std::fs::read(&binaries[p]).unwrap())
        .collect();
    let mut times = Vec::new();
    let mut layer_sizes = Vec::new();
    for _ in 0..iters {
        let t = Instant::now();
        let inputs = bases.iter().zip(bins.iter().cloned()).collect();
        let imgs = assemble_all(inputs, &opts).unwrap();
        let _ = assemble_index(&imgs);
        times.push(secs(t.elapsed()));
        layer_sizes = imgs.iter().map(|a| a.layer.descriptor.size).collect();
    }
    println!(
        "assemble both platforms        median {:>7.3} s  (calops layers {:?} bytes gzip)",
        median(times),
        layer_sizes
    );

    // 4. First push (fresh repository each time) and unchanged re-push.
    let mut first = Vec::new();
    let mut first_net = Vec::new();
    for i in 0..iters {
        let mut o = opts.clone();
        o.repository = format!("{host}/calops-{i}");
        o.push = true;
        let t = Instant::now();
        let r = build_image(&o, &Ui::silent()).expect("push");
        first.push(secs(t.elapsed()));
        first_net.push(r.timings_ms["push"] as f64 / 1000.0);
        if i == 0 {
            println!(
                "first push uploads: {:?}  index {}",
                r.uploads.unwrap(),
                r.digest
            );
        }
    }
    let mut repush = Vec::new();
    let mut repush_net = Vec::new();
    for _ in 0..iters {
        let mut o = opts.clone();
        o.repository = format!("{host}/calops-0");
        o.push = true;
        let t = Instant::now();
        let r = build_image(&o, &Ui::silent()).expect("re-push");
        repush.push(secs(t.elapsed()));
        repush_net.push(r.timings_ms["push"] as f64 / 1000.0);
        assert_eq!(r.uploads.as_ref().unwrap().blobs_uploaded, 0);
    }

    // 5. Baseline: skopeo copy of the same image as an OCI layout to the same registry.
    let layout = tmp.join("bench-image-layout");
    let mut o = opts.clone();
    o.layout_dir = Some(layout.clone());
    let local = build_image(&o, &Ui::silent()).expect("layout");
    let skopeo = |repo: &str| {
        let t = Instant::now();
        let out = Command::new("skopeo")
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bench", layout.display()))
            .arg(format!("docker://{host}/{repo}:bench"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        secs(t.elapsed())
    };
    let sk_first: Vec<f64> = (0..iters).map(|i| skopeo(&format!("skopeo-{i}"))).collect();
    let sk_re: Vec<f64> = (0..iters).map(|_| skopeo("skopeo-0")).collect();
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/skopeo-0:bench"))
        .output()
        .unwrap();
    let same = calops::image::spec::sha256_digest(&raw.stdout) == local.digest;

    let (mf, mr, sf, sr) = (
        median(first),
        median(repush),
        median(sk_first),
        median(sk_re),
    );
    println!("first push (calops, incl. base resolve + assembly) median {mf:>7.3} s");
    println!("first push (skopeo copy oci: layout)               median {sf:>7.3} s   ratio calops/skopeo {:.2}", mf / sf);
    let (nf, nr) = (median(first_net), median(repush_net));
    println!("first push (calops, registry part only)            median {nf:>7.3} s   ratio calops/skopeo {:.2}", nf / sf);
    println!("unchanged re-push (calops, registry part only)     median {nr:>7.3} s   ratio calops/skopeo {:.2}", nr / sr);
    println!("unchanged re-push (calops)                         median {mr:>7.3} s");
    println!("unchanged re-push (skopeo copy)                    median {sr:>7.3} s   ratio calops/skopeo {:.2}", mr / sr);
    println!("skopeo pushed the identical index digest: {same}");

    // 6. The pushed calops image runs: each platform pulled with skopeo, its layers unpacked,
    //    the arm64 binary run under qemu-aarch64-static -L <rootfs>, the amd64 one in chroot.
    let work = tmp.join("bench-image-run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let image = format!("{host}/calops-0:bench");
    for arch in ["arm64", "amd64"] {
        let t = Instant::now();
        let root = pull_rootfs(&image, arch, &work);
        let pulled = secs(t.elapsed());
        let bin = root.join("usr/local/bin/calops");
        let mut cmd = if arch == "arm64" {
            let mut c = Command::new("qemu-aarch64-static");
            c.arg("-L").arg(&root).arg(&bin);
            c
        } else if nix::unistd::Uid::effective().is_root() {
            let mut c = Command::new("chroot");
            c.arg(&root).arg("/usr/local/bin/calops");
            c
        } else {
            println!("run amd64: skipped (chroot needs root)");
            continue;
        };
        let t = Instant::now();
        let out = cmd
            .arg("--version")
            .output()
            .expect("run calops from the image");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && text.starts_with("calops "),
            "calops --version from the {arch} image: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        println!(
            "run {arch:<5} from the pulled image: `{text}`  (pull+unpack {pulled:.2} s, run {:.2} s{})",
            secs(t.elapsed()),
            if arch == "arm64" { ", qemu-aarch64-static -L rootfs" } else { ", chroot rootfs" }
        );
    }
}

/// `skopeo copy` one platform of `image` to a directory and unpack its layers into a rootfs.
fn pull_rootfs(image: &str, arch: &str, dir: &Path) -> PathBuf {
    let img = dir.join(format!("img-{arch}"));
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            "--override-os",
            "linux",
        ])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", img.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.join("manifest.json")).unwrap()).unwrap();
    let root = dir.join(format!("rootfs-{arch}"));
    std::fs::create_dir_all(&root).unwrap();
    for l in m["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let st = Command::new("tar")
            .arg("-xzf")
            .arg(img.join(hex))
            .arg("-C")
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success(), "unpacking layer {hex}");
    }
    root
}

/// Quick check under `cargo test`: assemble a tiny image in memory.
fn smoke() {
    let cfg = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#;
    let base = calops::image::pipeline::BasePlatform {
        platform: Platform::linux_amd64(),
        manifest: calops::image::spec::build_manifest(
            calops::image::spec::Descriptor::of(calops::image::spec::MT_OCI_CONFIG, cfg),
            vec![],
        ),
        config: bytes::Bytes::from_static(cfg),
    };
    let o = ImageBuildOptions::new(
        "127.0.0.1:1/x",
        Path::new("Cargo.toml").into(),
        "target".into(),
    );
    let a = assemble(&base, vec![0u8; 1024], &o).unwrap();
    let (_, d) = assemble_index(&[a]);
    assert!(d.digest.starts_with("sha256:"));
    println!("image bench: smoke ok (run `cargo bench --bench image` for numbers)");
}
