//! OCI client tests: the shared signing vectors (byte for byte), key formats, profiles, and
//! every typed call against a local HTTP server on 127.0.0.1 that verifies each request's
//! signature with the public key (its own implementation of the scheme, not calops').

use crate::support::oci::{s, session_token, shared_key, unix_in, vectors, Oci, EXPIRED_TOKEN};
use base64::Engine as _;
use calops::oci::auth;
use calops::oci::client::{OciClient, OciError, OciRequest, RetryPolicy, Service};
use calops::oci::config::{OciConfig, PassPhrase};
use calops::oci::keys::{self, KeyError};
use calops::oci::objectstorage::{CreateBucket, ListObjects, PutCondition};
use calops::oci::signer::{body_mode_for, BodyMode, Signer};
use calops::oci::workrequests::{WaitOptions, CONTAINER_INSTANCES};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

// ---------------------------------------------------------------------------------------
// The shared signing vectors
// ---------------------------------------------------------------------------------------

/// Sign one case with `key` and compare everything the vector records.
fn check_case(case: &Value, key: &RsaPrivateKey, default_key_id: &str) {
    let name = s(case, "name");
    let method = s(case, "method");
    let url = Url::parse(s(case, "url")).unwrap();
    let mode = match s(case, "signing_mode") {
        "exclude_body" => BodyMode::ExcludeBody,
        _ => BodyMode::Standard,
    };
    assert_eq!(
        body_mode_for(method, &url),
        mode,
        "{name}: body mode detection"
    );
    let key_id = case["key_id"].as_str().unwrap_or(default_key_id);
    let signer = match key_id.strip_prefix("ST$") {
        Some(token) => Signer::with_security_token(token, key.clone()),
        None => Signer::new(key_id, key.clone()),
    };
    let body = match case["body_base64"].as_str() {
        Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
        None => Vec::new(),
    };
    assert_eq!(body.len() as u64, case["body_length"].as_u64().unwrap());
    // Start from the headers the caller would set; let the signer compute host and the body
    // headers, so that the vector checks them too.
    let expected: BTreeMap<String, String> = case["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let mut headers = HeaderMap::new();
    for (k, v) in &expected {
        if matches!(
            k.as_str(),
            "authorization" | "host" | "content-length" | "x-content-sha256"
        ) {
            continue;
        }
        headers.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let signed = signer
        .sign(
            method,
            &url,
            &mut headers,
            &body,
            mode,
            SystemTime::UNIX_EPOCH, // the vector's date/x-date is used as given
        )
        .unwrap();
    let want_signed: Vec<String> = case["signed_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(signed.signed_headers, want_signed, "{name}: signed headers");
    assert_eq!(
        signed.signing_string,
        s(case, "signing_string"),
        "{name}: signing string"
    );
    assert_eq!(signed.signature, s(case, "signature"), "{name}: signature");
    assert_eq!(
        signed.authorization,
        s(case, "authorization"),
        "{name}: authorization"
    );
    assert_eq!(headers["authorization"], s(case, "authorization"));
    for h in [
        "host",
        "content-length",
        "x-content-sha256",
        "date",
        "x-date",
    ] {
        let got = headers.get(h).map(|v| v.to_str().unwrap().to_string());
        // content-length on DELETE is an unsigned extra of Python's requests: optional.
        if h == "content-length" && !calops::oci::signer::has_body(method) {
            continue;
        }
        assert_eq!(got.as_ref(), expected.get(h), "{name}: header {h}");
    }
}

#[test]
fn signing_vectors_all_cases_byte_for_byte() {
    let v = vectors();
    let key = shared_key(&v);
    let key_id = s(&v["credentials"], "key_id");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 16, "expected the 16 shared cases");
    for case in cases {
        check_case(case, &key, key_id);
    }
    let oracle = &v["oracle_published_vectors"];
    let okey = RsaPrivateKey::from_pkcs1_pem(s(oracle, "private_key_pkcs1_pem")).unwrap();
    let ocases = oracle["cases"].as_array().unwrap();
    assert!(!ocases.is_empty());
    for case in ocases {
        check_case(case, &okey, "unused");
    }
}

#[test]
fn vector_fingerprints() {
    let v = vectors();
    let key = shared_key(&v);
    assert_eq!(
        keys::fingerprint(&key.to_public_key()),
        s(&v["credentials"], "fingerprint")
    );
    let public = RsaPublicKey::from_public_key_pem(s(&v["credentials"], "public_key_pem")).unwrap();
    assert_eq!(public, key.to_public_key());
    let okey =
        RsaPrivateKey::from_pkcs1_pem(s(&v["oracle_published_vectors"], "private_key_pkcs1_pem"))
            .unwrap();
    // The note in the vectors gives the real MD5 of Oracle's published example key.
    assert!(s(&v["oracle_published_vectors"], "note")
        .contains(&keys::fingerprint(&okey.to_public_key())));
}

#[test]
fn vector_key_encodings_all_decode_to_the_same_key() {
    let v = vectors();
    let c = &v["credentials"];
    let want = shared_key(&v);
    let p = Path::new("/vectors/key.pem");
    let pkcs8 = keys::parse_private_key_pem(s(c, "private_key_pkcs8_pem"), None, p).unwrap();
    assert_eq!(pkcs8, want);
    let enc = &c["encrypted_variants"];
    let pass = PassPhrase::new(s(enc, "pass_phrase"));
    let decrypted =
        keys::parse_private_key_pem(s(enc, "private_key_pkcs8_encrypted_pem"), Some(&pass), p)
            .unwrap();
    assert_eq!(decrypted, want);
    // Same signature as the vector with the decrypted key.
    let case = &v["cases"][0];
    check_case(case, &decrypted, s(c, "key_id"));

    let e = keys::parse_private_key_pem(s(enc, "private_key_pkcs8_encrypted_pem"), None, p)
        .unwrap_err();
    assert!(matches!(e, KeyError::PassPhraseRequired { .. }), "{e}");
    let wrong = PassPhrase::new("not-the-pass-phrase");
    let e = keys::parse_private_key_pem(s(enc, "private_key_pkcs8_encrypted_pem"), Some(&wrong), p)
        .unwrap_err();
    assert!(matches!(e, KeyError::Decrypt { .. }), "{e}");
    assert!(!e.to_string().contains("not-the-pass-phrase"));
    let e = keys::parse_private_key_pem(
        s(enc, "private_key_pkcs1_legacy_openssl_encrypted_pem"),
        Some(&pass),
        p,
    )
    .unwrap_err();
    assert!(matches!(e, KeyError::LegacyEncrypted { .. }), "{e}");
    assert!(e.to_string().contains("openssl pkcs8 -topk8"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Profiles on disk: key checks through auth::signer_for
// ---------------------------------------------------------------------------------------

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
        p
    }
    /// A config whose DEFAULT has the shared credentials and whose extra text is appended.
    fn config(&self, v: &Value, key_file: &Path, extra: &str) -> PathBuf {
        let c = &v["credentials"];
        let text = format!(
            "[DEFAULT]\nuser = {}\nfingerprint = {}\ntenancy = {}\nregion = ap-sydney-1\nkey_file = {}\n{extra}",
            s(c, "user"),
            s(c, "fingerprint"),
            s(c, "tenancy"),
            key_file.display()
        );
        self.write("config", &text, 0o600)
    }
}

#[test]
fn profile_to_signer_checks() {
    let v = vectors();
    let c = &v["credentials"];
    let home = Home::new();
    let key = home.write("key.pem", s(c, "private_key_pkcs1_pem"), 0o600);
    let enc = home.write(
        "enc.pem",
        s(&c["encrypted_variants"], "private_key_pkcs8_encrypted_pem"),
        0o600,
    );
    let open = home.write("open.pem", s(c, "private_key_pkcs8_pem"), 0o644);
    let token = home.write("token", "  eyJhbGciOi.test.token\n", 0o600);
    let extra = format!(
        "[ENC]\nkey_file={}\npass_phrase={}\n\
         [OPEN]\nkey_file={}\n\
         [WRONGFP]\nfingerprint=00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff\n\
         [MISSING]\nkey_file={}\n\
         [SESSION]\nsecurity_token_file={}\n",
        enc.display(),
        s(&c["encrypted_variants"], "pass_phrase"),
        open.display(),
        home.path("nope.pem").display(),
        token.display()
    );
    let cfg = home.config(&v, &key, &extra);

    let p = OciConfig::load(Some(&cfg), None).unwrap();
    let signer = auth::signer_for(&p).unwrap();
    assert_eq!(signer.key_id(), s(c, "key_id"));

    let p = OciConfig::load(Some(&cfg), Some("ENC")).unwrap();
    assert_eq!(auth::signer_for(&p).unwrap().key_id(), s(c, "key_id"));
    assert!(!format!("{p:?}").contains(s(&c["encrypted_variants"], "pass_phrase")));

    let p = OciConfig::load(Some(&cfg), Some("SESSION")).unwrap();
    assert_eq!(
        auth::signer_for(&p).unwrap().key_id(),
        "ST$eyJhbGciOi.test.token"
    );

    #[cfg(unix)]
    {
        let p = OciConfig::load(Some(&cfg), Some("OPEN")).unwrap();
        let e = auth::signer_for(&p).unwrap_err();
        assert!(
            matches!(e.key_error(), Some(KeyError::TooOpen { mode: 0o644, .. })),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains("[OPEN]") && msg.contains("chmod 600"), "{msg}");
    }

    let p = OciConfig::load(Some(&cfg), Some("WRONGFP")).unwrap();
    let e = auth::signer_for(&p).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e.key_error(), Some(KeyError::FingerprintMismatch { .. })),
        "{msg}"
    );
    assert!(
        msg.contains("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff")
            && msg.contains(s(c, "fingerprint")),
        "{msg}"
    );

    let p = OciConfig::load(Some(&cfg), Some("MISSING")).unwrap();
    let e = auth::signer_for(&p).unwrap_err();
    assert!(
        matches!(e.key_error(), Some(KeyError::NotFound { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("nope.pem") || format!("{e:?}").contains("nope.pem"));

    let e = OciConfig::load(Some(&cfg), Some("NOSUCH")).unwrap_err();
    assert!(e.to_string().contains("ENC, OPEN, WRONGFP"), "{e}");
}

fn test_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total: Duration::from_secs(20),
    }
}

struct Fixture {
    oci: Arc<Oci>,
    client: OciClient,
    _server: tokio::task::JoinHandle<()>,
}

async fn start() -> Fixture {
    let v = vectors();
    let key = shared_key(&v);
    let (oci, server) = Oci::start(
        key.to_public_key(),
        vec![
            s(&v["credentials"], "key_id").to_string(),
            "ST$eyJhbGciOi.test.token".to_string(),
        ],
    )
    .await;
    let client = client_for(&oci.base, Signer::new(s(&v["credentials"], "key_id"), key));
    Fixture {
        oci,
        client,
        _server: server,
    }
}

fn client_for(base: &Url, signer: Signer) -> OciClient {
    let mut c = OciClient::new(signer, "ap-sydney-1")
        .unwrap()
        .with_retry_policy(test_policy());
    for svc in Service::ALL {
        c = c.with_endpoint(svc, base.clone());
    }
    c
}

impl Fixture {
    fn no_failures(&self) {
        let st = self.oci.store.lock().unwrap();
        assert!(
            st.failures.is_empty(),
            "signature failures: {:?}",
            st.failures
        );
    }
}

#[tokio::test]
async fn object_storage_happy_paths_and_conditions() {
    let f = start().await;
    let os = f.client.object_storage();
    assert_eq!(os.namespace().await.unwrap(), "testns");
    assert_eq!(os.get_bucket("testns", "calops-state").await.unwrap(), None);
    let b = os
        .create_bucket(
            "testns",
            &CreateBucket::private("calops-state", "ocid1.compartment.oc1..c"),
        )
        .await
        .unwrap();
    assert_eq!(b.name, "calops-state");
    assert_eq!(b.versioning.as_deref(), Some("Enabled"));
    let got = os
        .get_bucket("testns", "calops-state")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b);
    let e = os
        .create_bucket(
            "testns",
            &CreateBucket::private("calops-state", "ocid1.compartment.oc1..c"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("BucketAlreadyExists"));
    assert!(e.to_string().contains("HTTP 409"), "{e}");

    // Create-only: the first wins, the second is a conflict.
    let name = "locks/deploy prod é.json";
    let first = os
        .put_object(
            "testns",
            "calops-state",
            name,
            b"holder-a".to_vec(),
            PutCondition::CreateOnly,
            Some("application/json"),
        )
        .await
        .unwrap();
    assert!(first.etag.starts_with("etag-"));
    let e = os
        .put_object(
            "testns",
            "calops-state",
            name,
            b"holder-b".to_vec(),
            PutCondition::CreateOnly,
            None,
        )
        .await
        .unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.code(), Some("IfNoneMatchFailed"));

    // Compare-and-swap: stale ETag loses with 412, the current one wins.
    let e = os
        .put_object(
            "testns",
            "calops-state",
            name,
            b"x".to_vec(),
            PutCondition::IfMatch("etag-999".into()),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(412));
    assert!(e.is_conflict());
    let second = os
        .put_object(
            "testns",
            "calops-state",
            name,
            b"holder-a2".to_vec(),
            PutCondition::IfMatch(first.etag.clone()),
            None,
        )
        .await
        .unwrap();
    assert_ne!(second.etag, first.etag);

    let obj = os
        .get_object("testns", "calops-state", name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&obj.body[..], b"holder-a2");
    assert_eq!(obj.meta.etag, second.etag);
    assert_eq!(
        obj.meta.content_type.as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(
        obj.meta.metadata.get("origin").map(String::as_str),
        Some("test")
    );
    let head = os
        .head_object("testns", "calops-state", name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.content_length, Some(9));
    assert_eq!(head.etag, second.etag);
    assert_eq!(
        os.head_object("testns", "calops-state", "nope")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        os.get_object("testns", "calops-state", "nope")
            .await
            .unwrap(),
        None
    );

    // Delete with a stale ETag fails; with the right one succeeds; again reports absent.
    let e = os
        .delete_object("testns", "calops-state", name, Some(&first.etag))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(412));
    assert!(os
        .delete_object("testns", "calops-state", name, Some(&second.etag))
        .await
        .unwrap());
    assert!(!os
        .delete_object("testns", "calops-state", name, None)
        .await
        .unwrap());
    f.no_failures();
}

#[tokio::test]
async fn create_only_put_survives_a_lost_answer() {
    let f = start().await;
    let os = f.client.object_storage();
    let path = "/n/testns/b/st/o/locks%2Fdeploy";
    // The first attempt is stored but its answer lost (503); the retry then finds the
    // object present (409): the client sees that the object holds its own bytes.
    f.oci.store.lock().unwrap().lose_next_put_answer = true;
    let put = os
        .put_object(
            "testns",
            "st",
            "locks/deploy",
            b"holder-a".to_vec(),
            PutCondition::CreateOnly,
            None,
        )
        .await
        .unwrap();
    assert_eq!(put.etag, "etag-1");
    assert_eq!(f.oci.hits(path), 3, "PUT, retried PUT, HEAD");
    // Retried, but the object holds someone else's bytes: a real conflict stays a conflict.
    f.oci.script(
        path,
        vec![(
            503,
            vec![],
            r#"{"code":"ServiceUnavailable","message":"busy"}"#.into(),
        )],
    );
    let e = os
        .put_object(
            "testns",
            "st",
            "locks/deploy",
            b"holder-c".to_vec(),
            PutCondition::CreateOnly,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(409));
    assert!(e.to_string().contains("after 2 attempts"), "{e}");
    assert_eq!(
        f.oci.hits(path),
        3 + 3,
        "PUT (503), retried PUT (409), HEAD"
    );
    f.no_failures();
}

#[tokio::test]
async fn object_listing_with_prefix_and_paging() {
    let f = start().await;
    let os = f.client.object_storage();
    for n in [
        "releases/001",
        "releases/002",
        "releases/003",
        "releases/004",
        "releases/005",
        "locks/x",
        "state.json",
    ] {
        os.put_object(
            "testns",
            "b1",
            n,
            n.as_bytes().to_vec(),
            PutCondition::Any,
            None,
        )
        .await
        .unwrap();
    }
    // The server pages 2 at a time by default.
    let page = os
        .list_objects(
            "testns",
            "b1",
            &ListObjects {
                prefix: Some("releases/".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.objects.len(), 2);
    assert_eq!(page.next_start_with.as_deref(), Some("releases/003"));
    let all = os
        .list_all_objects("testns", "b1", Some("releases/"))
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "releases/001",
            "releases/002",
            "releases/003",
            "releases/004",
            "releases/005"
        ]
    );
    assert_eq!(all[0].size, Some(12));
    assert_eq!(f.oci.hits("/n/testns/b/b1/o"), 1 + 3);
    let everything = os.list_all_objects("testns", "b1", None).await.unwrap();
    assert_eq!(everything.len(), 7);
    f.no_failures();
}

#[tokio::test]
async fn registry_lb_container_instances_work_requests() {
    let f = start().await;
    let c = &f.client;
    let t = c
        .registry()
        .token(Some("repository:testns/calops:pull,push"))
        .await
        .unwrap();
    assert_eq!(t.token, "registry-token-repository:testns/calops:pull,push");
    assert_eq!(t.expires_in, Some(300));
    assert!(!format!("{t:?}").contains("registry-token"));

    let lb = c.load_balancer();
    let h = lb
        .backend_set_health("ocid1.loadbalancer.oc1.ap-sydney-1.lb1", "calops-bs")
        .await
        .unwrap();
    assert_eq!(h.status, "WARNING");
    assert!(!h.is_ok());
    assert_eq!(h.warning_state_backend_names, ["10.0.0.6:8080"]);
    assert_eq!(h.total_backend_count, 2);
    let bh = lb
        .backend_health(
            "ocid1.loadbalancer.oc1.ap-sydney-1.lb1",
            "calops-bs",
            "10.0.0.5:8080",
        )
        .await
        .unwrap();
    assert_eq!(bh.status, "OK");
    assert_eq!(bh.health_check_results[0].health_check_status, "OK");

    let ci = c.container_instances();
    let one = ci
        .get("ocid1.computecontainerinstance.oc1..ci1")
        .await
        .unwrap()
        .unwrap();
    assert!(one.is_active());
    assert_eq!(one.containers[0].display_name.as_deref(), Some("app"));
    assert_eq!(
        ci.get("ocid1.computecontainerinstance.oc1..gone")
            .await
            .unwrap(),
        None
    );
    let all = ci
        .list("ocid1.compartment.oc1..c", None, None)
        .await
        .unwrap();
    let states: Vec<&str> = all.iter().map(|i| i.lifecycle_state.as_str()).collect();
    assert_eq!(states, ["ACTIVE", "CREATING", "FAILED"]);
    assert_eq!(f.oci.hits("/20210415/containerInstances"), 2);

    let opts = WaitOptions {
        poll_interval: Duration::from_millis(5),
        timeout: Duration::from_secs(10),
    };
    let mut seen = Vec::new();
    let wr = c
        .work_requests(CONTAINER_INSTANCES)
        .wait("wr-ok", &opts, |w| {
            seen.push((w.status.clone(), w.percent_complete))
        })
        .await
        .unwrap();
    assert_eq!(wr.status, "SUCCEEDED");
    assert_eq!(
        seen,
        [
            ("ACCEPTED".to_string(), 0.0),
            ("IN_PROGRESS".into(), 50.0),
            ("SUCCEEDED".into(), 100.0)
        ]
    );
    let e = c
        .work_requests(CONTAINER_INSTANCES)
        .wait("wr-fail", &opts, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, OciError::WorkRequestFailed { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("LimitExceeded: Service limit for CI cores exceeded"),
        "{e}"
    );
    let e = c
        .work_requests(CONTAINER_INSTANCES)
        .wait(
            "wr-slow",
            &WaitOptions {
                poll_interval: Duration::from_millis(50),
                timeout: Duration::from_millis(60),
            },
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OciError::WorkRequestTimeout { .. }), "{e}");
    f.no_failures();
}

#[tokio::test]
async fn retries_429_with_retry_after_and_503() {
    let f = start().await;
    f.oci.script(
        "/n/",
        vec![(
            429,
            vec![("retry-after".into(), "1".into())],
            r#"{"code":"TooManyRequests","message":"slow down"}"#.into(),
        )],
    );
    let t0 = Instant::now();
    assert_eq!(
        f.client.object_storage().namespace().await.unwrap(),
        "testns"
    );
    // Retry-After: 1 was honoured (test backoffs are at most 20ms otherwise).
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(f.oci.hits("/n/"), 2);

    let path = "/n/testns/b/calops-state";
    f.oci.script(
        path,
        vec![
            (
                503,
                vec![],
                r#"{"code":"ServiceUnavailable","message":"busy"}"#.into(),
            ),
            (500, vec![], "oops".into()),
        ],
    );
    assert_eq!(
        f.client
            .object_storage()
            .get_bucket("testns", "calops-state")
            .await
            .unwrap(),
        None
    );
    assert_eq!(f.oci.hits(path), 3);

    // Exhausted: 4 attempts, then the last error with its details.
    f.oci.script(
        path,
        vec![
            (
                503,
                vec![("opc-request-id".into(), "r503".into())],
                r#"{"code":"ServiceUnavailable","message":"busy"}"#.into()
            );
            6
        ],
    );
    let e = f
        .client
        .object_storage()
        .get_bucket("testns", "calops-state")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.status(), Some(503));
    assert!(
        msg.contains("ServiceUnavailable: busy")
            && msg.contains("opc-request-id: r503")
            && msg.contains("after 4 attempts"),
        "{msg}"
    );
    assert_eq!(f.oci.hits(path), 3 + 4);
    f.no_failures();
}

#[tokio::test]
async fn post_retried_only_with_retry_token() {
    let f = start().await;
    let path = "/n/testns/b/";
    f.oci.script(
        path,
        vec![(
            503,
            vec![],
            r#"{"code":"ServiceUnavailable","message":"busy"}"#.into(),
        )],
    );
    let e = f
        .client
        .object_storage()
        .create_bucket(
            "testns",
            &CreateBucket::private("b2", "ocid1.compartment.oc1..c"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(
        f.oci.hits(path),
        1,
        "a POST without opc-retry-token must not be retried"
    );

    let things = "/20160918/things";
    f.oci.script(things, vec![(503, vec![], "{}".into())]);
    let url = f.client.url(Service::Core, things).unwrap();
    let req = OciRequest::new(reqwest::Method::POST, url)
        .json(&json!({"a": 1}))
        .unwrap()
        .header("opc-retry-token", "calops-token-1")
        .unwrap();
    let resp = f.client.send(req).await.unwrap();
    assert_eq!(resp.attempts, 2);
    assert_eq!(f.oci.hits(things), 2);
    f.no_failures();
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
    drop(listener);
    let v = vectors();
    let client = client_for(&base, Signer::new("k", shared_key(&v)));
    let e = client.object_storage().namespace().await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, OciError::Transport { attempts: 4, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("GET http://127.0.0.1") && msg.contains("after 4 attempt"),
        "{msg}"
    );
}

#[tokio::test]
async fn unauthorized_explains_causes_and_clock_offset() {
    let f = start().await;
    f.oci.store.lock().unwrap().skew_401 = 600;
    let v = vectors();
    // Right keyId, wrong key: the signature does not verify.
    let wrong =
        RsaPrivateKey::from_pkcs1_pem(s(&v["oracle_published_vectors"], "private_key_pkcs1_pem"))
            .unwrap();
    let client = client_for(
        &f.oci.base,
        Signer::new(s(&v["credentials"], "key_id"), wrong),
    );
    let e = client.object_storage().namespace().await.unwrap_err();
    let OciError::Api(api) = &e else {
        panic!("{e}")
    };
    assert_eq!(api.status, 401);
    assert_eq!(api.code.as_deref(), Some("NotAuthenticated"));
    assert_eq!(api.opc_request_id.as_deref(), Some("srv-401"));
    let off = api.clock_offset_secs.unwrap();
    assert!((598..=602).contains(&off), "offset {off}");
    let msg = e.to_string();
    assert!(
        msg.contains("fingerprint")
            && msg.contains("key_file")
            && msg.contains("behind the server's Date"),
        "{msg}"
    );
    assert_eq!(f.oci.hits("/n/"), 1, "401 is not retried");
}

#[tokio::test]
async fn malformed_json_is_a_clear_error() {
    let f = start().await;
    let e = f
        .client
        .container_instances()
        .get("ocid1.computecontainerinstance.oc1..malformed")
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, OciError::Decode { status: 200, .. }), "{msg}");
    assert!(
        msg.contains("bad-json-req")
            && msg.contains("not the expected JSON")
            && msg.contains("lifecycleState"),
        "{msg}"
    );
    f.no_failures();
}

/// A container instance's resource principal: keyId `ST$<token>` with the key from its
/// variables; a token the service refuses is read again from its file once, and the call
/// retried; a token that stays refused ends the call with the 401; Vault answers by OCID.
#[tokio::test]
async fn resource_principal_signs_refreshes_once_and_reads_vault() {
    use calops::oci::principal::{self, ResourcePrincipal};
    let f = start().await;
    let home = Home::new();
    let key = home.write(
        "rp.pem",
        s(&vectors()["credentials"], "private_key_pkcs8_pem"),
        0o600,
    );
    let (stale, fresh) = (
        session_token(unix_in(3600), "stale"),
        session_token(unix_in(3600), "fresh"),
    );
    let rpst = home.write("rpst", &stale, 0o600);
    {
        let mut t = f.oci.tokens.lock().unwrap();
        t.valid.insert(fresh.clone());
        t.expired.insert(stale.clone());
        // OCI renews the token in place; the container only sees it when it reads the file.
        let (rpst, fresh) = (rpst.clone(), fresh.clone());
        t.on_expired = Some(Box::new(move |_| std::fs::write(&rpst, &fresh).unwrap()));
    }
    f.oci
        .store
        .lock()
        .unwrap()
        .secrets
        .insert("ocid1.vaultsecret.oc1..db".into(), "s3cret-db-pw".into());
    let env = |n: &str| match n {
        principal::VERSION_VAR => Some("2.2".to_string()),
        principal::RPST_VAR => Some(rpst.display().to_string()),
        principal::PRIVATE_PEM_VAR => Some(key.display().to_string()),
        principal::REGION_VAR => Some("ap-sydney-1".to_string()),
        _ => None,
    };
    let rp = Arc::new(ResourcePrincipal::from_env(&env).unwrap());
    let mut client = OciClient::with_resource_principal(rp.clone())
        .unwrap()
        .with_retry_policy(test_policy());
    for svc in Service::ALL {
        client = client.with_endpoint(svc, f.oci.base.clone());
    }
    assert_eq!(client.region(), "ap-sydney-1");
    let v = client
        .vault()
        .secret_bundle("ocid1.vaultsecret.oc1..db")
        .await
        .unwrap();
    assert_eq!(v.expose(), "s3cret-db-pw");
    let path = "/20190301/secretbundles/ocid1.vaultsecret.oc1..db";
    assert_eq!(f.oci.hits(path), 2, "refused once, then accepted");
    assert_eq!(
        std::mem::take(&mut f.oci.store.lock().unwrap().failures),
        [EXPIRED_TOKEN]
    );
    // Object uploads sign without the body hash, as the SDKs do (the stand-in checks it).
    client
        .object_storage()
        .put_object(
            "testns",
            "calops",
            "ics/1/a.ics",
            b"BEGIN:VCALENDAR".to_vec(),
            PutCondition::Any,
            Some("text/calendar"),
        )
        .await
        .unwrap();
    // A missing (or forbidden) secret is a 404.
    let e = client
        .vault()
        .secret_bundle("ocid1.vaultsecret.oc1..nope")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    f.no_failures();
    // A token that stays refused: one refresh, then the 401 is the answer.
    {
        let mut t = f.oci.tokens.lock().unwrap();
        t.valid.clear();
        t.expired.insert(fresh.clone());
        t.on_expired = None;
    }
    let e = client
        .vault()
        .secret_bundle("ocid1.vaultsecret.oc1..db")
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(f.oci.hits(path), 4);
    assert!(!e.to_string().contains(&fresh), "{e}");
}

#[tokio::test]
async fn profile_client_and_session_token_against_server() {
    let f = start().await;
    let v = vectors();
    let c = &v["credentials"];
    let home = Home::new();
    let key = home.write("key.pem", s(c, "private_key_pkcs8_pem"), 0o600);
    let token = home.write("token", "eyJhbGciOi.test.token\n", 0o600);
    let cfg = home.config(
        &v,
        &key,
        &format!("[SESSION]\nsecurity_token_file={}\n", token.display()),
    );
    for profile in ["DEFAULT", "SESSION"] {
        let p = OciConfig::load(Some(&cfg), Some(profile)).unwrap();
        let mut client = OciClient::from_profile(&p)
            .unwrap()
            .with_retry_policy(test_policy());
        for svc in Service::ALL {
            client = client.with_endpoint(svc, f.oci.base.clone());
        }
        assert_eq!(
            client.object_storage().namespace().await.unwrap(),
            "testns",
            "{profile}"
        );
    }
    f.no_failures();
}

// ---------------------------------------------------------------------------------------
// calops oci raw-request
// ---------------------------------------------------------------------------------------

fn calops() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("calops").unwrap();
    c.env_remove("OCI_CLI_CONFIG_FILE")
        .env_remove("OCI_CLI_PROFILE");
    c
}

#[test]
fn raw_request_dry_run_signs_like_the_sdk() {
    let v = vectors();
    let home = Home::new();
    let key = home.write(
        "key.pem",
        s(&v["credentials"], "private_key_pkcs1_pem"),
        0o600,
    );
    let cfg = home.config(&v, &key, "");
    // The vectors' object upload: signed without body headers, with the given date.
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "put_object_binary_exclude_body")
        .unwrap();
    let body = base64::engine::general_purpose::STANDARD
        .decode(s(case, "body_base64"))
        .unwrap();
    let body_file = home.write("blob.bin", "", 0o600);
    std::fs::write(&body_file, &body).unwrap();
    let headers = json!({
        "date": case["headers"]["date"],
        "content-type": case["headers"]["content-type"],
        "opc-meta-release": case["headers"]["opc-meta-release"],
    });
    let out = calops()
        .args([
            "oci",
            "raw-request",
            "--dry-run",
            "--http-method",
            "PUT",
            "--target-uri",
            s(case, "url"),
        ])
        .arg("--request-body")
        .arg(format!("@{}", body_file.display()))
        .args(["--request-headers", &headers.to_string()])
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["method"], "PUT");
    assert_eq!(doc["url"], s(case, "url"));
    assert_eq!(doc["headers"]["authorization"], s(case, "authorization"));
    assert_eq!(doc["headers"]["content-length"], "300");
    assert!(doc["headers"].get("x-content-sha256").is_none());
    assert_eq!(doc["body_base64"], s(case, "body_base64"));

    // A JSON POST with x-date from the vectors, body given inline.
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "post_x_date_json")
        .unwrap();
    let body = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(s(case, "body_base64"))
            .unwrap(),
    )
    .unwrap();
    let out = calops()
        .args([
            "--json",
            "oci",
            "raw-request",
            "--dry-run",
            "--http-method",
            "post",
            "--target-uri",
            s(case, "url"),
        ])
        .args(["--request-body", &body])
        .args([
            "--request-headers",
            &json!({"x-date": case["headers"]["x-date"]}).to_string(),
        ])
        .env("OCI_CLI_CONFIG_FILE", &cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["headers"]["authorization"], s(case, "authorization"));
    assert_eq!(doc["signing_string"], s(case, "signing_string"));
    assert!(doc["headers"].get("date").is_none());
    assert_eq!(doc["body"], body);

    // Bad input: a clear error, exit 1.
    let out = calops()
        .args([
            "oci",
            "raw-request",
            "--http-method",
            "GET",
            "--target-uri",
            "https://h/",
            "--request-headers",
            "{nope",
        ])
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--request-headers is not JSON"));
    let out = calops()
        .args([
            "oci",
            "raw-request",
            "--http-method",
            "GET",
            "--target-uri",
            "https://h/",
            "--oci-profile",
            "PROD",
        ])
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("profile [PROD] not found"));
}

#[test]
fn raw_request_sends_and_prints() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let f = rt.block_on(start());
    let v = vectors();
    let home = Home::new();
    let key = home.write(
        "key.pem",
        s(&v["credentials"], "private_key_pkcs1_pem"),
        0o600,
    );
    let cfg = home.config(&v, &key, "");
    let out = calops()
        .args([
            "--json",
            "oci",
            "raw-request",
            "--http-method",
            "GET",
            "--target-uri",
        ])
        .arg(format!("{}n/", f.oci.base))
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], 200);
    assert_eq!(doc["body"], "testns");
    assert_eq!(doc["headers"]["opc-request-id"], "srv-req-id");

    // An object upload through raw-request is signed without body headers and accepted.
    let out = calops()
        .args(["oci", "raw-request", "--http-method", "PUT", "--target-uri"])
        .arg(format!("{}n/testns/b/b9/o/raw%2Fobj", f.oci.base))
        .args(["--request-body", "hello"])
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("HTTP 200 OK\n") && text.contains("etag: etag-1"),
        "{text}"
    );
    let obj = rt
        .block_on(
            f.client
                .object_storage()
                .get_object("testns", "b9", "raw/obj"),
        )
        .unwrap()
        .unwrap();
    assert_eq!(&obj.body[..], b"hello");

    // A 404 prints the answer and exits 1.
    let out = calops()
        .args([
            "--json",
            "oci",
            "raw-request",
            "--http-method",
            "GET",
            "--target-uri",
        ])
        .arg(format!("{}n/testns/b/missing", f.oci.base))
        .arg("--oci-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["status"], 404);
    assert_eq!(doc["body"]["code"], "BucketNotFound");
    f.no_failures();
}

/// The deploy lock and release ledger of the OCI target, on the stand-in Object Storage:
/// concurrent deploys from two runners (exactly one wins), renewal by If-Match, takeover of an
/// expired lease, and a ledger whose numbers are never reused.
#[tokio::test]
async fn deploy_lock_and_ledger_on_object_storage() {
    use calops::deploy::ledger::{Kind, Ledger, Outcome, Release};
    use calops::deploy::lock::{DeployLock, LockError};
    use calops::deploy::ocistore::OciStore;
    use jiff::{SignedDuration, Timestamp};

    let f = start().await;
    f.client
        .object_storage()
        .create_bucket(
            "testns",
            &CreateBucket::private("calops-tfstate", "ocid1.compartment.oc1..c"),
        )
        .await
        .unwrap();
    let client = Arc::new(f.client.clone());
    let store = OciStore::new(client, "testns", "calops-tfstate");
    let lease = Duration::from_secs(60);
    let now = Timestamp::now();

    // Eight runners race for the lock: exactly one wins, the rest are told who holds it.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let l = DeployLock::new(store.clone(), "prod-au/lock.json", lease);
        tasks.push(tokio::spawn(async move {
            l.acquire(&format!("runner {i}"), now).await
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(h) => winners.push(h),
            Err(LockError::Held(info)) => assert!(info.message.starts_with("runner ")),
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one runner holds the lock");
    let mut held = winners.pop().unwrap();

    let lock = DeployLock::new(store.clone(), "prod-au/lock.json", lease);
    lock.renew(&mut held, now + SignedDuration::from_secs(30))
        .await
        .unwrap();
    // Before the renewed lease ends, nobody can take it; after, a takeover is reported.
    assert!(matches!(
        lock.acquire("late", now + SignedDuration::from_secs(80))
            .await,
        Err(LockError::Held(_))
    ));
    let taken = lock
        .acquire("after expiry", now + SignedDuration::from_secs(91))
        .await
        .unwrap();
    assert_eq!(taken.took_over.as_ref().unwrap().message, held.info.message);
    assert!(matches!(
        lock.renew(&mut held, now + SignedDuration::from_secs(92))
            .await,
        Err(LockError::Lost(_))
    ));
    lock.release(&taken).await.unwrap();
    assert!(lock.status().await.unwrap().is_none());

    let ledger = Ledger::new(store.clone(), "prod-au/");
    let rel = |d: &str| Release {
        seq: 0,
        id: "x".into(),
        kind: Kind::Deploy,
        time: now,
        user: "ci@runner".into(),
        artifact_digest: d.into(),
        profile_hash: "p".into(),
        inputs_hash: "i".into(),
        outcome: Outcome::InProgress,
        restores: None,
        failure: None,
        steps: vec![],
        details: Default::default(),
    };
    let mut a = ledger.begin(rel("sha256:a")).await.unwrap();
    a.outcome = Outcome::Succeeded;
    ledger.save(&a).await.unwrap();
    let b = ledger.begin(rel("sha256:b")).await.unwrap();
    assert_eq!((a.seq, b.seq), (1, 2));
    assert_eq!(
        ledger.current().await.unwrap().unwrap().artifact_digest,
        "sha256:a"
    );
    f.no_failures();
}

// ---------------------------------------------------------------------------------------
// One identity: Terraform's OCI provider acts as the profile calops signs with
// ---------------------------------------------------------------------------------------

/// A non-default config file and profile (with an encrypted key), and a decoy
/// `<home>/.oci/config` where the provider would otherwise look, naming somebody else.
struct Identities {
    home: Home,
    config: PathBuf,
    provider_home: PathBuf,
}

fn identities(v: &Value) -> Identities {
    let c = &v["credentials"];
    let home = Home::new();
    let enc = home.write(
        "admin.pem",
        s(&c["encrypted_variants"], "private_key_pkcs8_encrypted_pem"),
        0o600,
    );
    let config = home.write(
        "custom-config",
        &format!(
            "[ADMIN]\nuser = {}\nfingerprint = {}\ntenancy = {}\nregion = us-ashburn-1\nkey_file = {}\npass_phrase = {}\n",
            s(c, "user"),
            s(c, "fingerprint"),
            s(c, "tenancy"),
            enc.display(),
            s(&c["encrypted_variants"], "pass_phrase"),
        ),
        0o600,
    );
    let provider_home = home.path("provider-home");
    std::fs::create_dir_all(provider_home.join(".oci")).unwrap();
    std::fs::write(
        provider_home.join(".oci/config"),
        "[DEFAULT]\nuser = ocid1.user.oc1..somebodyelse\nfingerprint = 00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff\ntenancy = ocid1.tenancy.oc1..othertenancy\nregion = eu-frankfurt-1\nkey_file = /nonexistent/other.pem\n",
    )
    .unwrap();
    Identities {
        home,
        config,
        provider_home,
    }
}

/// The dev profile, signing with the `ADMIN` profile of `config`.
fn dev_profile_with(config: &Path) -> calops::profile::Profile {
    let dirs = [PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles")];
    let mut p = calops::profile::load_with("dev", &dirs, vec![])
        .unwrap()
        .profile;
    let oci = p.oci.as_mut().unwrap();
    oci.config_file = Some(config.to_path_buf());
    oci.config_profile = "ADMIN".into();
    p
}

/// The real `terraform` runs with calops' provider environment (a local-exec provisioner
/// records what its children, the providers, inherit): tenancy, user, fingerprint and key are
/// exactly what calops signs with, the key's pass phrase is given but never logged, and the
/// provider's own rules resolve that environment to calops' identity, not to the decoy file.
#[test]
fn terraform_runs_as_the_identity_calops_signs_with() {
    if calops_testkit::require_tool(
        "terraform_runs_as_the_identity_calops_signs_with",
        "terraform",
    )
    .is_none()
    {
        return;
    }
    use calops::oci::tfprovider;
    let v = vectors();
    let pass = s(&v["credentials"]["encrypted_variants"], "pass_phrase").to_string();
    let ids = identities(&v);
    let profile = dev_profile_with(&ids.config);
    let signing = calops::deploy::oci::account::signing_profile(&profile).unwrap();
    // calops signs every call with [ADMIN] of the custom file, in the profile's region.
    assert_eq!(signing.region, "eu-frankfurt-1");
    let signer = auth::signer_for(&signing).unwrap();
    let decoy = ids.provider_home.join(".oci/config");
    let env = tfprovider::provider_env(&signing, Some(&decoy)).unwrap();

    let dir = ids.home.path("tf");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/identity/main.tf"),
        dir.join("main.tf"),
    )
    .unwrap();
    let out = ids.home.path("provider-env");
    std::fs::write(
        dir.join("terraform.tfvars.json"),
        json!({"out": out}).to_string(),
    )
    .unwrap();
    let log = ids.home.path("terraform.log");
    let mut snapshot = calops::deploy::oci::account::snapshot_with(&env);
    snapshot.cache_dir = Some(ids.home.path("cache"));
    snapshot.cli_config_file = Some("/dev/null".into());
    let opts = calops::terraform::PlanOptions {
        log: Some(log.clone()),
        env: Some(snapshot),
        ..Default::default()
    };
    calops::terraform::apply_if_changed(&dir, &opts, |_| {}).unwrap();

    let seen: BTreeMap<String, String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let key_id = format!(
        "{}/{}/{}",
        seen["OCI_TENANCY_OCID"], seen["OCI_USER_OCID"], seen["OCI_FINGERPRINT"]
    );
    assert_eq!(
        key_id,
        signer.key_id(),
        "the same user, tenancy and fingerprint"
    );
    for attr in [
        "tenancy_ocid",
        "user_ocid",
        "fingerprint",
        "private_key_path",
    ] {
        let [tf_var, oci] = tfprovider::env_names(attr);
        assert_eq!(seen[&tf_var], seen[&oci], "{attr}: both spellings agree");
    }
    // The same key: the path and pass phrase Terraform got open the key calops signs with.
    assert_eq!(
        Path::new(&seen["OCI_PRIVATE_KEY_PATH"]),
        signing.key_file.as_path()
    );
    let key = keys::load_private_key(
        Path::new(&seen["OCI_PRIVATE_KEY_PATH"]),
        Some(&PassPhrase::new(seen["OCI_PRIVATE_KEY_PASSWORD"].clone())),
    )
    .unwrap();
    assert_eq!(
        keys::fingerprint(&key.to_public_key()),
        seen["OCI_FINGERPRINT"]
    );
    assert!(!seen.contains_key("OCI_PRIVATE_KEY") && !seen.contains_key("TF_VAR_private_key"));
    // The provider's rules on that environment give calops' identity, not the decoy's...
    let lookup = |k: &str| seen.get(k).cloned();
    let tf = tfprovider::resolve(&lookup, Some(&decoy), &signing.region).unwrap();
    assert_eq!(
        tfprovider::differences(&signing, &signing.region, &tf),
        Vec::<String>::new()
    );
    // ... which it would have used without them.
    let bare = tfprovider::resolve(&|_| None, Some(&decoy), &signing.region).unwrap();
    assert!(!tfprovider::differences(&signing, &signing.region, &bare).is_empty());
    // The pass phrase reached Terraform, never its log.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("apply"), "{logged}");
    assert!(
        !logged.contains(&pass),
        "the pass phrase is in the Terraform log"
    );
}

/// `calops doctor` shows the one identity both use, and fails clearly when a variable in the
/// shell would make Terraform act as another.
#[test]
fn doctor_shows_the_terraform_identity_and_refuses_a_conflict() {
    let v = vectors();
    let ids = identities(&v);
    let profiles = ids.home.path("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles");
    std::fs::copy(repo.join("base.toml"), profiles.join("base.toml")).unwrap();
    let dev = std::fs::read_to_string(repo.join("dev.toml"))
        .unwrap()
        .replace(
            "config_profile = \"DEFAULT\"",
            &format!(
                "config_profile = \"ADMIN\"\nconfig_file = \"{}\"",
                ids.config.display()
            ),
        );
    std::fs::write(profiles.join("dev.toml"), dev).unwrap();
    let doctor = |extra: &[(&str, &str)]| -> Value {
        let mut c = calops();
        c.args(["doctor", "--profile", "dev", "--json"])
            .current_dir(ids.home.path(""))
            .env("CALOPS_PROFILE_DIR", &profiles)
            .env("TF_HOME_OVERRIDE", &ids.provider_home)
            .env_remove("OCI_CLI_CONFIG_FILE")
            .env_remove("OCI_CLI_PROFILE");
        for (k, _) in std::env::vars() {
            if k.starts_with("TF_VAR_") || (k.starts_with("OCI_") && k != "OCI_CLI_CONFIG_FILE") {
                c.env_remove(k);
            }
        }
        for (k, val) in extra {
            c.env(k, val);
        }
        let out = c.output().unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["ok"].as_bool(), Some(out.status.success()));
        doc
    };
    let check = |doc: &Value, name: &str| -> Value {
        doc["report"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {doc}"))
            .clone()
    };
    let c = &v["credentials"];
    let doc = doctor(&[]);
    let id = check(&doc, "terraform-identity");
    assert_eq!(id["status"], "ok", "{id}");
    assert_eq!(id["found"], s(c, "key_id"));
    let detail = id["detail"].as_str().unwrap();
    assert!(
        detail.contains(s(c, "key_id"))
            && detail.contains("[ADMIN]")
            && detail.contains("OCI_TENANCY_OCID")
            && detail.contains("region eu-frankfurt-1")
            && detail.contains(&ids.provider_home.join(".oci/config").display().to_string()),
        "{detail}"
    );
    assert!(!doc
        .to_string()
        .contains(s(&c["encrypted_variants"], "pass_phrase")));
    // dev has no certificate and no alarm e-mail: both are said.
    let https = check(&doc, "https");
    assert_eq!(https["status"], "warn");
    assert!(https["detail"].as_str().unwrap().contains("PLAIN HTTP"));
    assert_eq!(check(&doc, "alarm-email")["status"], "warn");

    // A key given as content in the shell would win over calops' key path.
    let doc = doctor(&[("TF_VAR_private_key", "-----BEGIN RSA PRIVATE KEY-----")]);
    let id = check(&doc, "terraform-identity");
    assert_eq!(id["status"], "fail", "{id}");
    assert_eq!(doc["ok"], false);
    assert!(
        id["detail"]
            .as_str()
            .unwrap()
            .contains("TF_VAR_private_key")
            && id["fix"]
                .as_str()
                .unwrap()
                .contains("unset TF_VAR_private_key"),
        "{id}"
    );
}
