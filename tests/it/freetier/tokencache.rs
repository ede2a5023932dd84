//! `archive_command` on the VM (`calops backup archive-wal`, one process per WAL segment, as
//! PostgreSQL runs it) signs as the instance principal with a token it keeps between runs: the
//! real binary against the signature-checking Object Storage stand-in and the auth stand-in,
//! which counts federation calls.

use crate::support::imds;
use crate::support::oci::Oci;
use crate::support::ocistand;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const BUCKET: &str = "calops-tokentest";

struct Rig {
    oci: Arc<Oci>,
    _server: tokio::task::JoinHandle<()>,
    imds: Arc<Mutex<imds::State>>,
    endpoints: calops::oci::instance::Endpoints,
    dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let key = ocistand::key();
        let (oci, server) = Oci::start(key.to_public_key(), vec![ocistand::key_id(&key)]).await;
        {
            let mut st = oci.store.lock().unwrap();
            st.strict_buckets = true;
            st.buckets.insert(
                BUCKET.into(),
                json!({"name": BUCKET, "namespace": "testns"}),
            );
        }
        let (state, endpoints) = imds::serve_for(&oci).await;
        let dir = tempfile::tempdir().unwrap();
        let cfg = calops::backup::config::BackupConfig {
            version: calops::backup::config::VERSION,
            profile: "vmtest".into(),
            store: format!("oci://testns/{BUCKET}/backups?auth=instance_principal"),
            compression_level: 3,
            part_size: 1 << 20,
            schedule: "03:00".into(),
            retention_days: 7,
            retention_count: 2,
            archive_timeout_seconds: 60,
        };
        std::fs::create_dir(dir.path().join("backup")).unwrap();
        cfg.write(&dir.path().join("backup/backup.json")).unwrap();
        Rig {
            oci,
            _server: server,
            imds: state,
            endpoints,
            dir,
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("backup/token/instance-principal.json")
    }

    fn cached_token(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.cache()).unwrap()).unwrap();
        v["token"].as_str().unwrap().to_string()
    }

    fn federations(&self) -> u32 {
        self.imds.lock().unwrap().federations
    }

    /// `calops backup archive-wal` on segment `n`, as PostgreSQL runs it on the VM.
    async fn archive(&self, n: u32) {
        let name = format!("{:08X}{:08X}{:08X}", 1, 0, n);
        let path = self.dir.path().join(&name);
        std::fs::write(&path, format!("segment {n}\n").repeat(100)).unwrap();
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_calops"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CALOPS_") || k.starts_with("OCI_") {
                c.env_remove(k);
            }
        }
        let out = c
            .current_dir(self.dir.path())
            .args(["backup", "archive-wal", "--config"])
            .arg(self.dir.path().join("backup/backup.json"))
            .arg(&path)
            .arg(&name)
            .env("OCI_METADATA_BASE_URL", self.endpoints.metadata.as_str())
            .env(
                "OCI_SDK_AUTH_CLIENT_REGION_URL",
                self.endpoints.auth.as_ref().unwrap().as_str(),
            )
            .env("CALOPS_ENDPOINT_OBJECTSTORAGE", self.oci.base.as_str())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "archive-wal {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stored = self
            .oci
            .store
            .lock()
            .unwrap()
            .objects
            .keys()
            .any(|(b, k)| b == BUCKET && k.contains(&format!("/{name}.")));
        assert!(stored, "{name} is not in the bucket");
    }

    fn refusals(&self) -> usize {
        self.oci.store.lock().unwrap().failures.len()
    }

    /// The stand-in refuses the token in the cache from now on (401, as an expired one).
    fn expire_cached(&self) {
        let t = self.cached_token();
        self.oci.tokens.lock().unwrap().expired.insert(t);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_commands_share_one_cached_token_and_renew_it() {
    let rig = Rig::new().await;
    // A burst of segments: one sign-in.
    for n in 1..=5 {
        rig.archive(n).await;
    }
    assert_eq!(
        rig.federations(),
        1,
        "one federation call for five segments"
    );
    assert_eq!(rig.refusals(), 0);
    assert_eq!(
        (mode(&rig.cache()), mode(rig.cache().parent().unwrap())),
        (0o600, 0o700),
        "only the server's OS user may read the cached token"
    );

    // The service refuses the cached token (expired, revoked): renewed once, the segment
    // stored, and the new token kept for the next ones.
    let old = rig.cached_token();
    rig.expire_cached();
    rig.archive(6).await;
    assert_eq!(rig.federations(), 2);
    assert_eq!(rig.refusals(), 1, "one 401, then the renewed token");
    assert_ne!(rig.cached_token(), old, "the renewed token is cached");
    rig.archive(7).await;
    assert_eq!(rig.federations(), 2, "the renewed token is reused");

    // Tokens that expire within five minutes are renewed before use, not after a 401: the
    // next token lasts 5 min 10 s, so it is cached fresh and is inside the window 10 s later.
    rig.imds.lock().unwrap().lifetime = 310;
    rig.expire_cached();
    rig.archive(8).await;
    assert_eq!((rig.federations(), rig.refusals()), (3, 2));
    rig.archive(9).await;
    assert_eq!((rig.federations(), rig.refusals()), (3, 2), "still fresh");
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    rig.archive(10).await;
    assert_eq!(
        (rig.federations(), rig.refusals()),
        (4, 2),
        "a cached token within five minutes of its expiry is renewed before it is used"
    );
}
