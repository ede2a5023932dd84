//! The server settings calops owns, in `calops.conf` next to `postgresql.conf` (which includes
//! it): continuous archiving for a live cluster, recovery for a restore. Rewritten whole each
//! time; `postgresql.conf` itself is only ever given the one include line.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

pub const FILE: &str = "calops.conf";
pub const INCLUDE: &str = "include_if_exists = 'calops.conf'\t# written by calops";

/// A string literal in postgresql.conf syntax.
pub fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

/// A word for `/bin/sh` (PostgreSQL runs its commands through the shell).
pub fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// The calops binary and configuration file PostgreSQL's commands run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    pub calops: PathBuf,
    pub config: PathBuf,
}

impl Commands {
    fn base(&self, sub: &str) -> String {
        format!(
            "{} backup {sub} --config {}",
            sh_quote(&self.calops.display().to_string()),
            sh_quote(&self.config.display().to_string())
        )
    }
    /// `archive_command`: push `%p` (named `%f`).
    pub fn archive_command(&self) -> String {
        format!("{} %p %f", self.base("archive-wal"))
    }
    /// `restore_command`: fetch `%f` into `%p`.
    pub fn restore_command(&self) -> String {
        format!("{} %f %p", self.base("restore-wal"))
    }
}

/// Settings of a live cluster that archives every finished segment, and at least every
/// `timeout_seconds` when there was activity.
pub fn archiving(cmds: &Commands, timeout_seconds: u32) -> Vec<(String, String)> {
    vec![
        ("wal_level".into(), "replica".into()),
        ("archive_mode".into(), "on".into()),
        (
            "archive_command".into(),
            conf_quote(&cmds.archive_command()),
        ),
        (
            "archive_timeout".into(),
            format!("{}s", timeout_seconds.max(1)),
        ),
    ]
}

/// Where a recovery stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// Replay everything archived.
    Latest,
    /// Stop after the last transaction committed at or before this instant.
    Time(jiff::Timestamp),
}

/// The instant as PostgreSQL's `timestamptz` input reads it, in UTC.
pub fn pg_timestamp(t: jiff::Timestamp) -> String {
    format!("{}+00", t.strftime("%Y-%m-%d %H:%M:%S%.6f"))
}

/// Settings of a cluster recovering from the archive; it promotes when done. With
/// `archive_timeout` (a cluster that will become the live one) it archives from the promotion
/// on: the new timeline's history file and first segment must reach the archive, or a later
/// restore would not find the new timeline. Without (a drill's copy), it archives nothing.
///
/// It follows `timeline` (named, not `latest`: the newest archived timeline may be an abandoned
/// one, see [`super::catalog::latest_timeline`]).
pub fn recovery(
    cmds: &Commands,
    target: RecoveryTarget,
    timeline: u32,
    archive_timeout: Option<u32>,
) -> Vec<(String, String)> {
    let mut s = match archive_timeout {
        Some(t) => archiving(cmds, t),
        None => vec![("archive_mode".into(), "off".into())],
    };
    s.extend([
        (
            "restore_command".into(),
            conf_quote(&cmds.restore_command()),
        ),
        ("recovery_target_timeline".into(), format!("'{timeline}'")),
        ("recovery_target_action".into(), "'promote'".into()),
    ]);
    if let RecoveryTarget::Time(t) = target {
        s.push(("recovery_target_time".into(), conf_quote(&pg_timestamp(t))));
        s.push(("recovery_target_inclusive".into(), "on".into()));
    }
    s
}

/// A restored cluster that is not going to archive (a drill's copy once recovered).
pub fn quiet() -> Vec<(String, String)> {
    vec![("archive_mode".into(), "off".into())]
}

pub fn render(settings: &[(String, String)]) -> String {
    let mut out =
        String::from("# Written by calops; rewritten on every deploy and restore. Do not edit.\n");
    for (k, v) in settings {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

/// Write `calops.conf` into `data_dir` (owned by the server's OS user) and make sure
/// `postgresql.conf` includes it.
pub fn write(data_dir: &Path, settings: &[(String, String)]) -> Result<()> {
    for (_, v) in settings {
        if v.contains('\n') {
            bail!("a server setting contains a line break: {v:?}");
        }
    }
    let conf = data_dir.join("postgresql.conf");
    let text =
        std::fs::read_to_string(&conf).with_context(|| format!("reading {}", conf.display()))?;
    if !text.lines().any(|l| {
        l.trim_start()
            .starts_with("include_if_exists = 'calops.conf'")
    }) {
        let mut t = text;
        if !t.ends_with('\n') {
            t.push('\n');
        }
        t.push_str(INCLUDE);
        t.push('\n');
        std::fs::write(&conf, t).with_context(|| format!("writing {}", conf.display()))?;
    }
    let path = data_dir.join(FILE);
    std::fs::write(&path, render(settings))
        .with_context(|| format!("writing {}", path.display()))?;
    crate::pg::hand_to_server(&path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_quoted_for_the_shell_and_the_conf_file() {
        let c = Commands {
            calops: "/srv/it's here/calops".into(),
            config: "/srv/b/backup.json".into(),
        };
        assert_eq!(
            c.archive_command(),
            r"'/srv/it'\''s here/calops' backup archive-wal --config '/srv/b/backup.json' %p %f"
        );
        let s = archiving(&c, 60);
        let line = render(&s);
        assert!(
            line.contains(r"archive_command = '''/srv/it''\''''s here/calops'' backup archive-wal"),
            "{line}"
        );
        assert!(line.contains("archive_timeout = 60s"));
        assert!(line.contains("archive_mode = on"));
    }

    #[test]
    fn recovery_settings_name_the_target() {
        let c = Commands {
            calops: "/b/calops".into(),
            config: "/b/backup.json".into(),
        };
        let t: jiff::Timestamp = "2025-03-01T02:03:04.5Z".parse().unwrap();
        let text = render(&recovery(&c, RecoveryTarget::Time(t), 3, None));
        assert!(text.contains("recovery_target_timeline = '3'"), "{text}");
        assert!(
            text.contains("recovery_target_time = '2025-03-01 02:03:04.500000+00'"),
            "{text}"
        );
        assert!(text.contains("restore_command = '''/b/calops'' backup restore-wal --config ''/b/backup.json'' %f %p'"), "{text}");
        assert!(text.contains("archive_mode = off"));
        let live = render(&recovery(&c, RecoveryTarget::Latest, 1, Some(60)));
        assert!(!live.contains("recovery_target_time ="));
        assert!(
            live.contains("archive_mode = on") && live.contains("archive-wal"),
            "{live}"
        );
    }

    #[test]
    fn the_include_line_is_added_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("postgresql.conf"), "port = 5432").unwrap();
        write(d.path(), &quiet()).unwrap();
        write(d.path(), &quiet()).unwrap();
        let conf = std::fs::read_to_string(d.path().join("postgresql.conf")).unwrap();
        assert_eq!(conf.matches("calops.conf").count(), 1, "{conf}");
        assert!(std::fs::read_to_string(d.path().join(FILE))
            .unwrap()
            .contains("archive_mode = off"));
    }
}
