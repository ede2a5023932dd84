//! API keys, stored as SHA-256 hashes with their scopes.

use super::{classify, Result, Store};
use jiff::Timestamp;

impl Store {
    /// A key of the organization; with `user_id`, a key of that user of it (calls that take
    /// a `userId` default to the user, and lists show the user's own resources).
    pub async fn create_api_key(&self, k: &NewApiKey<'_>) -> Result<i64> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO api_keys (org_id, key_hash, key_prefix, name, scopes, expires_at, user_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &k.org_id,
                    &k.hash,
                    &k.prefix,
                    &k.name,
                    &k.scopes,
                    &k.expires_at,
                    &k.user_id,
                ],
            )
            .await
            .map_err(|e| classify(e, "the API key"))?;
        Ok(row.get(0))
    }

    /// The organization, scopes and user of a live key with this hash.
    pub async fn find_api_key(&self, hash: &[u8]) -> Result<Option<KeyRow>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, org_id, scopes, user_id FROM api_keys WHERE key_hash = $1
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            )
            .await?;
        let row = c.query_opt(&stmt, &[&hash]).await?;
        Ok(row.map(|r| KeyRow {
            id: r.get(0),
            org_id: r.get(1),
            scopes: r.get(2),
            user_id: r.get(3),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i64,
    pub org_id: i64,
    pub scopes: Vec<String>,
    /// The user the key belongs to; `None` for an organization key.
    pub user_id: Option<i64>,
}

/// A key to store (only its hash and first characters are kept).
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub org_id: i64,
    pub hash: &'a [u8],
    pub prefix: &'a str,
    pub name: Option<&'a str>,
    pub scopes: &'a [String],
    pub expires_at: Option<Timestamp>,
    pub user_id: Option<i64>,
}
