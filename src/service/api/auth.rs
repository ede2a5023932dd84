//! API keys: `Authorization: Bearer <key>`, stored only as SHA-256 hashes, with scopes.
//!
//! A key belongs to one organization and reaches that organization and the ones below it.
//! The bootstrap admin token (configured by reference, never stored) is a platform admin: it
//! may create top-level organizations and manage any organization.

use super::error::ApiError;
use crate::service::principal::{constant_time_eq, hash_key, Principal};
use crate::service::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The HTTP answers of a missing scope or organization (the principal itself is
/// `service::principal`).
impl Principal {
    /// 403 unless the caller holds `scope` (`admin` implies every scope).
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "insufficient_scope",
                format!("this API key lacks the {scope:?} scope; create a key with it"),
            ))
        }
    }

    /// The user a call is about: `requested` when given (it must be the key's own user for a
    /// user's key), else the key's user; `None` when neither says (an organization key
    /// without a `userId`).
    pub fn acting_user(&self, requested: Option<i64>) -> Result<Option<i64>, ApiError> {
        match (self.user(), requested) {
            (Some(own), Some(r)) if own != r => Err(ApiError::forbidden(
                "other_user",
                format!("this API key belongs to user {own}; it cannot act for user {r}"),
            )),
            (Some(own), _) => Ok(Some(own)),
            (None, r) => Ok(r),
        }
    }

    /// May this key see a resource of user `owner`? Organization keys see every user's; a
    /// user's key only its own (others answer 404, as if absent).
    pub fn sees_user(&self, owner: i64) -> bool {
        self.user().is_none_or(|own| own == owner)
    }

    /// The organization an org-scoped endpoint (/v2/schedules, ...) works in.
    pub fn org(&self) -> Result<i64, ApiError> {
        match self {
            Principal::Key { org_id, .. } => Ok(*org_id),
            Principal::Bootstrap => Err(ApiError::forbidden(
                "organization_key_required",
                "the bootstrap admin token manages organizations only; use an organization's API key here",
            )),
        }
    }
}

/// A new random API key (`cal_live_` + 48 hex characters) and its hash.
pub fn new_key() -> (String, [u8; 32]) {
    let key = format!("cal_live_{}", crate::pg::random_token(48));
    let h = hash_key(&key);
    (key, h)
}

/// The key in an `Authorization: Bearer <key>` header, if there is one.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let text = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    text.strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Does the request carry the bootstrap admin token? (For answers that show more to the
/// operator, such as `/health`'s dependency errors; never an error when it does not.)
pub fn is_bootstrap(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    match (&state.bootstrap_hash, bearer(headers)) {
        (Some(boot), Some(key)) => constant_time_eq(boot, &hash_key(key)),
        _ => false,
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing `Authorization: Bearer <API key>` header")
            })?;
        let text = header
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?;
        let key = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ApiError::unauthorized("use `Authorization: Bearer <API key>`"))?;
        let h = hash_key(key);
        if let Some(boot) = &state.bootstrap_hash {
            if constant_time_eq(boot, &h) {
                return Ok(Principal::Bootstrap);
            }
        }
        if let Some(p) = state.keys.get(&h, jiff::Timestamp::now()) {
            return Ok(p);
        }
        let ticket = state.keys.ticket();
        match state.store.find_api_key(&h).await? {
            Some(row) => {
                let p = Principal::Key {
                    key_id: row.id,
                    org_id: row.org_id,
                    scopes: row.scopes,
                    user_id: row.user_id,
                };
                if let Some(t) = ticket {
                    state.keys.put(t, h, p.clone(), row.expires_at);
                }
                Ok(p)
            }
            None => Err(ApiError::unauthorized("invalid or expired API key")),
        }
    }
}

/// Check that the caller may see organization `org_id`; 404 (not 403) when it may not, so a
/// key cannot learn which other organizations exist.
pub async fn check_org_access(
    state: &AppState,
    who: &Principal,
    org_id: i64,
) -> Result<crate::service::store::Org, ApiError> {
    let allowed = match who {
        Principal::Bootstrap => true,
        Principal::Key { org_id: own, .. } => state.store.org_within(*own, org_id).await?,
    };
    let org = if allowed {
        state.store.get_org(org_id).await?
    } else {
        None
    };
    org.ok_or_else(|| ApiError::not_found(&format!("organization {org_id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_scope_and_others_do_not() {
        let admin = Principal::Key {
            key_id: 1,
            org_id: 1,
            scopes: vec!["admin".into()],
            user_id: None,
        };
        let reader = Principal::Key {
            key_id: 2,
            org_id: 1,
            scopes: vec!["read".into()],
            user_id: Some(7),
        };
        assert!(admin.require("book").is_ok());
        assert!(reader.require("read").is_ok());
        let e = reader.require("admin").unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN);
        assert!(Principal::Bootstrap.org().is_err());
        // A user's key acts for its user only; an organization key for whoever it names.
        assert_eq!(reader.acting_user(None).unwrap(), Some(7));
        assert_eq!(reader.acting_user(Some(7)).unwrap(), Some(7));
        assert_eq!(reader.acting_user(Some(8)).unwrap_err().code, "other_user");
        assert_eq!(admin.acting_user(None).unwrap(), None);
        assert_eq!(admin.acting_user(Some(8)).unwrap(), Some(8));
        assert!(reader.sees_user(7) && !reader.sees_user(8) && admin.sees_user(8));
    }

    #[test]
    fn keys_are_random_and_hashes_are_sha256() {
        let (a, ha) = new_key();
        let (b, _) = new_key();
        assert_ne!(a, b);
        assert!(a.starts_with("cal_live_"));
        assert_eq!(ha, hash_key(&a));
        assert_eq!(
            hex::encode(hash_key("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(constant_time_eq(b"xy", b"xy"));
        assert!(!constant_time_eq(b"xy", b"xz"));
    }
}
