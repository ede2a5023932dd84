//! The managed database's backups through the real `calops` binary against a stand-in OCI
//! PostgreSQL API on 127.0.0.1 that checks every request's signature: `backup list` shows
//! OCI's backups, `backup now` asks for a manual one, `restore` creates a new DB system from a
//! backup and never touches the running one. Also the archiver's Object Storage store against
//! a stand-in that is down for a while.

use crate::support::ocistand::{
    decode, incoming, json_reply, json_reply_with, key, key_id, oci_error, serve, write_config,
    Signatures,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

const COMPARTMENT: &str =
    "ocid1.compartment.oc1..aaaaaaaadevcompartmentexample0000000000000000000000000000";
const LIVE: &str = "ocid1.postgresqldbsystem.oc1.eu-frankfurt-1.live";
const SUBNET: &str = "ocid1.subnet.oc1.eu-frankfurt-1.private";

#[derive(Default)]
struct Seen {
    requests: Vec<(String, String)>,
    bad_signatures: Vec<String>,
    created: Vec<Value>,
    /// Object Storage: objects, and how many more requests fail with 503.
    objects: BTreeMap<String, Vec<u8>>,
    down_for: u32,
}

struct Stand {
    signatures: Signatures,
    seen: Mutex<Seen>,
}

fn system(id: &str, name: &str, tags: Value) -> Value {
    json!({"id": id, "displayName": name, "compartmentId": COMPARTMENT, "lifecycleState": "ACTIVE",
        "systemType": "OCI_OPTIMIZED_STORAGE", "dbVersion": "16", "shape": "PostgreSQL.VM.Standard.E5.Flex",
        "instanceOcpuCount": 2, "instanceMemorySizeInGBs": 32, "instanceCount": 1, "adminUsername": "calops",
        "storageDetails": {"systemType": "OCI_OPTIMIZED_STORAGE", "isRegionallyDurable": true, "iops": 75000},
        "networkDetails": {"subnetId": SUBNET, "nsgIds": ["ocid1.nsg.oc1..db"], "primaryDbEndpointPrivateIp": "10.0.1.5"},
        "managementPolicy": {}, "timeCreated": "2025-01-01T00:00:00.000Z", "freeformTags": tags, "definedTags": {}})
}

fn backup(n: u32, day: u32, state: &str) -> Value {
    json!({"id": format!("ocid1.postgresqlbackup.oc1..b{n}"), "displayName": format!("daily-{n}"),
        "compartmentId": COMPARTMENT, "timeCreated": format!("2025-03-{day:02}T02:00:00.000Z"),
        "lifecycleState": state, "sourceType": "SCHEDULED", "backupSize": 3, "dbSystemId": LIVE,
        "retentionPeriod": 7, "freeformTags": {}, "definedTags": {}})
}

async fn handle(
    axum::extract::State(stand): axum::extract::State<Arc<Stand>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (method, path, pq, q, headers, body) = incoming(req).await;
    if let Err(why) = stand.signatures.verify(&method, &pq, &headers, &body) {
        stand
            .seen
            .lock()
            .unwrap()
            .bad_signatures
            .push(format!("{method} {pq}: {why}"));
        return oci_error(401, "NotAuthenticated", &why);
    }
    let mut seen = stand.seen.lock().unwrap();
    seen.requests.push((method.clone(), path.clone()));
    if path.starts_with("/n/") {
        if seen.down_for > 0 {
            seen.down_for -= 1;
            return oci_error(503, "ServiceUnavailable", "down");
        }
        let segs: Vec<String> = path
            .trim_start_matches('/')
            .split('/')
            .map(decode)
            .collect();
        return match (
            method.as_str(),
            segs.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            ("GET", ["n", "ns", "b", "wal", "o"]) => {
                let prefix = q.get("prefix").cloned().unwrap_or_default();
                let objects: Vec<Value> = seen
                    .objects
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| json!({"name": k, "size": v.len()}))
                    .collect();
                json_reply(200, json!({"objects": objects}))
            }
            ("PUT", ["n", "ns", "b", "wal", "o", name]) => {
                if headers.get("if-none-match").is_some() && seen.objects.contains_key(*name) {
                    return oci_error(412, "IfNoneMatchFailed", "exists");
                }
                seen.objects.insert(name.to_string(), body.to_vec());
                json_reply_with(200, json!({}), &[("etag", "e1".into())])
            }
            ("GET", ["n", "ns", "b", "wal", "o", name]) => match seen.objects.get(*name) {
                Some(b) => axum::response::Response::builder()
                    .status(200)
                    .header("etag", "e1")
                    .body(axum::body::Body::from(b.clone()))
                    .unwrap(),
                None => oci_error(404, "ObjectNotFound", "no"),
            },
            _ => oci_error(404, "NotFound", &path),
        };
    }
    match (method.as_str(), path.as_str()) {
        ("GET", "/20220915/dbSystems") => {
            assert_eq!(q["compartmentId"], COMPARTMENT);
            json_reply(
                200,
                json!({"items": [
                    system(LIVE, "calops-db", json!({"calops-profile": "dev"})),
                    system("ocid1.postgresqldbsystem.oc1..other", "other", json!({"calops-profile": "prod-au"})),
                ]}),
            )
        }
        ("GET", p) if p == format!("/20220915/dbSystems/{LIVE}") => json_reply(
            200,
            system(LIVE, "calops-db", json!({"calops-profile": "dev"})),
        ),
        ("GET", "/20220915/backups") => {
            assert_eq!(
                (q["compartmentId"].as_str(), q["id"].as_str()),
                (COMPARTMENT, LIVE),
                "backups of the live DB system"
            );
            json_reply(
                200,
                json!({"items": [backup(3, 5, "CREATING"), backup(2, 3, "ACTIVE"), backup(1, 1, "ACTIVE")]}),
            )
        }
        ("POST", "/20220915/backups") => {
            let d: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(d["dbSystemId"], LIVE);
            assert!(headers.contains_key("opc-retry-token"));
            json_reply_with(
                200,
                backup(9, 6, "CREATING"),
                &[("opc-work-request-id", "ocid1.wr..backup".into())],
            )
        }
        ("POST", "/20220915/dbSystems") => {
            assert!(
                headers.contains_key("opc-retry-token"),
                "a create carries a retry token"
            );
            let d: Value = serde_json::from_slice(&body).unwrap();
            seen.created.push(d.clone());
            let mut s = system(
                "ocid1.postgresqldbsystem.oc1..restored",
                d["displayName"].as_str().unwrap(),
                d["freeformTags"].clone(),
            );
            s["lifecycleState"] = json!("CREATING");
            json_reply_with(
                200,
                s,
                &[("opc-work-request-id", "ocid1.wr..restore".into())],
            )
        }
        ("GET", "/20220915/workRequests/ocid1.wr..restore") => json_reply(
            200,
            json!({"id": "ocid1.wr..restore",
            "operationType": "CREATE_DB_SYSTEM", "status": "SUCCEEDED", "percentComplete": 100.0, "resources": []}),
        ),
        _ => oci_error(404, "NotAuthorizedOrNotFound", &format!("{method} {path}")),
    }
}

struct World {
    dir: tempfile::TempDir,
    base: String,
    stand: Arc<Stand>,
    _rt: tokio::runtime::Runtime,
}

fn world() -> World {
    let key = key();
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), &key, "eu-frankfurt-1");
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    for p in ["base", "dev"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("profiles")
                .join(format!("{p}.toml")),
            profiles.join(format!("{p}.toml")),
        )
        .unwrap();
    }
    let stand = Arc::new(Stand {
        signatures: Signatures {
            public: key.to_public_key(),
            key_ids: vec![key_id(&key)],
            host: None,
        },
        seen: Mutex::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(stand.clone());
    let base = rt.block_on(serve(app));
    World {
        dir,
        base,
        stand,
        _rt: rt,
    }
}

impl World {
    fn run(&self, args: &[&str]) -> (i32, Value, String) {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_calops"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CALOPS_") || k.starts_with("OCI_") {
                c.env_remove(k);
            }
        }
        let out = c
            .current_dir(self.dir.path())
            .args(args)
            .args(["--profile", "dev", "--json", "--no-progress"])
            .env("OCI_CLI_CONFIG_FILE", self.dir.path().join("oci-config"))
            .env("CALOPS_ENDPOINT_POSTGRESQL", &self.base)
            .output()
            .unwrap();
        crate::support::json_output(args, &out)
    }
}

#[test]
fn managed_database_backups_and_restore_into_a_new_db_system() {
    let w = world();
    let (code, doc, stderr) = w.run(&["backup", "list"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["db_system"], LIVE, "found by its calops-profile tag");
    let ids: Vec<&str> = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "ocid1.postgresqlbackup.oc1..b3",
            "ocid1.postgresqlbackup.oc1..b2",
            "ocid1.postgresqlbackup.oc1..b1"
        ]
    );

    let (code, doc, stderr) = w.run(&["backup", "now"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["work_request_id"], "ocid1.wr..backup");

    // To a time between the two ACTIVE backups: the older one, into a new DB system.
    let (code, doc, stderr) =
        w.run(&["restore", "--to", "2025-03-02T00:00:00Z", "--name", "drill"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["backup"]["id"], "ocid1.postgresqlbackup.oc1..b1");
    assert_eq!(doc["state"], "ACTIVE");
    assert_eq!(doc["db_system"], "ocid1.postgresqldbsystem.oc1..restored");
    // --latest: the newest ACTIVE one (not the one still CREATING).
    let (code, doc, stderr) = w.run(&["restore", "--latest", "--no-wait"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["backup"]["id"], "ocid1.postgresqlbackup.oc1..b2");
    // The local target's options are refused, not ignored.
    let (code, _, _) = w.run(&["restore", "--latest", "--start"]);
    assert_eq!(code, 1);

    let seen = w.stand.seen.lock().unwrap();
    assert!(seen.bad_signatures.is_empty(), "{:?}", seen.bad_signatures);
    let d = &seen.created[0];
    assert_eq!(
        d["source"],
        json!({"sourceType": "BACKUP", "backupId": "ocid1.postgresqlbackup.oc1..b1"})
    );
    assert_eq!(d["displayName"], "drill");
    assert_eq!(
        (
            d["compartmentId"].as_str(),
            d["dbVersion"].as_str(),
            d["shape"].as_str()
        ),
        (
            Some(COMPARTMENT),
            Some("16"),
            Some("PostgreSQL.VM.Standard.E5.Flex")
        )
    );
    assert_eq!(
        d["credentials"]["passwordDetails"]["passwordType"],
        "VAULT_SECRET"
    );
    assert!(d["credentials"]["passwordDetails"]["secretId"]
        .as_str()
        .unwrap()
        .starts_with("ocid1.vaultsecret"));
    assert_eq!(d["networkDetails"]["subnetId"], SUBNET);
    assert!(
        d["networkDetails"]
            .get("primaryDbEndpointPrivateIp")
            .is_none(),
        "the live system's IP is not taken"
    );
    assert_eq!(d["storageDetails"]["systemType"], "OCI_OPTIMIZED_STORAGE");
    assert!(
        d["freeformTags"].get("calops-profile").is_none(),
        "the restore is not mistaken for the live system"
    );
    assert_eq!(d["freeformTags"]["calops-restore-of"], "dev");
    // The running DB system was only ever read.
    let touched: Vec<_> = seen
        .requests
        .iter()
        .filter(|(m, p)| p.contains(LIVE) && m != "GET")
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    let writes: Vec<_> = seen
        .requests
        .iter()
        .filter(|(m, _)| m != "GET")
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        writes,
        [
            "POST /20220915/backups",
            "POST /20220915/dbSystems",
            "POST /20220915/dbSystems"
        ]
    );
}

#[test]
fn wal_goes_to_object_storage_once_it_is_back() {
    use calops::backup::archive;
    use calops::backup::store::{BackupStore, OciBackupStore};
    use calops::oci::client::{OciClient, RetryPolicy, Service};
    let w = world();
    let cfg = calops::oci::config::OciConfig::load(
        Some(&w.dir.path().join("oci-config")),
        Some("DEFAULT"),
    )
    .unwrap();
    let client = OciClient::from_profile(&cfg)
        .unwrap()
        .with_endpoint(Service::ObjectStorage, url::Url::parse(&w.base).unwrap())
        .with_retry_policy(RetryPolicy::none());
    let store = OciBackupStore::new(Arc::new(client), "ns", "wal", "dev");
    let seg = w.dir.path().join("000000010000000000000003");
    let content: Vec<u8> = (0..300_000u32)
        .flat_map(|i| (i % 97).to_le_bytes())
        .collect();
    std::fs::write(&seg, &content).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    w.stand.seen.lock().unwrap().down_for = 2;
    let err = rt
        .block_on(archive::push(&store, &seg, "000000010000000000000003", 3))
        .unwrap_err();
    assert!(format!("{err:#}").contains("503"), "{err:#}");
    assert!(
        w.stand.seen.lock().unwrap().objects.is_empty(),
        "nothing stored while down"
    );
    rt.block_on(archive::push(&store, &seg, "000000010000000000000003", 3))
        .unwrap_err();
    // Back: the retry PostgreSQL makes stores it, once; a second push finds it there.
    let pushed = rt
        .block_on(archive::push(&store, &seg, "000000010000000000000003", 3))
        .unwrap();
    assert!(
        matches!(pushed, archive::Pushed::Stored { .. }),
        "{pushed:?}"
    );
    let again = rt
        .block_on(archive::push(&store, &seg, "000000010000000000000003", 3))
        .unwrap();
    assert!(
        matches!(again, archive::Pushed::AlreadyStored { .. }),
        "{again:?}"
    );
    let keys: Vec<String> = w
        .stand
        .seen
        .lock()
        .unwrap()
        .objects
        .keys()
        .cloned()
        .collect();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].starts_with("dev/wal/00000001/000000010000000000000003."),
        "{keys:?}"
    );
    // restore_command's side reads it back, checked; an unknown file is "not in the archive".
    let dest = w.dir.path().join("RECOVERYXLOG");
    rt.block_on(archive::fetch(&store, "000000010000000000000003", &dest))
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), content);
    assert!(matches!(
        rt.block_on(archive::fetch(&store, "000000010000000000000004", &dest)),
        Err(archive::FetchError::Missing(_))
    ));
    assert!(rt.block_on(store.list("wal/")).unwrap().len() == 1);
    assert!(w.stand.seen.lock().unwrap().bad_signatures.is_empty());
}
