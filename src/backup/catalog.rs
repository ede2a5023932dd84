//! What the store holds, and what follows from it (pure): complete base backups (those with a
//! manifest), archived WAL, the chain of WAL a restore from a given backup needs, and which
//! objects retention may delete.
//!
//! A base backup lives under `base/<TLI>-<start LSN>/`: its parts (`data.tar.zst.NNNNN`,
//! consecutive pieces of one zstd stream of pg_basebackup's tar) and, written last,
//! `backup.json`. A backup without `backup.json` is incomplete and never restored from.

use super::wal::{self, HistoryEntry, Lsn, WalFile, WalObject};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const BASE_PREFIX: &str = "base/";
pub const MANIFEST: &str = "backup.json";
/// Timelines no restore may follow: a restored cluster that was made live, failed the
/// release's checks, and was switched back from archived its new timeline meanwhile.
pub const ABANDONED_PREFIX: &str = "timelines/abandoned/";

/// The marker that timeline `tli` is abandoned.
pub fn abandoned_key(tli: u32) -> String {
    format!("{ABANDONED_PREFIX}{tli:08X}")
}

/// The timeline an abandoned-timeline marker names.
pub fn abandoned_from_key(key: &str) -> Option<u32> {
    let hex = key.strip_prefix(ABANDONED_PREFIX)?;
    (hex.len() == 8)
        .then(|| u32::from_str_radix(hex, 16).ok())
        .flatten()
}

/// The directory name of a base backup: its start timeline and LSN, sortable.
pub fn backup_name(tli: u32, start: Lsn) -> String {
    format!("{tli:08X}-{:016X}", start.0)
}

/// The key of part `n` of a backup.
pub fn part_key(name: &str, n: usize) -> String {
    format!("{BASE_PREFIX}{name}/data.tar.zst.{n:05}")
}

pub fn manifest_key(name: &str) -> String {
    format!("{BASE_PREFIX}{name}/{MANIFEST}")
}

/// One stored piece of a base backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub key: String,
    pub size: u64,
    /// sha256 of the stored (compressed) bytes.
    pub sha256: String,
}

/// A complete base backup (its `backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackup {
    pub format: u32,
    pub name: String,
    pub label: String,
    pub timeline: u32,
    pub start_lsn: Lsn,
    pub end_lsn: Lsn,
    pub start_wal: String,
    pub end_wal: String,
    pub segment_size: u64,
    pub started_at: jiff::Timestamp,
    pub finished_at: jiff::Timestamp,
    pub server_version: String,
    pub system_identifier: String,
    /// Size and sha256 of the uncompressed tar stream.
    pub tar_bytes: u64,
    pub tar_sha256: String,
    pub parts: Vec<Part>,
}

impl BaseBackup {
    pub fn stored_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
    pub fn start_segno(&self) -> u64 {
        self.start_lsn.segno(self.segment_size)
    }
    pub fn end_segno(&self) -> u64 {
        self.end_lsn.segno(self.segment_size)
    }
}

/// Why the WAL after a base backup cannot bring it to the end of the archive.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("WAL segment {segment} is missing from the archive (expected object {prefix}<sha256>.zst): the WAL after base backup {backup} has a gap there, and {later} later segment(s) exist")]
    Gap {
        backup: String,
        segment: String,
        prefix: String,
        later: usize,
    },
    #[error("base backup {backup} is not usable yet: WAL up to segment {needed} (where the backup ends) is not archived; the last archived one is {last}")]
    Incomplete {
        backup: String,
        needed: String,
        last: String,
    },
    #[error("base backup {backup} is on timeline {tli}, which the newest timeline {latest} does not descend from; restore from a backup taken on timeline {latest}'s history")]
    OffPath {
        backup: String,
        tli: u32,
        latest: u32,
    },
    #[error("{file} is archived more than once with different content: {keys}")]
    Ambiguous { file: String, keys: String },
}

/// The WAL a restore from one base backup replays, to the end of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The timeline the recovery follows (see [`latest_timeline`]).
    pub latest_tli: u32,
    /// Segment objects from the backup's start to the end of the archive, in order.
    pub segments: Vec<WalObject>,
    /// The newest timeline's history file, when it has one.
    pub history: Option<WalObject>,
}

impl Chain {
    pub fn last_segment(&self) -> Option<&WalObject> {
        self.segments.last()
    }
}

/// The timeline a restore from a backup on timeline `start` follows, and so the one it names in
/// `recovery_target_timeline`: the newest timeline that has a history file, is not abandoned and
/// does not descend from an abandoned one (its history lists every ancestor); `start` when there
/// is none. Without abandoned timelines this is the timeline PostgreSQL's `latest` finds.
pub fn latest_timeline(
    start: u32,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    abandoned: &BTreeSet<u32>,
) -> u32 {
    histories
        .iter()
        .filter(|(t, h)| {
            **t > start && !abandoned.contains(t) && !h.iter().any(|e| abandoned.contains(&e.tli))
        })
        .map(|(t, _)| *t)
        .max()
        .unwrap_or(start)
}

/// Plan the WAL for `backup`: `wal` is every archived object, `histories` the parsed history
/// files by timeline.
pub fn chain(
    backup: &BaseBackup,
    wal: &[WalObject],
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    abandoned: &BTreeSet<u32>,
) -> Result<Chain, ChainError> {
    let seg_size = backup.segment_size;
    let latest = latest_timeline(backup.timeline, histories, abandoned);
    // Timelines on the path to `latest`, each with the LSN where it begins.
    let mut path: Vec<(u32, Lsn)> = Vec::new();
    let mut begin = Lsn(0);
    for e in histories.get(&latest).map(Vec::as_slice).unwrap_or(&[]) {
        path.push((e.tli, begin));
        begin = e.switch;
    }
    path.push((latest, begin));
    if !path.iter().any(|(t, _)| *t == backup.timeline) {
        return Err(ChainError::OffPath {
            backup: backup.name.clone(),
            tli: backup.timeline,
            latest,
        });
    }
    path.retain(|(t, _)| *t >= backup.timeline);
    // The timeline PostgreSQL reads segment `n` from: the newest one begun at or before it.
    let tli_for = |n: u64| {
        path.iter()
            .rev()
            .find(|(_, b)| b.segno(seg_size) <= n)
            .map(|(t, _)| *t)
            .unwrap_or(backup.timeline)
    };
    let mut segments: BTreeMap<(u32, u64), Vec<&WalObject>> = BTreeMap::new();
    for w in wal {
        if let WalFile::Segment { tli, segno } = w.file {
            segments.entry((tli, segno)).or_default().push(w);
        }
    }
    let mut out = Vec::new();
    let mut n = backup.start_segno();
    loop {
        match segments.get(&(tli_for(n), n)).map(Vec::as_slice) {
            Some([one]) => out.push((*one).clone()),
            Some(many @ [first, ..]) => {
                return Err(ChainError::Ambiguous {
                    file: first.file_name.clone(),
                    keys: many
                        .iter()
                        .map(|w| w.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
            _ => break,
        }
        n += 1;
    }
    // Anything archived beyond the first missing segment, on the path, means a gap.
    let later = segments
        .keys()
        .filter(|(t, s)| *s > n && tli_for(*s) == *t)
        .count();
    if later > 0 {
        let name = wal::segment_name(tli_for(n), n, seg_size);
        return Err(ChainError::Gap {
            backup: backup.name.clone(),
            prefix: wal::object_prefix(&name).unwrap_or_default(),
            segment: name,
            later,
        });
    }
    if n <= backup.end_segno() {
        return Err(ChainError::Incomplete {
            backup: backup.name.clone(),
            needed: backup.end_wal.clone(),
            last: out
                .last()
                .map(|w| w.file_name.clone())
                .unwrap_or_else(|| "none".into()),
        });
    }
    let history = wal
        .iter()
        .find(|w| w.file == WalFile::History { tli: latest })
        .cloned();
    Ok(Chain {
        latest_tli: latest,
        segments: out,
        history,
    })
}

/// Which backups and WAL objects retention deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Retention {
    pub keep: Vec<String>,
    pub delete_backups: Vec<String>,
    /// WAL objects older than every kept backup's start (never history files).
    pub delete_wal: Vec<String>,
}

/// Keep every backup finished within `days` of `now`, and the newest `count` whatever their
/// age (at least one); WAL is deleted only below the oldest kept backup's start segment, so a
/// kept backup always has the WAL it needs — and below the start of any backup still being
/// taken (`in_flight`: names of backups with parts but no manifest yet), which will need its
/// WAL once it completes.
pub fn retention(
    backups: &[BaseBackup],
    in_flight: &[String],
    wal: &[WalObject],
    now: jiff::Timestamp,
    days: u32,
    count: u32,
) -> Retention {
    let mut sorted: Vec<&BaseBackup> = backups.iter().collect();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.finished_at));
    let cutoff = now - jiff::SignedDuration::from_secs(days as i64 * 86_400);
    let keep_n = count.max(1) as usize;
    let (mut keep, mut drop) = (Vec::new(), Vec::new());
    for (i, b) in sorted.into_iter().enumerate() {
        if i < keep_n || b.finished_at >= cutoff {
            keep.push(b);
        } else {
            drop.push(b);
        }
    }
    let seg_size = keep
        .first()
        .map(|b| b.segment_size)
        .unwrap_or(wal::DEFAULT_SEGMENT_SIZE);
    let in_flight_starts = in_flight
        .iter()
        .filter_map(|n| Some(start_of(n)?.segno(seg_size)));
    let Some(oldest_start) = keep
        .iter()
        .map(|b| b.start_segno())
        .chain(in_flight_starts)
        .min()
    else {
        return Retention::default();
    };
    let delete_wal = wal
        .iter()
        .filter(|w| !matches!(w.file, WalFile::History { .. }))
        .filter(|w| w.file.segno().is_some_and(|s| s < oldest_start))
        .map(|w| w.key.clone())
        .collect();
    Retention {
        keep: keep.iter().map(|b| b.name.clone()).collect(),
        delete_backups: drop.iter().map(|b| b.name.clone()).collect(),
        delete_wal,
    }
}

/// The start LSN a backup's name carries (see [`backup_name`]).
pub fn start_of(name: &str) -> Option<Lsn> {
    let (_, lsn) = name.split_once('-')?;
    u64::from_str_radix(lsn, 16).ok().map(Lsn)
}

/// Names of backup directories that have parts but no manifest.
pub fn incomplete_backups(base_keys: &[String]) -> Vec<String> {
    let mut with_parts = BTreeSet::new();
    let mut complete = BTreeSet::new();
    for k in base_keys {
        let Some(rest) = k.strip_prefix(BASE_PREFIX) else {
            continue;
        };
        let Some((name, file)) = rest.split_once('/') else {
            continue;
        };
        if file == MANIFEST {
            complete.insert(name.to_string());
        } else {
            with_parts.insert(name.to_string());
        }
    }
    with_parts.difference(&complete).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::wal::{object_key, segment_name, DEFAULT_SEGMENT_SIZE as SEG};

    fn seg(tli: u32, n: u64) -> WalObject {
        let name = segment_name(tli, n, SEG);
        WalObject::from_key(&object_key(&name, &"a".repeat(64)).unwrap(), SEG).unwrap()
    }

    fn hist(tli: u32) -> WalObject {
        let name = wal::history_name(tli);
        WalObject::from_key(&object_key(&name, &"b".repeat(64)).unwrap(), SEG).unwrap()
    }

    fn backup(name: &str, tli: u32, start: u64, end: u64, day: i64) -> BaseBackup {
        let t: jiff::Timestamp = "2025-03-01T02:00:00Z".parse().unwrap();
        BaseBackup {
            format: 1,
            name: name.into(),
            label: "test".into(),
            timeline: tli,
            start_lsn: Lsn(start * SEG + 0x28),
            end_lsn: Lsn(end * SEG + 0x100),
            start_wal: segment_name(tli, start, SEG),
            end_wal: segment_name(tli, end, SEG),
            segment_size: SEG,
            started_at: t + jiff::SignedDuration::from_secs(day * 86_400),
            finished_at: t + jiff::SignedDuration::from_secs(day * 86_400 + 60),
            server_version: "15".into(),
            system_identifier: "1".into(),
            tar_bytes: 1,
            tar_sha256: String::new(),
            parts: vec![],
        }
    }

    fn names(c: &Chain) -> Vec<String> {
        c.segments.iter().map(|w| w.file_name.clone()).collect()
    }

    #[test]
    fn a_chain_runs_from_the_backup_to_the_end_of_the_archive() {
        let b = backup("b", 1, 2, 3, 0);
        let wal: Vec<_> = (1..=6).map(|n| seg(1, n)).collect();
        let c = chain(&b, &wal, &BTreeMap::new(), &BTreeSet::new()).unwrap();
        assert_eq!(c.latest_tli, 1);
        assert_eq!(names(&c).first().unwrap(), &segment_name(1, 2, SEG));
        assert_eq!(names(&c).last().unwrap(), &segment_name(1, 6, SEG));
        assert_eq!(c.segments.len(), 5);
    }

    #[test]
    fn a_gap_is_named_and_a_missing_end_is_incomplete() {
        let b = backup("b", 1, 2, 3, 0);
        let wal: Vec<_> = [2, 3, 5, 6].iter().map(|n| seg(1, *n)).collect();
        match chain(&b, &wal, &BTreeMap::new(), &BTreeSet::new()) {
            Err(ChainError::Gap {
                segment,
                prefix,
                later,
                ..
            }) => {
                assert_eq!(segment, "000000010000000000000004");
                assert_eq!(prefix, "wal/00000001/000000010000000000000004.");
                assert_eq!(later, 2);
            }
            other => panic!("{other:?}"),
        }
        let wal = vec![seg(1, 2)];
        assert!(matches!(
            chain(&b, &wal, &BTreeMap::new(), &BTreeSet::new()),
            Err(ChainError::Incomplete { .. })
        ));
        // The first segment itself missing, with later ones present, is a gap too.
        let wal: Vec<_> = [3, 4].iter().map(|n| seg(1, *n)).collect();
        assert!(matches!(
            chain(&b, &wal, &BTreeMap::new(), &BTreeSet::new()),
            Err(ChainError::Gap { .. })
        ));
    }

    #[test]
    fn an_abandoned_timeline_is_not_followed() {
        // A restore made timeline 2 (branched off 1 in segment 5) live, failed its checks and
        // was switched back: timeline 1 went on to segment 9 and is what a restore must follow.
        let b = backup("b", 1, 2, 2, 0);
        let mut wal: Vec<_> = (2..=9).map(|n| seg(1, n)).collect();
        wal.extend((5..=6).map(|n| seg(2, n)));
        wal.push(hist(2));
        let mut h = BTreeMap::new();
        let off_1 = |segno: u64| {
            vec![HistoryEntry {
                tli: 1,
                switch: Lsn(segno * SEG + 0x500),
            }]
        };
        h.insert(2, off_1(5));
        let abandoned = BTreeSet::from([2]);
        let c = chain(&b, &wal, &h, &abandoned).unwrap();
        assert_eq!(c.latest_tli, 1);
        assert_eq!(c.segments.len(), 8);
        assert!(c
            .segments
            .iter()
            .all(|w| matches!(w.file, WalFile::Segment { tli: 1, .. })));
        assert_eq!(c.history, None);
        // Unmarked, timeline 2 is followed (what PostgreSQL's `latest` would do).
        assert_eq!(chain(&b, &wal, &h, &BTreeSet::new()).unwrap().latest_tli, 2);
        // A later restore made live from timeline 1 (timeline 3) is followed; one that
        // descends from the abandoned timeline (4) is not.
        h.insert(3, off_1(8));
        assert_eq!(latest_timeline(1, &h, &abandoned), 3);
        h.insert(
            4,
            vec![
                HistoryEntry {
                    tli: 1,
                    switch: Lsn(5 * SEG + 0x500),
                },
                HistoryEntry {
                    tli: 2,
                    switch: Lsn(6 * SEG),
                },
            ],
        );
        assert_eq!(latest_timeline(1, &h, &abandoned), 3);
        assert_eq!(latest_timeline(1, &h, &BTreeSet::new()), 4);
        assert_eq!(abandoned_from_key(&abandoned_key(0x1A)), Some(0x1A));
        assert_eq!(abandoned_from_key("timelines/abandoned/xyz"), None);
    }

    #[test]
    fn timelines_switch_where_their_history_says() {
        // Timeline 2 branched off 1 in segment 5; timeline 1 went on to 7 (abandoned).
        let b = backup("b", 1, 2, 2, 0);
        let mut wal: Vec<_> = (2..=7).map(|n| seg(1, n)).collect();
        wal.extend((5..=8).map(|n| seg(2, n)));
        wal.push(hist(2));
        let mut h = BTreeMap::new();
        h.insert(
            2,
            vec![HistoryEntry {
                tli: 1,
                switch: Lsn(5 * SEG + 0x500),
            }],
        );
        let c = chain(&b, &wal, &h, &BTreeSet::new()).unwrap();
        assert_eq!(c.latest_tli, 2);
        assert_eq!(
            names(&c),
            [(1, 2), (1, 3), (1, 4), (2, 5), (2, 6), (2, 7), (2, 8)]
                .iter()
                .map(|(t, n)| segment_name(*t, *n, SEG))
                .collect::<Vec<_>>()
        );
        assert_eq!(c.history.unwrap().file, WalFile::History { tli: 2 });
        // A backup on the abandoned part of timeline 1 after the switch still replays onto
        // timeline 2 from the backup's segment on (PostgreSQL would fail later; so do we not).
        // A backup on a timeline that is not an ancestor of the newest one is refused.
        let mut h3 = h.clone();
        h3.insert(
            3,
            vec![HistoryEntry {
                tli: 1,
                switch: Lsn(4 * SEG),
            }],
        );
        let b2 = backup("b2", 2, 6, 6, 1);
        assert!(matches!(
            chain(&b2, &wal, &h3, &BTreeSet::new()),
            Err(ChainError::OffPath { latest: 3, .. })
        ));
    }

    #[test]
    fn retention_keeps_young_and_newest_and_their_wal() {
        let backups = vec![
            backup("d0", 1, 2, 2, 0),
            backup("d1", 1, 10, 10, 1),
            backup("d5", 1, 20, 20, 5),
            backup("d9", 1, 30, 30, 9),
        ];
        let mut wal: Vec<_> = (1..=35).map(|n| seg(1, n)).collect();
        wal.push(hist(2));
        let now = backups[3].finished_at + jiff::SignedDuration::from_secs(3600);
        // 7 days: d5 and d9 are young; count 1 adds nothing more.
        let r = retention(&backups, &[], &wal, now, 7, 1);
        assert_eq!(r.keep, ["d9", "d5"]);
        assert_eq!(r.delete_backups, ["d1", "d0"]);
        assert_eq!(r.delete_wal.len(), 19, "segments 1..=19");
        assert!(r.delete_wal.iter().all(|k| !k.contains("history")));
        // Count 3 keeps d1 too, whatever its age, and the WAL from its start.
        let r = retention(&backups, &[], &wal, now, 7, 3);
        assert_eq!(r.keep, ["d9", "d5", "d1"]);
        assert_eq!(r.delete_wal.len(), 9);
        // Zero days and zero count still keep the newest one.
        let r = retention(&backups, &[], &wal, now, 0, 0);
        assert_eq!(r.keep, ["d9"]);
        // A backup being taken (started at segment 12) keeps the WAL from its start.
        let r = retention(
            &backups,
            &[backup_name(1, Lsn(12 * SEG + 0x28))],
            &wal,
            now,
            0,
            0,
        );
        assert_eq!(r.keep, ["d9"]);
        assert_eq!(r.delete_wal.len(), 11, "segments 1..=11 only");
        assert_eq!(
            start_of(&backup_name(1, Lsn(0x3000028))),
            Some(Lsn(0x3000028))
        );
        // No backups: nothing is deleted.
        assert_eq!(retention(&[], &[], &wal, now, 0, 0), Retention::default());
    }

    #[test]
    fn incomplete_backups_have_parts_but_no_manifest() {
        let keys: Vec<String> = [
            "base/A/data.tar.zst.00000",
            "base/A/backup.json",
            "base/B/data.tar.zst.00000",
            "base/B/data.tar.zst.00001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(incomplete_backups(&keys), ["B"]);
    }
}
