//! Compression and checksums of stored objects: zstd (with its own frame checksum) over the
//! content, and sha256 of the uncompressed content, which names or describes the object.

use sha2::{Digest, Sha256};
use std::io::Read;

/// The zstd level calops uses: fast enough to keep up with a busy server's WAL.
pub const DEFAULT_LEVEL: i32 = 3;

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compress `raw`; returns the compressed bytes and the sha256 (hex) of `raw`.
pub fn compress(raw: &[u8], level: i32) -> std::io::Result<(Vec<u8>, String)> {
    let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(raw.len() / 4), level)?;
    enc.include_checksum(true)?;
    std::io::Write::write_all(&mut enc, raw)?;
    Ok((enc.finish()?, sha256_hex(raw)))
}

/// Why an object's content cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    #[error("it does not decompress ({0})")]
    Undecodable(String),
    #[error("its content has sha256 {got}, not the recorded {want}")]
    Checksum { want: String, got: String },
}

/// Decompress `object` and check that the content's sha256 is `want_sha256`.
pub fn decompress_checked(object: &[u8], want_sha256: &str) -> Result<Vec<u8>, Damage> {
    let mut out = Vec::new();
    zstd::stream::Decoder::new(object)
        .and_then(|mut d| d.read_to_end(&mut out))
        .map_err(|e| Damage::Undecodable(e.to_string()))?;
    let got = sha256_hex(&out);
    if !got.eq_ignore_ascii_case(want_sha256) {
        return Err(Damage::Checksum {
            want: want_sha256.to_string(),
            got,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let raw: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let (obj, sha) = compress(&raw, DEFAULT_LEVEL).unwrap();
        assert!(obj.len() < raw.len() / 4, "compresses");
        assert_eq!(decompress_checked(&obj, &sha).unwrap(), raw);
        assert!(matches!(
            decompress_checked(&obj, &"0".repeat(64)),
            Err(Damage::Checksum { .. })
        ));
        let mut flipped = obj.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        assert!(decompress_checked(&flipped, &sha).is_err());
        assert!(matches!(
            decompress_checked(&obj[..obj.len() - 8], &sha),
            Err(Damage::Undecodable(_))
        ));
    }
}
