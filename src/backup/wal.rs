//! PostgreSQL's WAL vocabulary, pure: log sequence numbers, segment and timeline file names,
//! timeline history files, and the object keys calops stores them under.
//!
//! Every archived file is stored as `wal/<TLI>/<file name>.<sha256 of the file>.zst`: the
//! timeline and the segment (the LSN range) are in the name PostgreSQL gave the file, the
//! checksum is of the uncompressed content, and the content is zstd-compressed.

use std::fmt;

/// PostgreSQL's default WAL segment size, which the clusters calops creates use (and the only
/// one the archive accepts).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// A write-ahead log position, shown as PostgreSQL shows it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hi = u32::from_str_radix(hi, 16).ok()?;
        let lo = u32::from_str_radix(lo, 16).ok()?;
        Some(Lsn(((hi as u64) << 32) | lo as u64))
    }

    /// The segment number this position falls in.
    pub fn segno(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl serde::Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lsn, D::Error> {
        let s = String::deserialize(d)?;
        Lsn::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("`{s}` is not an LSN")))
    }
}

/// What a file PostgreSQL hands to `archive_command` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: a full segment.
    Segment { tli: u32, segno: u64 },
    /// `...YYYYYYYY.partial`: the last, incomplete segment of a timeline left at promotion.
    Partial { tli: u32, segno: u64 },
    /// `...YYYYYYYY.OOOOOOOO.backup`: a backup history file.
    BackupHistory { tli: u32, segno: u64 },
    /// `TTTTTTTT.history`: a timeline history file.
    History { tli: u32 },
}

fn hex_u32(s: &str) -> Option<u32> {
    (s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(s, 16).ok())
        .flatten()
}

/// Segments per "xlogid" (the middle 8 hex digits of a name) for a segment size.
fn per_id(segment_size: u64) -> u64 {
    0x1_0000_0000 / segment_size
}

fn parse_segment(name: &str, segment_size: u64) -> Option<(u32, u64)> {
    if name.len() != 24 {
        return None;
    }
    let tli = hex_u32(&name[..8])?;
    let hi = hex_u32(&name[8..16])? as u64;
    let lo = hex_u32(&name[16..])? as u64;
    if lo >= per_id(segment_size) {
        return None;
    }
    Some((tli, hi * per_id(segment_size) + lo))
}

impl WalFile {
    /// Classify a file name as PostgreSQL writes it; `None` for anything else.
    pub fn parse(name: &str, segment_size: u64) -> Option<WalFile> {
        if let Some(t) = name.strip_suffix(".history") {
            return Some(WalFile::History { tli: hex_u32(t)? });
        }
        if let Some(s) = name.strip_suffix(".partial") {
            let (tli, segno) = parse_segment(s, segment_size)?;
            return Some(WalFile::Partial { tli, segno });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, offset) = rest.split_once('.')?;
            hex_u32(offset)?;
            let (tli, segno) = parse_segment(seg, segment_size)?;
            return Some(WalFile::BackupHistory { tli, segno });
        }
        let (tli, segno) = parse_segment(name, segment_size)?;
        Some(WalFile::Segment { tli, segno })
    }

    pub fn tli(&self) -> u32 {
        match *self {
            WalFile::Segment { tli, .. }
            | WalFile::Partial { tli, .. }
            | WalFile::BackupHistory { tli, .. }
            | WalFile::History { tli } => tli,
        }
    }

    /// The segment number, for everything but history files.
    pub fn segno(&self) -> Option<u64> {
        match *self {
            WalFile::Segment { segno, .. }
            | WalFile::Partial { segno, .. }
            | WalFile::BackupHistory { segno, .. } => Some(segno),
            WalFile::History { .. } => None,
        }
    }
}

/// The file name of segment `segno` on timeline `tli`.
pub fn segment_name(tli: u32, segno: u64, segment_size: u64) -> String {
    let per = per_id(segment_size);
    format!("{tli:08X}{:08X}{:08X}", segno / per, segno % per)
}

/// The file name of a timeline's history file.
pub fn history_name(tli: u32) -> String {
    format!("{tli:08X}.history")
}

/// Where archived files live in the store.
pub const WAL_PREFIX: &str = "wal/";

/// The prefix under which the archived copy of `file_name` is found (`wal/<TLI>/<name>.`).
/// `None` when `file_name` is not a WAL, history or backup history file name.
pub fn object_prefix(file_name: &str) -> Option<String> {
    let tli = WalFile::parse(file_name, DEFAULT_SEGMENT_SIZE)?.tli();
    Some(format!("{WAL_PREFIX}{tli:08X}/{file_name}."))
}

/// The key of the archived copy of `file_name` whose content has this sha256 (hex).
pub fn object_key(file_name: &str, sha256: &str) -> Option<String> {
    Some(format!("{}{sha256}.zst", object_prefix(file_name)?))
}

/// An archived file, as read back from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalObject {
    pub key: String,
    pub file_name: String,
    pub sha256: String,
    pub file: WalFile,
}

impl WalObject {
    /// Parse `wal/<TLI>/<name>.<sha256>.zst`; `None` for keys of any other shape.
    pub fn from_key(key: &str, segment_size: u64) -> Option<WalObject> {
        let rest = key.strip_prefix(WAL_PREFIX)?;
        let (dir, name) = rest.split_once('/')?;
        let stem = name.strip_suffix(".zst")?;
        let (file_name, sha) = stem.rsplit_once('.')?;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let file = WalFile::parse(file_name, segment_size)?;
        if hex_u32(dir)? != file.tli() {
            return None;
        }
        Some(WalObject {
            key: key.to_string(),
            file_name: file_name.to_string(),
            sha256: sha.to_ascii_lowercase(),
            file,
        })
    }
}

/// One line of a timeline history file: timeline `tli` ended at `switch` (where its child
/// begins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub tli: u32,
    pub switch: Lsn,
}

/// Parse a `TTTTTTTT.history` file: `parentTLI<TAB>switchpoint<TAB>reason` lines, `#` comments.
pub fn parse_history(text: &str) -> Result<Vec<HistoryEntry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let tli = parts.next().and_then(|t| t.parse::<u32>().ok());
        let lsn = parts.next().and_then(Lsn::parse);
        match (tli, lsn) {
            (Some(tli), Some(switch)) => out.push(HistoryEntry { tli, switch }),
            _ => {
                return Err(format!(
                    "line {}: `{line}` is not `TLI<TAB>LSN<TAB>reason`",
                    i + 1
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEG: u64 = DEFAULT_SEGMENT_SIZE;

    #[test]
    fn lsns_parse_and_print_as_postgres_does() {
        let l = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse("0/2000028").unwrap().segno(SEG), 2);
        assert_eq!(Lsn::parse("1/0").unwrap().segno(SEG), 256);
        assert!(Lsn::parse("0-1").is_none());
        assert!(Lsn::parse("G/1").is_none());
    }

    #[test]
    fn file_names_round_trip_and_classify() {
        assert_eq!(segment_name(1, 2, SEG), "000000010000000000000002");
        assert_eq!(segment_name(3, 256 + 0xA5, SEG), "0000000300000001000000A5");
        assert_eq!(
            WalFile::parse("0000000300000001000000A5", SEG),
            Some(WalFile::Segment {
                tli: 3,
                segno: 256 + 0xA5
            })
        );
        assert_eq!(
            WalFile::parse("000000010000000000000004.partial", SEG),
            Some(WalFile::Partial { tli: 1, segno: 4 })
        );
        assert_eq!(
            WalFile::parse("000000010000000000000002.00000028.backup", SEG),
            Some(WalFile::BackupHistory { tli: 1, segno: 2 })
        );
        assert_eq!(
            WalFile::parse("00000002.history", SEG),
            Some(WalFile::History { tli: 2 })
        );
        // With 16 MB segments the low part never reaches 0x100.
        assert_eq!(WalFile::parse("000000010000000000000100", SEG), None);
        for bad in [
            "",
            "RECOVERYXLOG",
            "00000001.history.tmp",
            "0000000100000000000000G1",
        ] {
            assert_eq!(WalFile::parse(bad, SEG), None, "{bad}");
        }
        // A 64 MB cluster has 64 segments per xlogid.
        assert_eq!(
            segment_name(1, 64, 64 * 1024 * 1024),
            "000000010000000100000000"
        );
    }

    #[test]
    fn object_keys_carry_timeline_name_and_checksum() {
        let sha = "ab".repeat(32);
        let key = object_key("000000020000000000000007", &sha).unwrap();
        assert_eq!(
            key,
            format!("wal/00000002/000000020000000000000007.{sha}.zst")
        );
        let o = WalObject::from_key(&key, SEG).unwrap();
        assert_eq!(o.file, WalFile::Segment { tli: 2, segno: 7 });
        assert_eq!(o.sha256, sha);
        assert_eq!(
            object_prefix("00000003.history").unwrap(),
            "wal/00000003/00000003.history."
        );
        assert!(object_prefix("../../etc/passwd").is_none());
        // The timeline directory must match the name; checksums are 64 hex digits.
        assert!(WalObject::from_key(
            &format!("wal/00000001/000000020000000000000007.{sha}.zst"),
            SEG
        )
        .is_none());
        assert!(
            WalObject::from_key("wal/00000002/000000020000000000000007.abc.zst", SEG).is_none()
        );
    }

    #[test]
    fn history_files_parse() {
        let h = "1\t0/3000060\tno recovery target specified\n\n# comment\n2\t0/5000000\tat restore point \"x\"\n";
        assert_eq!(
            parse_history(h).unwrap(),
            vec![
                HistoryEntry {
                    tli: 1,
                    switch: Lsn(0x3000060)
                },
                HistoryEntry {
                    tli: 2,
                    switch: Lsn(0x5000000)
                }
            ]
        );
        assert!(parse_history("one two").unwrap_err().contains("line 1"));
    }
}
