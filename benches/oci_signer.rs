//! OCI signing costs: `cargo bench --bench oci_signer` (or run the dev-profile binary).
//! Prints mean time per operation for config parsing, key decoding, fingerprinting and
//! request signing (GET, and POST with a 4 KiB JSON body).

use calops::oci::config::PassPhrase;
use calops::oci::signer::{BodyMode, Signer};
use calops::oci::{config, keys};
use reqwest::header::HeaderMap;
use std::path::Path;
use std::time::{Instant, SystemTime};

fn time<T>(label: &str, n: u32, mut f: impl FnMut() -> T) {
    // `cargo bench` passes --bench; under `cargo test --all-targets` run each op once only.
    let n = if std::env::args().any(|a| a == "--bench") {
        n
    } else {
        1
    };
    let _ = f(); // warm-up
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(f());
    }
    let per = t.elapsed() / n;
    println!(
        "{label:<42} {:>12.3} µs/op  (n={n})",
        per.as_secs_f64() * 1e6
    );
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/oci/signing-vectors.json"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        eprintln!(
            "oci_signer bench needs the signing vectors at {path} (tests/fixtures/oci/README.md)"
        );
        std::process::exit(1);
    };
    let v: serde_json::Value = serde_json::from_str(&text).expect("vectors JSON");
    let c = &v["credentials"];
    let pkcs1 = c["private_key_pkcs1_pem"].as_str().unwrap();
    let pkcs8 = c["private_key_pkcs8_pem"].as_str().unwrap();
    let enc = c["encrypted_variants"]["private_key_pkcs8_encrypted_pem"]
        .as_str()
        .unwrap();
    let pass = PassPhrase::new(c["encrypted_variants"]["pass_phrase"].as_str().unwrap());
    let p = Path::new("bench.pem");

    let cfg_text = format!(
        "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint={}\ntenancy=ocid1.tenancy.oc1..t\nregion=ap-sydney-1\nkey_file=~/.oci/k.pem\n[A]\nregion=ap-melbourne-1\n",
        c["fingerprint"].as_str().unwrap()
    );
    time("config parse + resolve profile", 2000, || {
        config::parse(&cfg_text, Path::new("/c"))
            .unwrap()
            .profile("A", Some(Path::new("/home/u")))
            .unwrap()
    });
    time("decode PKCS#1 PEM (2048-bit)", 50, || {
        keys::parse_private_key_pem(pkcs1, None, p).unwrap()
    });
    time("decode PKCS#8 PEM", 50, || {
        keys::parse_private_key_pem(pkcs8, None, p).unwrap()
    });
    time("decrypt encrypted PKCS#8 PEM", 5, || {
        keys::parse_private_key_pem(enc, Some(&pass), p).unwrap()
    });
    let key = keys::parse_private_key_pem(pkcs1, None, p).unwrap();
    let public = key.to_public_key();
    time("fingerprint (MD5 of SPKI DER)", 2000, || {
        keys::fingerprint(&public)
    });

    let signer = Signer::new(c["key_id"].as_str().unwrap(), key);
    let get = url::Url::parse(
        "https://objectstorage.ap-sydney-1.oraclecloud.com/n/ns/b/calops-state/o/releases%2F0001.json",
    )
    .unwrap();
    time("sign GET", 50, || {
        let mut h = HeaderMap::new();
        signer
            .sign(
                "GET",
                &get,
                &mut h,
                b"",
                BodyMode::Standard,
                SystemTime::now(),
            )
            .unwrap()
    });
    let post = url::Url::parse("https://iaas.ap-sydney-1.oraclecloud.com/20160918/vcns").unwrap();
    let body = vec![b'x'; 4096];
    time("sign POST (4 KiB body, SHA-256 + RSA)", 50, || {
        let mut h = HeaderMap::new();
        signer
            .sign(
                "POST",
                &post,
                &mut h,
                &body,
                BodyMode::Standard,
                SystemTime::now(),
            )
            .unwrap()
    });
}
