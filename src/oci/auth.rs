//! From a resolved [`OciProfile`] to a ready [`Signer`]: checks the key file's mode, loads and
//! decrypts the key, checks its fingerprint against the config, and reads the session token
//! for `security_token_file` profiles.
//!
//! ```no_run
//! use calops::oci::{auth, config::OciConfig};
//! let profile = OciConfig::load(None, None)?;
//! let signer = auth::signer_for(&profile)?;
//! println!("signing as {}", signer.key_id());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::oci::config::OciProfile;
use crate::oci::keys::{self, KeyError};
use crate::oci::signer::Signer;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    // The key error is part of the message, not a `source`, so that printing the error chain
    // does not repeat it.
    #[error("profile [{profile}] in {}: {error}", config_file.display())]
    Key {
        config_file: PathBuf,
        profile: String,
        error: KeyError,
    },
    #[error("profile [{profile}] in {}: cannot read security_token_file {}: {error}\n  fix: refresh the session with `oci session authenticate` or `oci session refresh --profile {profile}`", config_file.display(), path.display())]
    Token {
        config_file: PathBuf,
        profile: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("profile [{profile}] in {}: security_token_file {} is empty\n  fix: refresh the session with `oci session refresh --profile {profile}`", config_file.display(), path.display())]
    EmptyToken {
        config_file: PathBuf,
        profile: String,
        path: PathBuf,
    },
}

impl AuthError {
    /// The key problem underneath, if any (for `calops doctor` to classify).
    pub fn key_error(&self) -> Option<&KeyError> {
        match self {
            AuthError::Key { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Build the signer a profile describes. Refuses a key readable by group/others, a key that
/// does not decrypt, and a key whose fingerprint differs from the config's.
pub fn signer_for(profile: &OciProfile) -> Result<Signer, AuthError> {
    let wrap = |error: KeyError| AuthError::Key {
        config_file: profile.config_file.clone(),
        profile: profile.profile.clone(),
        error,
    };
    keys::check_permissions(&profile.key_file).map_err(wrap)?;
    let key =
        keys::load_private_key(&profile.key_file, profile.pass_phrase.as_ref()).map_err(wrap)?;
    let actual = keys::fingerprint(&key.to_public_key());
    if let Some(expected) = &profile.fingerprint {
        keys::check_fingerprint(expected, &actual, &profile.key_file).map_err(wrap)?;
    }
    if let Some(path) = &profile.security_token_file {
        let token = std::fs::read_to_string(path).map_err(|error| AuthError::Token {
            config_file: profile.config_file.clone(),
            profile: profile.profile.clone(),
            path: path.clone(),
            error,
        })?;
        if token.trim().is_empty() {
            return Err(AuthError::EmptyToken {
                config_file: profile.config_file.clone(),
                profile: profile.profile.clone(),
                path: path.clone(),
            });
        }
        return Ok(Signer::with_security_token(&token, key));
    }
    // Validated by config: non-session profiles have user and fingerprint.
    let key_id = profile.api_key_id().unwrap_or_else(|| {
        format!(
            "{}/{}/{}",
            profile.tenancy,
            profile.user.as_deref().unwrap_or_default(),
            actual
        )
    });
    Ok(Signer::new(key_id, key))
}
