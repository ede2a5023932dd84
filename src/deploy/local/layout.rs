//! Where the local target keeps everything, under `.calops/<profile>/`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(workdir: &Path, profile: &str) -> Layout {
        Layout {
            root: workdir.join(".calops").join(profile),
        }
    }
    /// Release artifacts: `releases/<hex digest>/calops`.
    pub fn artifact(&self, digest: &str) -> PathBuf {
        self.root
            .join("releases")
            .join(digest.trim_start_matches("sha256:"))
            .join("calops")
    }
    pub fn pg(&self) -> PathBuf {
        self.root.join("pg")
    }
    pub fn redis(&self) -> PathBuf {
        self.root.join("redis")
    }
    /// The Maildir the service writes its e-mail into (`new/` holds one file per message).
    pub fn mail(&self) -> PathBuf {
        self.root.join("mail")
    }
    pub fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    /// Lock and ledger (an [`FsStore`](crate::deploy::store::FsStore) root).
    pub fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    pub fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn current(&self) -> PathBuf {
        self.run().join("current.json")
    }
    pub fn pidfile(&self, seq: u64) -> PathBuf {
        self.run().join(format!("serve-{seq}.pid"))
    }
    pub fn log(&self, seq: u64) -> PathBuf {
        self.root.join("logs").join(format!("serve-{seq}.log"))
    }
    /// Secrets calops generated for this target (mode 0600).
    pub fn secret(&self, name: &str) -> PathBuf {
        self.root.join("secrets").join(name)
    }
}
