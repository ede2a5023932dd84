//! Subscription secrets at rest (pure): sealed with AES-256-GCM when a key is configured
//! (`CALOPS_WEBHOOK_SECRET_KEY_REF=env:NAME`), bound to the organization, and tagged with a
//! key id so that a wrong or missing key is reported instead of producing wrong signatures.
//! Without a key, secrets are stored as given (and still never returned or logged).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::{Digest, Sha256};

/// A 32-byte key. `Debug` shows only its id.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

impl SecretKey {
    /// 64 hex characters or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<SecretKey, String> {
        use base64::Engine;
        let t = text.trim();
        let bytes = hex::decode(t)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .ok_or("is neither hex nor base64; generate one with `openssl rand -hex 32`")?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "is {} bytes long, not 32; generate one with `openssl rand -hex 32`",
                b.len()
            )
        })?;
        Ok(SecretKey(arr))
    }

    /// A short public id: the first 8 hex characters of SHA-256 of the key.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..4])
    }
}

/// A secret as stored: its bytes and, when sealed, the id of the key that sealed it.
/// `Debug` shows neither the bytes (the plain secret when no key is configured) nor their
/// length.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub key_id: Option<String>,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("bytes", &"<redacted>")
            .field("key_id", &self.key_id)
            .finish()
    }
}

/// What a sealed secret is for: it opens only for the same purpose and organization.
pub const WEBHOOK: &str = "webhook-secret";
/// A connected calendar's password.
pub const CALENDAR_PASSWORD: &str = "calendar-password";

fn aad(purpose: &str, org_id: i64) -> Vec<u8> {
    format!("calops-{purpose}:org={org_id}").into_bytes()
}

/// Prepare `secret` of a subscription of `org_id` for storage.
pub fn seal(key: Option<&SecretKey>, org_id: i64, secret: &str) -> Stored {
    seal_for(WEBHOOK, key, org_id, secret)
}

/// The secret's bytes back, for signing.
pub fn open(key: Option<&SecretKey>, org_id: i64, stored: &Stored) -> Result<Vec<u8>, String> {
    open_for(WEBHOOK, key, org_id, stored)
}

/// [`seal`] for another `purpose` ([`CALENDAR_PASSWORD`]).
pub fn seal_for(purpose: &str, key: Option<&SecretKey>, org_id: i64, secret: &str) -> Stored {
    match key {
        None => Stored {
            bytes: secret.as_bytes().to_vec(),
            key_id: None,
        },
        Some(k) => {
            let cipher = Aes256Gcm::new_from_slice(&k.0).expect("32-byte key");
            let nonce: [u8; 12] = rand::random();
            let aad = aad(purpose, org_id);
            let ct = cipher
                .encrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: secret.as_bytes(),
                        aad: &aad,
                    },
                )
                .expect("AES-GCM encryption does not fail for short inputs");
            let mut bytes = nonce.to_vec();
            bytes.extend(ct);
            Stored {
                bytes,
                key_id: Some(k.id()),
            }
        }
    }
}

/// [`open`] for another `purpose`.
pub fn open_for(
    purpose: &str,
    key: Option<&SecretKey>,
    org_id: i64,
    stored: &Stored,
) -> Result<Vec<u8>, String> {
    let Some(want) = &stored.key_id else {
        return Ok(stored.bytes.clone());
    };
    let k = key.ok_or_else(|| {
        format!("the secret is sealed with key {want}, but no key is configured (set CALOPS_WEBHOOK_SECRET_KEY_REF)")
    })?;
    if &k.id() != want {
        return Err(format!(
            "the secret is sealed with key {want}, but the configured key is {}",
            k.id()
        ));
    }
    if stored.bytes.len() < 12 {
        return Err("the sealed secret is truncated".into());
    }
    let (nonce, ct) = stored.bytes.split_at(12);
    let cipher = Aes256Gcm::new_from_slice(&k.0).expect("32-byte key");
    let aad = aad(purpose, org_id);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| {
            "the sealed secret does not authenticate (tampered, or another organization's)"
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_org() {
        let k = SecretKey::parse(&"ab".repeat(32)).unwrap();
        let s = seal(Some(&k), 5, "whsec_hunter2");
        assert_eq!(s.key_id.as_deref(), Some(k.id().as_str()));
        assert!(!s.bytes.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(open(Some(&k), 5, &s).unwrap(), b"whsec_hunter2");
        assert!(open(Some(&k), 6, &s).unwrap_err().contains("authenticate"));
        assert!(open(None, 5, &s).unwrap_err().contains("no key"));
        let other = SecretKey::parse(&"cd".repeat(32)).unwrap();
        assert!(open(Some(&other), 5, &s)
            .unwrap_err()
            .contains("configured key"));
        // A secret sealed for one purpose does not open for another.
        let p = seal_for(CALENDAR_PASSWORD, Some(&k), 5, "pw");
        assert!(open(Some(&k), 5, &p).unwrap_err().contains("authenticate"));
        assert_eq!(open_for(CALENDAR_PASSWORD, Some(&k), 5, &p).unwrap(), b"pw");
        // Two seals of one secret differ (random nonce).
        assert_ne!(seal(Some(&k), 5, "x").bytes, seal(Some(&k), 5, "x").bytes);
        // Without a key the secret is kept as given.
        let plain = seal(None, 5, "abc");
        assert_eq!(open(None, 5, &plain).unwrap(), b"abc");
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_print() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(SecretKey::parse(&b64).unwrap(), SecretKey([7u8; 32]));
        assert!(SecretKey::parse("abcd").unwrap_err().contains("not 32"));
        assert!(SecretKey::parse("not a key!")
            .unwrap_err()
            .contains("neither"));
        let shown = format!("{:?}", SecretKey([7u8; 32]));
        assert!(!shown.contains("0707"), "{shown}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let plain = seal(None, 7, "whsec_plain-text-secret");
        let sealed = seal(Some(&SecretKey([9; 32])), 7, "whsec_plain-text-secret");
        for s in [plain, sealed] {
            let shown = format!("{s:?}");
            assert!(
                !shown.contains("whsec") && !shown.contains("119, 104"),
                "{shown}"
            );
        }
    }
}
