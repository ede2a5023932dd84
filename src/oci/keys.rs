//! API signing keys: load the PEM private key, compute its fingerprint, check its file mode,
//! and check it against the fingerprint in the OCI config.
//!
//! Accepted: PKCS#1 (`BEGIN RSA PRIVATE KEY`), PKCS#8 (`BEGIN PRIVATE KEY`) and encrypted
//! PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 as `openssl pkcs8 -topk8 -v2 aes256` writes
//! it). The legacy OpenSSL form (`Proc-Type: 4,ENCRYPTED` inside an RSA PRIVATE KEY) is
//! refused with the one-line command that converts it.
//!
//! ```no_run
//! use calops::oci::{config::OciConfig, keys};
//! let profile = OciConfig::load(None, None)?;
//! keys::check_permissions(&profile.key_file)?;
//! let key = keys::load_private_key(&profile.key_file, profile.pass_phrase.as_ref())?;
//! let actual = keys::fingerprint(&key.to_public_key());
//! if let Some(expected) = &profile.fingerprint {
//!     keys::check_fingerprint(expected, &actual, &profile.key_file)?;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::oci::config::PassPhrase;
use md5::{Digest, Md5};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::{RsaPrivateKey, RsaPublicKey};
use std::path::{Path, PathBuf};

/// What went wrong with a key file. Never contains key material or the pass phrase.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("API key file {} not found\n  fix: check `key_file` in your OCI config, or create a key with `oci setup keys`", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read API key file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("API key file {} is encrypted with the legacy OpenSSL format (Proc-Type: 4,ENCRYPTED), which calops does not read\n  fix: convert it to encrypted PKCS#8 (same pass phrase): openssl pkcs8 -topk8 -v2 aes256 -in {} -out {}.pk8 && mv {}.pk8 {}", path.display(), path.display(), path.display(), path.display(), path.display())]
    LegacyEncrypted { path: PathBuf },
    #[error("API key file {} is encrypted but no pass phrase is configured\n  fix: add `pass_phrase=...` to the profile in your OCI config", path.display())]
    PassPhraseRequired { path: PathBuf },
    #[error("cannot decrypt API key file {} with the configured pass phrase (wrong pass phrase, or an unsupported cipher)\n  fix: check `pass_phrase` in your OCI config; if it is right, re-encrypt the key with: openssl pkcs8 -topk8 -v2 aes256 -in <decrypted.pem> -out {}", path.display(), path.display())]
    Decrypt { path: PathBuf },
    #[error("API key file {} is not an RSA private key in PEM form ({what})\n  fix: point `key_file` at the private key (PEM, 'BEGIN RSA PRIVATE KEY' or 'BEGIN PRIVATE KEY') whose public half you uploaded to OCI", path.display())]
    NotAKey { path: PathBuf, what: String },
    #[error("API key file {} can be read by {who} (mode {mode:04o})\n  fix: chmod 600 {}", path.display(), path.display())]
    TooOpen {
        path: PathBuf,
        mode: u32,
        who: &'static str,
    },
    #[error("fingerprint mismatch: the OCI config says {expected}, but key file {} has fingerprint {actual}\n  fix: set `fingerprint={actual}` if that key is the one uploaded to OCI, or point `key_file` at the key with fingerprint {expected}", key_file.display())]
    FingerprintMismatch {
        expected: String,
        actual: String,
        key_file: PathBuf,
    },
}

/// Read and decode a private key file.
pub fn load_private_key(
    path: &Path,
    pass_phrase: Option<&PassPhrase>,
) -> Result<RsaPrivateKey, KeyError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::NotFound {
                path: path.to_path_buf(),
            })
        }
        Err(error) => {
            return Err(KeyError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let text = String::from_utf8_lossy(&text);
    parse_private_key_pem(&text, pass_phrase, path)
}

/// Decode a PEM private key (pure). `path` is only used in messages.
pub fn parse_private_key_pem(
    pem: &str,
    pass_phrase: Option<&PassPhrase>,
    path: &Path,
) -> Result<RsaPrivateKey, KeyError> {
    let p = path.to_path_buf();
    let not_a_key = |what: String| KeyError::NotAKey {
        path: p.clone(),
        what,
    };
    let Some(label) = pem_label(pem) else {
        return Err(not_a_key("no `-----BEGIN ...-----` line".into()));
    };
    match label {
        "RSA PRIVATE KEY" => {
            if pem.contains("Proc-Type:") && pem.contains("ENCRYPTED") {
                return Err(KeyError::LegacyEncrypted { path: p });
            }
            RsaPrivateKey::from_pkcs1_pem(pem.trim())
                .map_err(|e| not_a_key(format!("PKCS#1 decode failed: {e}")))
        }
        "PRIVATE KEY" => RsaPrivateKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| not_a_key(format!("PKCS#8 decode failed: {e}"))),
        "ENCRYPTED PRIVATE KEY" => {
            let Some(pass) = pass_phrase else {
                return Err(KeyError::PassPhraseRequired { path: p });
            };
            RsaPrivateKey::from_pkcs8_encrypted_pem(pem.trim(), pass.expose().as_bytes())
                .map_err(|_| KeyError::Decrypt { path: p })
        }
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(not_a_key(
            "it is a public key; OCI needs the private key here".into(),
        )),
        "OPENSSH PRIVATE KEY" => Err(not_a_key(
            "it is an OpenSSH key; convert with `ssh-keygen -p -m PEM -f <file>` or create an API key with `oci setup keys`".into(),
        )),
        "EC PRIVATE KEY" => Err(not_a_key("OCI API signing keys must be RSA, this is EC".into())),
        other => Err(not_a_key(format!("found a `{other}` block"))),
    }
}

/// The label of the first `-----BEGIN <label>-----` line.
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &pem[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

/// The OCI fingerprint of a public key: MD5 of its DER SubjectPublicKeyInfo, as lowercase
/// hex pairs joined by `:` (what `openssl rsa -pubout -outform DER | openssl md5 -c` prints).
pub fn fingerprint(key: &RsaPublicKey) -> String {
    // Encoding an in-memory RSA public key cannot fail; fall back to PKCS#1 bytes defensively.
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    let digest = Md5::digest(&der);
    digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Refuse a key whose fingerprint differs from the one the config names (case-insensitive).
pub fn check_fingerprint(expected: &str, actual: &str, key_file: &Path) -> Result<(), KeyError> {
    if expected.trim().eq_ignore_ascii_case(actual.trim()) {
        Ok(())
    } else {
        Err(KeyError::FingerprintMismatch {
            expected: expected.trim().to_ascii_lowercase(),
            actual: actual.to_string(),
            key_file: key_file.to_path_buf(),
        })
    }
}

/// A private key must not be readable by group or others (as the OCI CLI warns and ssh
/// refuses). Returns [`KeyError::TooOpen`] naming who can read it and the `chmod` that fixes
/// it; on non-Unix systems this only checks that the file exists.
pub fn check_permissions(path: &Path) -> Result<(), KeyError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KeyError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            KeyError::Read {
                path: path.to_path_buf(),
                error: e,
            }
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (true, true) => Some("group and others"),
            (true, false) => Some("its group"),
            (false, true) => Some("others"),
            (false, false) => None,
        };
        if let Some(who) = who {
            return Err(KeyError::TooOpen {
                path: path.to_path_buf(),
                mode,
                who,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 1024-bit key Oracle publishes for documentation (also in the shared signing vectors).
    const DOC_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----
MIICXgIBAAKBgQDCFENGw33yGihy92pDjZQhl0C36rPJj+CvfSC8+q28hxA161QF
NUd13wuCTUcq0Qd2qsBe/2hFyc2DCJJg0h1L78+6Z4UMR7EOcpfdUE9Hf3m/hs+F
UR45uBJeDK1HSFHD8bHKD6kv8FPGfJTotc+2xjJwoYi+1hqp1fIekaxsyQIDAQAB
AoGBAJR8ZkCUvx5kzv+utdl7T5MnordT1TvoXXJGXK7ZZ+UuvMNUCdN2QPc4sBiA
QWvLw1cSKt5DsKZ8UETpYPy8pPYnnDEz2dDYiaew9+xEpubyeW2oH4Zx71wqBtOK
kqwrXa/pzdpiucRRjk6vE6YY7EBBs/g7uanVpGibOVAEsqH1AkEA7DkjVH28WDUg
f1nqvfn2Kj6CT7nIcE3jGJsZZ7zlZmBmHFDONMLUrXR/Zm3pR5m0tCmBqa5RK95u
412jt1dPIwJBANJT3v8pnkth48bQo/fKel6uEYyboRtA5/uHuHkZ6FQF7OUkGogc
mSJluOdc5t6hI1VsLn0QZEjQZMEOWr+wKSMCQQCC4kXJEsHAve77oP6HtG/IiEn7
kpyUXRNvFsDE0czpJJBvL/aRFUJxuRK91jhjC68sA7NsKMGg5OXb5I5Jj36xAkEA
gIT7aFOYBFwGgQAQkWNKLvySgKbAZRTeLBacpHMuQdl1DfdntvAyqpAZ0lY0RKmW
G6aFKaqQfOXKCyWoUiVknQJAXrlgySFci/2ueKlIE1QqIiLSZ8V8OlpFLRnb1pzI
7U1yQXnTAEFYM560yJlzUpOb1V4cScGd365tiSMvxLOvTA==
-----END RSA PRIVATE KEY-----
";
    const DOC_FP: &str = "73:61:a2:21:67:e0:df:be:7e:4b:93:1e:15:98:a5:b7";

    #[test]
    fn pkcs1_and_fingerprint() {
        let k = parse_private_key_pem(DOC_KEY, None, Path::new("/k")).unwrap();
        assert_eq!(fingerprint(&k.to_public_key()), DOC_FP);
    }

    #[test]
    fn refuses_wrong_kinds_with_reasons() {
        let e = parse_private_key_pem("hello", None, Path::new("/k")).unwrap_err();
        assert!(e.to_string().contains("no `-----BEGIN"), "{e}");
        let e = parse_private_key_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            None,
            Path::new("/k"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("public key"), "{e}");
        let legacy = DOC_KEY.replace(
            "-----BEGIN RSA PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00\n\n",
        );
        let e = parse_private_key_pem(&legacy, None, Path::new("/k.pem")).unwrap_err();
        assert!(matches!(e, KeyError::LegacyEncrypted { .. }));
        assert!(
            e.to_string()
                .contains("openssl pkcs8 -topk8 -v2 aes256 -in /k.pem -out /k.pem.pk8"),
            "{e}"
        );
    }

    #[test]
    fn fingerprint_mismatch_names_both() {
        let e = check_fingerprint("aa:bb", DOC_FP, Path::new("/k.pem")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("aa:bb") && msg.contains(DOC_FP) && msg.contains("/k.pem"));
        check_fingerprint(&DOC_FP.to_uppercase(), DOC_FP, Path::new("/k")).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.pem");
        std::fs::write(&p, DOC_KEY).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_permissions(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_permissions(&p).unwrap_err();
        assert!(
            matches!(
                e,
                KeyError::TooOpen {
                    mode: 0o644,
                    who: "group and others",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            check_permissions(&p),
            Err(KeyError::TooOpen {
                who: "its group",
                ..
            })
        ));
        let e = check_permissions(&dir.path().join("missing.pem")).unwrap_err();
        assert!(matches!(e, KeyError::NotFound { .. }));
        let e = load_private_key(&dir.path().join("missing.pem"), None).unwrap_err();
        assert!(e.to_string().contains("not found"));
    }
}
