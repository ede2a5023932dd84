//! `calops image build` against real components: Debian's `docker-registry` (CNCF
//! distribution) on 127.0.0.1, skopeo as the independent client, a base image assembled from
//! Debian packages for amd64 and arm64, and qemu-user / chroot to run what was pushed.
//!
//! The binary cross-built here is `tests/fixtures/hello-bin` (a stand-in for calops that
//! builds in seconds); the cross-build of calops itself is measured in `benches/image.rs`.

use calops::image::auth::CredentialSource;
use calops::image::pipeline::{plan_builds, BinarySource};
use calops::image::registry::{RegistryClient, CHUNK_SIZE};
use calops::image::spec;
use calops::image::toolchain::{run_cargo, CargoBuild};
use calops::image::{build_image, ImageBuildOptions, ImageRef, Platform};
use calops::ui::Ui;
use calops_testkit::{require_tool, skip_or_fail};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const TMP: &str = env!("CARGO_TARGET_TMPDIR");

fn tools(test: &str, list: &[&str]) -> bool {
    list.iter().all(|t| require_tool(test, t).is_some())
}

enum Auth {
    Htpasswd(String, String),
    Token { realm: String, cert: PathBuf },
}

/// A `docker-registry serve` process on a free loopback port; killed on drop.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(htpasswd: Option<(&str, &str)>) -> Registry {
        Registry::start_with(htpasswd.map(|(u, p)| Auth::Htpasswd(u.to_string(), p.to_string())))
    }

    fn start_with(auth: Option<Auth>) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(Auth::Token { realm, cert }) = &auth {
            cfg.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: calops-test\n    issuer: calops-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ));
        }
        if let Some(Auth::Htpasswd(user, pass)) = &auth {
            let file = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbc", file.to_str().unwrap(), user.as_str(), pass.as_str()])
                .output()
                .unwrap();
            assert!(out.status.success(), "htpasswd: {out:?}");
            cfg.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: calops-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            port,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A base image layout from Debian packages (cached in the target tmp dir).
fn base_layout(name: &str, arches: &[&str]) -> PathBuf {
    let dir = Path::new(TMP).join("image-base-layouts").join(name);
    calops::image::debian_base::write_base_layout(
        &dir,
        arches,
        &Path::new(TMP).join("image-debian"),
    )
    .expect("base image from Debian packages");
    dir
}

fn base_layouts() -> &'static (PathBuf, PathBuf) {
    static B: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    B.get_or_init(|| {
        (
            base_layout("multi", &["amd64", "arm64"]),
            base_layout("amd64-only", &["amd64"]),
        )
    })
}

/// Push a base layout to a registry with skopeo (independent of calops' client).
fn skopeo_push(layout: &Path, dest: &str, creds: Option<&str>) {
    let mut c = Command::new("skopeo");
    c.args(["copy", "--all", "--dest-tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    c.arg(format!("oci:{}:base", layout.display()))
        .arg(format!("docker://{dest}"));
    run(&mut c);
}

fn fixture_build() -> CargoBuild {
    CargoBuild {
        manifest_path: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hello-bin/Cargo.toml"),
        bin: "calops".into(),
        profile: "dev".into(),
        target_dir: Path::new(TMP).join("hello-bin-target"),
        locked: true,
    }
}

fn both() -> Vec<Platform> {
    vec![Platform::linux_amd64(), Platform::linux_arm64()]
}

/// The fixture built for both platforms (once per test run), via calops' own planning.
fn fixture_binaries() -> &'static BTreeMap<Platform, PathBuf> {
    static B: OnceLock<BTreeMap<Platform, PathBuf>> = OnceLock::new();
    B.get_or_init(|| {
        let mut o = ImageBuildOptions::new("127.0.0.1:1/x", "Cargo.toml".into(), "target".into());
        o.binary = BinarySource::Cargo(fixture_build());
        o.platforms = both();
        plan_builds(&o)
            .expect("cross toolchain present (run scripts/setup)")
            .into_iter()
            .map(|(p, cmd, _)| (p, run_cargo(&cmd.unwrap()).expect("fixture builds")))
            .collect()
    })
}

fn options(reg: &Registry, repo: &str, base: &str) -> ImageBuildOptions {
    let mut o = ImageBuildOptions::new(
        &format!("{}/{repo}", reg.host()),
        "Cargo.toml".into(),
        "target".into(),
    );
    o.base = format!("{}/{base}", reg.host());
    o.tag = Some("v1".into());
    o.push = true;
    o.insecure_registry = true;
    o.credentials = CredentialSource::None;
    o.binary = BinarySource::Prebuilt(fixture_binaries().clone());
    o.labels.insert(
        "org.opencontainers.image.revision".into(),
        "0123456789abcdef".into(),
    );
    o.labels
        .insert("io.calops.profile-hash".into(), "testhash".into());
    o
}

fn skopeo_raw(image: &str, creds: Option<&str>) -> (Vec<u8>, serde_json::Value) {
    let mut c = Command::new("skopeo");
    c.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(cr) = creds {
        c.args(["--creds", cr]);
    }
    let out = c.arg(format!("docker://{image}")).output().unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out.stdout, v)
}

/// Fetch one platform with skopeo, unpack its layers (with tar) into a rootfs.
fn pull_rootfs(image: &str, arch: &str, dir: &Path) -> PathBuf {
    let img = dir.join(format!("img-{arch}"));
    run(Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--override-arch",
            arch,
            "--override-os",
            "linux",
        ])
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", img.display())));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.join("manifest.json")).unwrap()).unwrap();
    let root = dir.join(format!("rootfs-{arch}"));
    std::fs::create_dir_all(&root).unwrap();
    for l in m["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        run(Command::new("tar")
            .arg("-xzf")
            .arg(img.join(hex))
            .arg("-C")
            .arg(&root));
    }
    let cfg_hex = m["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(img.join(cfg_hex)).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], arch);
    assert_eq!(
        cfg["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/calops", "serve"])
    );
    assert_eq!(cfg["config"]["User"], "65532:65532");
    assert_eq!(
        cfg["config"]["Labels"]["io.calops.profile-hash"],
        "testhash"
    );
    root
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

#[test]
fn multi_arch_image_is_pushed_reproducibly_and_runs_on_both_platforms() {
    let t = "multi_arch_image_is_pushed_reproducibly_and_runs_on_both_platforms";
    if !tools(
        t,
        &[
            "docker-registry",
            "skopeo",
            "apt-get",
            "dpkg-deb",
            "qemu-aarch64-static",
            "aarch64-linux-gnu-gcc",
            "tar",
        ],
    ) {
        return;
    }
    if !is_root() {
        return skip_or_fail(t, "chroot needs root");
    }
    let reg = Registry::start(None);
    let (multi, amd_only) = base_layouts();
    skopeo_push(multi, &format!("{}/base:1", reg.host()), None);
    skopeo_push(amd_only, &format!("{}/base:amd64-only", reg.host()), None);

    // Build through the cargo path (cross-compiling arm64), push, and report.
    let mut o = options(&reg, "calops", "base:1");
    o.binary = BinarySource::Cargo(fixture_build());
    let first = build_image(&o, &Ui::silent()).expect("first build and push");
    let up = first.uploads.unwrap();
    // 1 shared-nothing base layer per arch (mounted from base/), our layer + config per arch.
    assert_eq!(up.blobs_mounted, 2, "{up:?}");
    assert_eq!(up.blobs_uploaded, 4, "{up:?}");
    assert!(
        first.platforms[1].built_with.contains("aarch64"),
        "{:?}",
        first.platforms[1]
    );

    // skopeo sees an index with both platforms, whose digest is the one we reported.
    let image = format!("{}/calops:v1", reg.host());
    let (raw, idx) = skopeo_raw(&image, None);
    assert_eq!(spec::sha256_digest(&raw), first.digest);
    assert_eq!(idx["mediaType"], spec::MT_OCI_INDEX);
    let archs: Vec<&str> = idx["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // Build again: identical digests; re-push uploads nothing.
    let second = build_image(&o, &Ui::silent()).expect("second build");
    assert_eq!(second.digest, first.digest);
    assert_eq!(second.platforms, first.platforms);
    let up2 = second.uploads.unwrap();
    assert_eq!((up2.blobs_uploaded, up2.blobs_mounted), (0, 0), "{up2:?}");
    assert_eq!(up2.blobs_skipped, 6);

    // Pull each platform with skopeo, unpack, and run the binaries from the image.
    let work = tempfile::tempdir().unwrap();
    let arm = pull_rootfs(&image, "arm64", work.path());
    assert!(
        arm.join("lib/ld-linux-aarch64.so.1").exists(),
        "loader comes from the base layer"
    );
    let out = run(Command::new("qemu-aarch64-static")
        .arg("-L")
        .arg(&arm)
        .arg(arm.join("usr/local/bin/calops"))
        .arg("--version"));
    assert_eq!(out.trim(), "calops 0.1.0-fixture (aarch64)");
    let amd = pull_rootfs(&image, "amd64", work.path());
    let out = run(Command::new("chroot")
        .arg(&amd)
        .args(["/usr/local/bin/calops", "--version"]));
    assert_eq!(out.trim(), "calops 0.1.0-fixture (x86_64)");

    // Bad input: a base image without the wanted platform.
    let mut o2 = options(&reg, "calops", "base:amd64-only");
    let e = build_image(&o2, &Ui::silent()).unwrap_err().to_string();
    assert!(
        e.contains("has no linux/arm64 image (it has: linux/amd64)"),
        "{e}"
    );
    // A base image that does not exist.
    o2.base = format!("{}/base:nope", reg.host());
    let e = build_image(&o2, &Ui::silent()).unwrap_err().to_string();
    assert!(e.contains("not found"), "{e}");

    // The CLI: same registry, prebuilt binaries, --json.
    let bins = fixture_binaries();
    let out = Command::new(env!("CARGO_BIN_EXE_calops"))
        .args([
            "image",
            "build",
            "--push",
            "--insecure-registry",
            "--json",
            "--tag",
            "cli",
        ])
        .arg(format!("--repo={}/calops-cli", reg.host()))
        .arg(format!("--base={}/base:1", reg.host()))
        .arg(format!(
            "--binary=linux/amd64={}",
            bins[&Platform::linux_amd64()].display()
        ))
        .arg(format!(
            "--binary=linux/arm64={}",
            bins[&Platform::linux_arm64()].display()
        ))
        .arg(format!(
            "--docker-config={}",
            work.path().join("no-such-config.json").display()
        ))
        .output()
        .unwrap();
    // A missing explicit docker config is an error that names the file.
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-config.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_calops"))
        .args([
            "image",
            "build",
            "--push",
            "--insecure-registry",
            "--json",
            "--tag",
            "cli",
        ])
        .arg(format!("--repo={}/calops-cli", reg.host()))
        .arg(format!("--base={}/base:1", reg.host()))
        .arg(format!(
            "--binary=linux/amd64={}",
            bins[&Platform::linux_amd64()].display()
        ))
        .arg(format!(
            "--binary=linux/arm64={}",
            bins[&Platform::linux_arm64()].display()
        ))
        .env("DOCKER_CONFIG", work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let digest = doc["image"]["digest"].as_str().unwrap();
    let (raw, _) = skopeo_raw(&format!("{}/calops-cli:cli", reg.host()), None);
    assert_eq!(spec::sha256_digest(&raw), digest);
    assert_eq!(doc["pinned"], format!("{}/calops-cli@{digest}", reg.host()));
    let layers = doc["image"]["platforms"][1]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[1]["from"], "calops");
    assert!(layers[1]["size"].as_u64().unwrap() > 1000);
}

#[test]
fn basic_auth_registry_accepts_right_and_rejects_wrong_credentials() {
    let t = "basic_auth_registry_accepts_right_and_rejects_wrong_credentials";
    if !tools(
        t,
        &[
            "docker-registry",
            "skopeo",
            "htpasswd",
            "apt-get",
            "dpkg-deb",
            "aarch64-linux-gnu-gcc",
        ],
    ) {
        return;
    }
    let reg = Registry::start(Some(("calops", "s3cret-pass")));
    let (multi, _) = base_layouts();
    skopeo_push(
        multi,
        &format!("{}/base:1", reg.host()),
        Some("calops:s3cret-pass"),
    );

    // Anonymous: told that credentials are needed, and how to give them.
    let mut o = options(&reg, "app", "base:1");
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(e.contains("requires authentication"), "{e}");

    // Wrong password: a 401 that names the registry and the credential source, not the secret.
    crate::support::env::expect(&[
        ("CALOPS_IT_USER", "calops"),
        ("CALOPS_IT_BAD_PASS", "wrong-pass"),
        ("CALOPS_IT_PASS", "s3cret-pass"),
    ]);
    o.credentials = CredentialSource::Env {
        username_var: "CALOPS_IT_USER".into(),
        password_var: "CALOPS_IT_BAD_PASS".into(),
    };
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(
        e.contains(&format!("registry {} rejected the credentials", reg.host())),
        "{e}"
    );
    assert!(
        e.contains("CALOPS_IT_BAD_PASS") && !e.contains("wrong-pass"),
        "{e}"
    );

    // Right credentials from the environment.
    o.credentials = CredentialSource::Env {
        username_var: "CALOPS_IT_USER".into(),
        password_var: "CALOPS_IT_PASS".into(),
    };
    let img: ImageRef = build_image(&o, &Ui::silent()).expect("push with Basic auth");
    assert_eq!(img.uploads.unwrap().blobs_mounted, 2);

    // Right credentials from a docker config.json; unchanged image: nothing uploaded.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("calops:s3cret-pass");
    std::fs::write(
        &cfg,
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    o.credentials = CredentialSource::DockerConfigAt(cfg);
    let again = build_image(&o, &Ui::silent()).expect("re-push with docker config credentials");
    assert_eq!(again.digest, img.digest);
    assert_eq!(again.uploads.unwrap().blobs_uploaded, 0);
    let (raw, _) = skopeo_raw(
        &format!("{}/app:v1", reg.host()),
        Some("calops:s3cret-pass"),
    );
    assert_eq!(spec::sha256_digest(&raw), img.digest);
}

#[test]
fn unreachable_registry_and_missing_cross_toolchain_fail_clearly() {
    // Missing linker: found before any network or compile work, with install commands.
    let mut o = ImageBuildOptions::new("127.0.0.1:9/calops", "Cargo.toml".into(), "target".into());
    o.binary = BinarySource::Cargo(fixture_build());
    o.toolchain.linkers.insert(
        "aarch64-unknown-linux-gnu".into(),
        "/nonexistent/aarch64-linux-gnu-gcc".into(),
    );
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(
        e.contains("cannot cross-build calops for aarch64-unknown-linux-gnu"),
        "{e}"
    );
    assert!(
        e.contains("apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu"),
        "{e}"
    );

    // Nothing listens on a port we just freed: a clear "cannot reach" with the fix.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut o = ImageBuildOptions::new(
        &format!("127.0.0.1:{port}/calops"),
        "Cargo.toml".into(),
        "target".into(),
    );
    o.base = format!("127.0.0.1:{port}/base:1");
    o.insecure_registry = true;
    o.push = true;
    o.credentials = CredentialSource::None;
    let fake = tempfile::NamedTempFile::new().unwrap();
    o.binary = BinarySource::Prebuilt(
        both()
            .into_iter()
            .map(|p| (p, fake.path().to_path_buf()))
            .collect(),
    );
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(
        e.contains(&format!("cannot reach registry 127.0.0.1:{port}")),
        "{e}"
    );
    assert!(e.contains("fix:"), "{e}");

    // --builder buildx without Docker on the machine: says so, and names the alternative.
    if which::which("docker").is_err() {
        let out = Command::new(env!("CARGO_BIN_EXE_calops"))
            .args([
                "image",
                "build",
                "--builder",
                "buildx",
                "--repo",
                "127.0.0.1:9/calops",
            ])
            .arg(format!(
                "--manifest-path={}/Cargo.toml",
                env!("CARGO_MANIFEST_DIR")
            ))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("`docker` is not installed") && err.contains("--builder native"),
            "{err}"
        );
    }
}

#[test]
fn large_blobs_go_up_in_chunks_and_come_back_verified() {
    let t = "large_blobs_go_up_in_chunks_and_come_back_verified";
    if !tools(t, &["docker-registry"]) {
        return;
    }
    let reg = Registry::start(None);
    let client = RegistryClient::new(&reg.host(), &reg.host(), true, None, "none").unwrap();
    let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 123)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let digest = spec::sha256_digest(&big);
    let seen = Mutex::new(Vec::new());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        assert!(!client.blob_exists("big", &digest, true).await.unwrap());
        client
            .upload_blob("big", &digest, bytes::Bytes::from(big.clone()), &|n| {
                seen.lock().unwrap().push(n)
            })
            .await
            .unwrap();
        assert!(client.blob_exists("big", &digest, true).await.unwrap());
        assert_eq!(client.get_blob("big", &digest).await.unwrap(), big);
        // A wrong digest is refused by the registry, and the error says where.
        let e = client
            .upload_blob(
                "big",
                &spec::sha256_digest(b"other"),
                bytes::Bytes::from_static(b"data"),
                &|_| {},
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("DIGEST_INVALID") || e.contains("digest"), "{e}");
    });
    let total = big.len() as u64;
    let c = CHUNK_SIZE as u64;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![c, 2 * c, total],
        "three PATCH chunks"
    );
    assert_eq!(client.stats.snapshot().blobs_uploaded, 1);
}

/// A token service as the registry's `auth.token` expects: RS256 JWTs with an x5c chain that
/// the registry trusts via `rootcertbundle`. Valid credentials get the scopes they ask for;
/// anonymous callers get pull only; bad credentials get 401.
struct TokenServer {
    port: u16,
    _rt: tokio::runtime::Runtime,
}

fn start_token_server(
    key_pem: String,
    cert_der: Vec<u8>,
    user: &'static str,
    pass: &'static str,
) -> TokenServer {
    use axum::extract::RawQuery;
    use axum::http::{HeaderMap, StatusCode};
    use base64::Engine as _;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&key_pem).unwrap();
    let signer = std::sync::Arc::new(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key));
    let x5c = base64::engine::general_purpose::STANDARD.encode(&cert_der);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = move |RawQuery(q): RawQuery, headers: HeaderMap| {
        let signer = signer.clone();
        let x5c = x5c.clone();
        async move {
            let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
            );
            let authed = match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                None => false,
                Some(h) if h == expected => true,
                Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials".to_string()),
            };
            let mut access = Vec::new();
            for (k, v) in url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()) {
                if k != "scope" {
                    continue;
                }
                let parts: Vec<&str> = v.split(':').collect();
                let actions: Vec<&str> = parts[2]
                    .split(',')
                    .filter(|a| authed || *a == "pull")
                    .collect();
                access.push(
                    serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}),
                );
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = serde_json::json!({
                "iss": "calops-test-issuer", "sub": if authed { user } else { "" }, "aud": "calops-test",
                "exp": now + 300, "nbf": now - 10, "iat": now - 10, "jti": uuid::Uuid::new_v4().to_string(),
                "access": access,
            });
            let input = format!(
                "{}.{}",
                b64.encode(header.to_string()),
                b64.encode(claims.to_string())
            );
            let sig = signer.sign(input.as_bytes()).to_bytes();
            let token = format!("{input}.{}", b64.encode(sig));
            (
                StatusCode::OK,
                serde_json::json!({"token": token}).to_string(),
            )
        }
    };
    let app = axum::Router::new().route("/token", axum::routing::get(handler));
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    TokenServer { port, _rt: rt }
}

#[test]
fn bearer_token_registry_anonymous_pull_and_authenticated_push() {
    let t = "bearer_token_registry_anonymous_pull_and_authenticated_push";
    if !tools(
        t,
        &[
            "docker-registry",
            "skopeo",
            "openssl",
            "apt-get",
            "dpkg-deb",
            "aarch64-linux-gnu-gcc",
        ],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=calops-test-token",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    let der = Command::new("openssl")
        .args(["x509", "-outform", "DER", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    let ts = start_token_server(
        std::fs::read_to_string(&key).unwrap(),
        der,
        "robot",
        "t0ken-pass",
    );
    let reg = Registry::start_with(Some(Auth::Token {
        realm: format!("http://127.0.0.1:{}/token", ts.port),
        cert,
    }));
    let (multi, _) = base_layouts();
    skopeo_push(
        multi,
        &format!("{}/base:1", reg.host()),
        Some("robot:t0ken-pass"),
    );

    // Anonymous: the bearer flow works for pulling the base, but pushing is refused.
    let mut o = options(&reg, "app", "base:1");
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(
        e.contains(&format!("registry {} requires authentication", reg.host())),
        "{e}"
    );
    o.push = false;
    o.layout_dir = Some(dir.path().join("layout"));
    let local = build_image(&o, &Ui::silent()).expect("anonymous pull through the token flow");
    assert!(dir.path().join("layout/index.json").exists());

    // Wrong credentials: the token service answers 401.
    crate::support::env::expect(&[
        ("CALOPS_IT_TOKEN_USER", "robot"),
        ("CALOPS_IT_TOKEN_BAD", "nope"),
        ("CALOPS_IT_TOKEN_PASS", "t0ken-pass"),
    ]);
    o.push = true;
    o.layout_dir = None;
    o.credentials = CredentialSource::Env {
        username_var: "CALOPS_IT_TOKEN_USER".into(),
        password_var: "CALOPS_IT_TOKEN_BAD".into(),
    };
    let e = build_image(&o, &Ui::silent()).unwrap_err().to_string();
    assert!(e.contains("rejected the credentials"), "{e}");

    // Right credentials: pushed (base layers mounted across repositories), same digest as the layout.
    o.credentials = CredentialSource::Env {
        username_var: "CALOPS_IT_TOKEN_USER".into(),
        password_var: "CALOPS_IT_TOKEN_PASS".into(),
    };
    let img = build_image(&o, &Ui::silent()).expect("push with a bearer token");
    assert_eq!(img.digest, local.digest);
    let up = img.uploads.unwrap();
    assert_eq!((up.blobs_mounted, up.blobs_uploaded), (2, 4), "{up:?}");
    let (raw, _) = skopeo_raw(&format!("{}/app:v1", reg.host()), Some("robot:t0ken-pass"));
    assert_eq!(spec::sha256_digest(&raw), img.digest);
}

/// A stand-in for OCIR's token endpoint (`GET /20180419/docker/token`): it verifies the OCI
/// request signature (keyId, signed headers, RSA-SHA256 over the signing string, clock skew)
/// with the test key's public half and answers a registry token; anything else gets OCI's 401.
struct OcirTokenServer {
    port: u16,
    /// (valid signed requests, rejected requests).
    hits: std::sync::Arc<Mutex<(u32, Vec<String>)>>,
    _rt: tokio::runtime::Runtime,
}

fn start_ocir_token_server(
    public: rsa::RsaPublicKey,
    key_id: String,
    token: &'static str,
) -> OcirTokenServer {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let hits = std::sync::Arc::new(Mutex::new((0u32, Vec::new())));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let h = hits.clone();
    let signatures = std::sync::Arc::new(crate::support::ocistand::Signatures {
        public,
        key_ids: vec![key_id],
        host: Some(format!("127.0.0.1:{port}")),
    });
    let handler = move |uri: Uri, headers: HeaderMap| {
        let (signatures, hits) = (signatures.clone(), h.clone());
        async move {
            let pq = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            match signatures.verify("GET", pq, &headers, b"") {
                Ok(()) => {
                    hits.lock().unwrap().0 += 1;
                    (
                        StatusCode::OK,
                        serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                            .to_string(),
                    )
                }
                Err(why) => {
                    hits.lock().unwrap().1.push(why);
                    (
                        StatusCode::UNAUTHORIZED,
                        serde_json::json!({"code": "NotAuthenticated",
                            "message": "The required information to complete authentication was not provided or was incorrect."})
                        .to_string(),
                    )
                }
            }
        }
    };
    let app = axum::Router::new().route("/20180419/docker/token", axum::routing::get(handler));
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    OcirTokenServer {
        port,
        hits,
        _rt: rt,
    }
}

#[test]
fn ocir_token_from_the_oci_api_key_authenticates_the_push() {
    let t = "ocir_token_from_the_oci_api_key_authenticates_the_push";
    if !tools(
        t,
        &[
            "docker-registry",
            "skopeo",
            "htpasswd",
            "apt-get",
            "dpkg-deb",
            "aarch64-linux-gnu-gcc",
        ],
    ) {
        return;
    }
    use calops::image::ocir::{OciKeySource, BEARER_USERNAME};
    use rsa::pkcs8::EncodePrivateKey;
    use std::os::unix::fs::PermissionsExt;
    const TOKEN: &str = "ocir-registry-token-for-test";
    // An OCI API key and config profile, as `oci setup config` writes them.
    let dir = tempfile::tempdir().unwrap();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let key_file = dir.path().join("oci_api_key.pem");
    std::fs::write(
        &key_file,
        key.to_pkcs8_pem(Default::default()).unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fp = calops::oci::keys::fingerprint(&key.to_public_key());
    let (tenancy, user) = (
        "ocid1.tenancy.oc1..aaaaaaaatestttenancy",
        "ocid1.user.oc1..aaaaaaaatestuser",
    );
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nuser={user}\nfingerprint={fp}\nkey_file={}\ntenancy={tenancy}\nregion=ap-sydney-1\n\n\
             [OTHER]\nuser=ocid1.user.oc1..aaaaaaaaunknownuser\n",
            key_file.display()
        ),
    )
    .unwrap();
    let ts = start_ocir_token_server(key.to_public_key(), format!("{tenancy}/{user}/{fp}"), TOKEN);

    // The registry accepts the token the way OCIR does: user BEARER_TOKEN, the token as password.
    let reg = Registry::start(Some((BEARER_USERNAME, TOKEN)));
    let (multi, _) = base_layouts();
    let creds = format!("{BEARER_USERNAME}:{TOKEN}");
    skopeo_push(multi, &format!("{}/base:1", reg.host()), Some(&creds));

    let mut o = options(&reg, "app", "base:1");
    let source = |profile: &str| {
        CredentialSource::OciApiKey(OciKeySource {
            config_file: Some(config.clone()),
            profile: Some(profile.into()),
            token_endpoint: Some(
                url::Url::parse(&format!("http://127.0.0.1:{}", ts.port)).unwrap(),
            ),
        })
    };
    o.credentials = source("DEFAULT");
    let img = build_image(&o, &Ui::silent()).expect("push with an OCIR token");
    {
        let hits = ts.hits.lock().unwrap();
        assert!(
            hits.0 >= 1,
            "the token endpoint was called with a valid signature"
        );
        assert!(hits.1.is_empty(), "rejected signatures: {:?}", hits.1);
    }
    let (raw, _) = skopeo_raw(&format!("{}/app:v1", reg.host()), Some(&creds));
    assert_eq!(spec::sha256_digest(&raw), img.digest);

    // A key OCI does not know: the token call's 401 is reported with what to do; no secret.
    o.credentials = source("OTHER");
    let e = format!("{:#}", build_image(&o, &Ui::silent()).unwrap_err());
    assert!(e.contains("could not get an OCIR token"), "{e}");
    assert!(e.contains("401") || e.contains("NotAuthenticated"), "{e}");
    assert!(!e.contains(TOKEN), "{e}");
    assert_eq!(ts.hits.lock().unwrap().1.len(), 1);

    // A profile that does not exist: a clear local error before any network call.
    o.credentials = source("MISSING");
    let e = format!("{:#}", build_image(&o, &Ui::silent()).unwrap_err());
    assert!(e.contains("cannot load the OCI profile"), "{e}");
}
