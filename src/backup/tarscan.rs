//! Reading two small files out of pg_basebackup's tar stream as it passes by, without
//! buffering it: `backup_label` (the first file: where the backup starts) and the end of
//! `backup_manifest` (the last: its `WAL-Ranges` say where it ends).

use super::wal::Lsn;

const BLOCK: usize = 512;
/// How much of the manifest's end is kept (its WAL ranges are in the last lines).
const MANIFEST_TAIL: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct TarScan {
    header: Vec<u8>,
    /// Bytes left in the current entry's data, and its padding.
    data_left: u64,
    pad_left: u64,
    capture: Option<Capture>,
    pub label: Option<String>,
    manifest_tail: Vec<u8>,
    pub manifest_seen: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Capture {
    Label,
    Manifest,
}

fn octal(field: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(field);
    u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).unwrap_or(0)
}

impl TarScan {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.data_left > 0 {
                let n = (self.data_left as usize).min(data.len());
                match self.capture {
                    Some(Capture::Label) => {
                        let l = self.label.get_or_insert_with(String::new);
                        l.push_str(&String::from_utf8_lossy(&data[..n]));
                    }
                    Some(Capture::Manifest) => {
                        self.manifest_tail.extend_from_slice(&data[..n]);
                        if self.manifest_tail.len() > 2 * MANIFEST_TAIL {
                            let cut = self.manifest_tail.len() - MANIFEST_TAIL;
                            self.manifest_tail.drain(..cut);
                        }
                    }
                    None => {}
                }
                self.data_left -= n as u64;
                data = &data[n..];
                continue;
            }
            if self.pad_left > 0 {
                let n = (self.pad_left as usize).min(data.len());
                self.pad_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == BLOCK {
                self.start_entry();
                self.header.clear();
            }
        }
    }

    fn start_entry(&mut self) {
        let h = &self.header;
        if h.iter().all(|b| *b == 0) {
            self.capture = None;
            return;
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let size = octal(&h[124..136]);
        let kind = h[156];
        self.capture = match (name.as_str(), kind) {
            ("backup_label", b'0' | 0) => Some(Capture::Label),
            ("backup_manifest", b'0' | 0) => {
                self.manifest_seen = true;
                Some(Capture::Manifest)
            }
            _ => None,
        };
        self.data_left = size;
        self.pad_left = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
    }

    /// `START WAL LOCATION` and `START TIMELINE` from `backup_label`, once it has passed.
    pub fn start(&self) -> Option<(Lsn, u32)> {
        let label = self.label.as_ref()?;
        if self.capture == Some(Capture::Label) && self.data_left > 0 {
            return None;
        }
        let field = |k: &str| {
            label
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        let lsn = Lsn::parse(field("START WAL LOCATION:")?.split_whitespace().next()?)?;
        let tli = field("START TIMELINE:")?.parse().ok()?;
        Some((lsn, tli))
    }

    /// The last `End-LSN` of the manifest's `WAL-Ranges`.
    pub fn end(&self) -> Option<Lsn> {
        let text = String::from_utf8_lossy(&self.manifest_tail);
        let ranges = text.rsplit_once("\"WAL-Ranges\"")?.1;
        let after = ranges.rsplit_once("\"End-LSN\"")?.1;
        let v = after.split('"').nth(1)?;
        Lsn::parse(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn label_and_manifest_are_read_in_any_chunking() {
        let label = b"START WAL LOCATION: 0/B000028 (file 00000001000000000000000B)\nCHECKPOINT LOCATION: 0/B000060\nSTART TIMELINE: 1\n".to_vec();
        let mut manifest = b"{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n".to_vec();
        manifest.extend(std::iter::repeat_n(b'x', 300_000));
        manifest.extend(b"],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/B000028\", \"End-LSN\": \"0/B000100\" }\n],\n\"Manifest-Checksum\": \"ab\"}\n");
        let t = tar_of(&[
            ("backup_label", label),
            ("base/1/1259", vec![7u8; 10_000]),
            ("backup_manifest", manifest),
        ]);
        for chunk in [1, 7, 512, 4096, t.len()] {
            let mut s = TarScan::default();
            for c in t.chunks(chunk) {
                s.feed(c);
            }
            assert_eq!(s.start(), Some((Lsn(0xB000028), 1)), "chunk {chunk}");
            assert_eq!(s.end(), Some(Lsn(0xB000100)), "chunk {chunk}");
            assert!(s.manifest_seen);
        }
        // Before the label has fully passed, there is no start yet.
        let mut s = TarScan::default();
        s.feed(&t[..520]);
        assert_eq!(s.start(), None);
    }
}
