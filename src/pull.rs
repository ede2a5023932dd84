//! Deploy by pull (the `oci-vm` target): what the operator's `calops deploy`, the VM's
//! `calops agent` and the VM's bootstrap (rendered in its cloud-init) exchange through the
//! stack's bucket. Pure: key names, the documents, digest checks; no I/O, no other module of
//! the crate (both `deploy` and `render` use it).
//!
//! ```text
//! calops-deploy/releases/<sha256 hex>/calops   the arm64 binary, named by its digest
//! calops-deploy/desired.json                   the release the VM should run (Desired)
//! calops-deploy/reports/<desired id>.json      what the agent did with it (Report)
//! calops-deploy/requests/<id>.json             a database job for the agent (Request)
//! calops-deploy/requests/<id>.started.json     the agent took it (Started)
//! calops-deploy/requests/<id>.result.json      how it ended (RequestResult)
//! ```
//!
//! `desired.json` is written only with a precondition (`If-None-Match: *` the first time,
//! `If-Match: <etag>` after), so two writers never silently overwrite each other; every write
//! carries a new `id`, and the agent answers each id exactly once with a report.
//!
//! Requests (`backup now`, `restore` of the VM's cluster) are written create-only
//! (`If-None-Match: *`) under a new id that starts with the time, so the agent takes them in
//! the order they were made, one at a time, and answers each exactly once with a result; one it
//! cannot read is answered with a failed result naming the problem.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Everything deploy by pull writes lives under this prefix of the stack's bucket.
pub const PREFIX: &str = "calops-deploy/";
/// The desired release.
pub const DESIRED: &str = "calops-deploy/desired.json";

/// The key of the binary with `digest` (`sha256:<hex>`).
pub fn release_key(digest: &str) -> String {
    format!(
        "{PREFIX}releases/{}/calops",
        digest.trim_start_matches("sha256:")
    )
}

/// The key of the report on desired release `id`.
pub fn report_key(id: &str) -> String {
    format!("{PREFIX}reports/{id}.json")
}

/// The prefix of the VM's archive (WAL and base backups) in the stack's bucket.
pub const BACKUP_PREFIX: &str = "backups";

/// Where requests, their start markers and their results live.
pub const REQUESTS: &str = "calops-deploy/requests/";

/// The key of request `id`.
pub fn request_key(id: &str) -> String {
    format!("{REQUESTS}{id}.json")
}

/// The key of the agent's start marker on request `id`.
pub fn started_key(id: &str) -> String {
    format!("{REQUESTS}{id}.started.json")
}

/// The key of the agent's result on request `id`.
pub fn result_key(id: &str) -> String {
    format!("{REQUESTS}{id}.result.json")
}

/// The request id a key under [`REQUESTS`] names, when it is a request (not a start marker or
/// a result).
pub fn request_id(key: &str) -> Option<&str> {
    let name = key.strip_prefix(REQUESTS)?.strip_suffix(".json")?;
    (!name.is_empty() && !name.contains('/') && !name.contains('.')).then_some(name)
}

/// A new request id: the UTC time (so ids sort in the order they were made) and 8 random hex
/// digits.
pub fn new_request_id(now: Timestamp) -> String {
    format!(
        "{}{:03}Z-{}",
        now.strftime("%Y%m%dT%H%M%S"),
        now.subsec_millisecond(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// What the operator asks the agent to do with the VM's cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// A base backup now (then retention), as `calops backup now` takes on the local target.
    Backup { label: String },
    /// A point-in-time restore into a new directory on the VM; with `yes`, made the live
    /// database (the old data kept aside) with the current release started on it.
    Restore {
        /// `None`: everything archived.
        #[serde(default)]
        to: Option<Timestamp>,
        /// A base backup's name instead of the newest that fits.
        #[serde(default)]
        backup: Option<String>,
        #[serde(default)]
        yes: bool,
        /// How long WAL replay may take.
        timeout_seconds: u64,
    },
}

impl Job {
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Backup { .. } => "backup",
            Job::Restore { .. } => "restore",
        }
    }
}

/// `calops-deploy/requests/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub requested_at: Timestamp,
    /// `user@host` of the operator.
    pub by: String,
    #[serde(flatten)]
    pub job: Job,
}

impl Request {
    /// Read request `id` from its document: the request, or why the agent cannot run it.
    pub fn parse(id: &str, body: &[u8]) -> Result<Request, String> {
        let r: Request = serde_json::from_slice(body).map_err(|e| {
            format!(
                "{} is not a request calops understands: {e}",
                request_key(id)
            )
        })?;
        if r.id != id {
            return Err(format!(
                "{} names id `{}`, not `{id}`",
                request_key(id),
                r.id
            ));
        }
        Ok(r)
    }
}

/// `calops-deploy/requests/<id>.started.json`: the agent took the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub id: String,
    pub started_at: Timestamp,
    /// `user@host` of the agent, and its process.
    pub agent: String,
    pub pid: u32,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    Ok,
    Failed,
}

/// `calops-deploy/requests/<id>.result.json`: the agent's answer, once per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestResult {
    pub id: String,
    /// `backup` or `restore`; `None` when the request could not be read.
    pub kind: Option<String>,
    pub outcome: RequestOutcome,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the command prints on the local target.
    pub text: String,
    /// Its `--json` document (the base backup, the restore).
    pub detail: serde_json::Value,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub agent: String,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A digest as calops names artifacts: `sha256:` and 64 lowercase hex digits.
pub fn is_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// One file of the profile the agent runs the service with (the profile and what it
/// `extends`, as the operator has them). Profiles hold references to secrets, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileFile {
    /// The file name (`base.toml`, `free-au.toml`).
    pub name: String,
    pub text: String,
}

/// `calops-deploy/desired.json`: the release the VM should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desired {
    /// Unique per write; the report answers this id.
    pub id: String,
    /// The release record's number in the operator's ledger.
    pub seq: u64,
    /// `sha256:<hex>` of the binary at [`release_key`].
    pub digest: String,
    pub size: u64,
    /// The calops profile's name, and its files.
    pub profile: String,
    pub profile_files: Vec<ProfileFile>,
    pub written_at: Timestamp,
    /// `user@host` of the writer.
    pub written_by: String,
    /// Why this was written (`deploy`, `rollback`, `restore after failure`).
    pub reason: String,
}

impl Desired {
    /// Check a downloaded binary against this document: its size and sha256.
    pub fn check_binary(&self, bytes: &[u8]) -> Result<(), String> {
        let got = digest_of(bytes);
        if got != self.digest {
            return Err(format!(
                "the binary at {} has sha256 {got} ({} bytes), but desired.json says {} ({} bytes): refused, nothing was switched",
                release_key(&self.digest),
                bytes.len(),
                self.digest,
                self.size
            ));
        }
        Ok(())
    }

    /// Problems that make the document unusable (written by hand, or damaged).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !is_digest(&self.digest) {
            out.push(format!(
                "digest `{}` is not sha256:<64 hex digits>",
                self.digest
            ));
        }
        if self.id.is_empty() || self.id.contains('/') {
            out.push(format!("id `{}` is empty or has a `/`", self.id));
        }
        if self.profile_files.is_empty() {
            out.push("profile_files is empty".into());
        }
        for f in &self.profile_files {
            if f.name.contains('/') || !f.name.ends_with(".toml") {
                out.push(format!("profile file name `{}` is not NAME.toml", f.name));
            }
        }
        out
    }
}

/// What the agent did with a desired release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportOutcome {
    /// The release runs now (switched to, or it already ran).
    Switched,
    /// It failed its checks: the previous release kept (or got back) the traffic.
    RolledBack,
    /// It failed and nothing ran before it.
    Failed,
    /// Not attempted: the binary's digest did not match, or the document was unusable.
    Refused,
}

/// `calops-deploy/reports/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The desired document's id.
    pub id: String,
    pub seq: u64,
    pub digest: String,
    pub outcome: ReportOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub received_at: Timestamp,
    pub finished_at: Timestamp,
    /// `user@host` of the agent.
    pub agent: String,
    /// The digest that serves after this (None: nothing serves).
    #[serde(default)]
    pub serving: Option<String>,
}

impl Report {
    /// `release #SEQ (DIGEST): OUTCOME[: REASON]`.
    pub fn summary(&self) -> String {
        format!(
            "release #{} ({}): {:?}{}",
            self.seq,
            self.digest,
            self.outcome,
            self.reason
                .as_deref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(bytes: &[u8]) -> Desired {
        Desired {
            id: "r1".into(),
            seq: 1,
            digest: digest_of(bytes),
            size: bytes.len() as u64,
            profile: "free-au".into(),
            profile_files: vec![ProfileFile {
                name: "free-au.toml".into(),
                text: "target = \"oci-vm\"\n".into(),
            }],
            written_at: Timestamp::UNIX_EPOCH,
            written_by: "a@b".into(),
            reason: "deploy".into(),
        }
    }

    #[test]
    fn keys_name_the_digest_and_the_id() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            release_key(&d),
            format!("calops-deploy/releases/{}/calops", "ab".repeat(32))
        );
        assert_eq!(report_key("x-1"), "calops-deploy/reports/x-1.json");
        assert!(is_digest(&d));
        assert!(!is_digest("sha256:AB"));
        assert!(!is_digest(&"ab".repeat(32)));
    }

    #[test]
    fn request_keys_ids_and_documents() {
        let id = new_request_id("2026-12-06T10:01:02.345Z".parse().unwrap());
        assert!(id.starts_with("20261206T100102345Z-"), "{id}");
        assert_eq!(id.len(), "20261206T100102345Z-".len() + 8);
        assert_eq!(request_id(&request_key(&id)), Some(id.as_str()));
        assert_eq!(request_id(&started_key(&id)), None);
        assert_eq!(request_id(&result_key(&id)), None);
        assert_eq!(request_id("calops-deploy/reports/x.json"), None);
        // Later ids sort after earlier ones.
        let later = new_request_id("2026-12-06T10:01:02.346Z".parse().unwrap());
        assert!(later > id);
        let r = Request {
            id: id.clone(),
            requested_at: Timestamp::UNIX_EPOCH,
            by: "a@b".into(),
            job: Job::Backup {
                label: "now".into(),
            },
        };
        let text = serde_json::to_vec(&r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["kind"], "backup");
        assert_eq!(Request::parse(&id, &text).unwrap(), r);
        // Another id's document, garbage, an unknown kind: each refused with the key named.
        let e = Request::parse("other", &text).unwrap_err();
        assert!(e.contains("requests/other.json") && e.contains(&id), "{e}");
        let e = Request::parse(&id, b"{not json").unwrap_err();
        assert!(e.contains(&request_key(&id)), "{e}");
        let e = Request::parse(
            &id,
            format!(r#"{{"id":"{id}","requested_at":"2026-01-01T00:00:00Z","by":"x","kind":"drop_tables"}}"#)
                .as_bytes(),
        )
        .unwrap_err();
        assert!(e.contains("drop_tables"), "{e}");
    }

    #[test]
    fn a_binary_that_does_not_match_its_digest_is_refused() {
        let d = desired(b"release one");
        assert!(d.check_binary(b"release one").is_ok());
        let e = d.check_binary(b"release one, tampered").unwrap_err();
        assert!(e.contains(&d.digest) && e.contains("refused"), "{e}");
        assert!(d.problems().is_empty());
        let mut bad = d.clone();
        bad.digest = "md5:1".into();
        bad.profile_files[0].name = "../x".into();
        assert_eq!(bad.problems().len(), 2, "{:?}", bad.problems());
    }
}
