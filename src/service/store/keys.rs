//! API keys, stored as SHA-256 hashes with their scopes.

use super::{classify, Result, Store};
use jiff::Timestamp;

/// A key to store: only its hash and its first characters (to recognise it) are kept.
#[derive(Debug, Clone)]
pub struct NewApiKey<'a> {
    pub hash: &'a [u8],
    pub prefix: &'a str,
    pub name: Option<&'a str>,
    pub scopes: &'a [String],
    pub expires_at: Option<Timestamp>,
    /// The user the key belongs to (calls that take a `userId` default to the user, and lists
    /// show the user's own resources); `None` for an organization key.
    pub user_id: Option<i64>,
}

impl NewApiKey<'_> {
    /// Insert this key for `org_id` on `c` (a connection or a transaction); its id.
    pub(super) async fn insert(
        &self,
        c: &impl deadpool_postgres::GenericClient,
        org_id: i64,
    ) -> Result<i64> {
        let row = c
            .query_one(
                "INSERT INTO api_keys (org_id, key_hash, key_prefix, name, scopes, expires_at, user_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &org_id,
                    &self.hash,
                    &self.prefix,
                    &self.name,
                    &self.scopes,
                    &self.expires_at,
                    &self.user_id,
                ],
            )
            .await
            .map_err(|e| classify(e, "the API key"))?;
        Ok(row.get(0))
    }
}

impl Store {
    /// A key of organization `org_id` (of one of its users with `key.user_id`).
    pub async fn create_api_key(&self, org_id: i64, key: &NewApiKey<'_>) -> Result<i64> {
        let c = self.conn().await?;
        key.insert(&c, org_id).await
    }

    /// The organization, scopes, expiry and user of a live key with this hash.
    pub async fn find_api_key(&self, hash: &[u8]) -> Result<Option<KeyRow>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, org_id, scopes, expires_at, user_id FROM api_keys WHERE key_hash = $1
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            )
            .await?;
        let row = c.query_opt(&stmt, &[&hash]).await?;
        Ok(row.map(|r| KeyRow {
            id: r.get(0),
            org_id: r.get(1),
            scopes: r.get(2),
            expires_at: r.get(3),
            user_id: r.get(4),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i64,
    pub org_id: i64,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// The user the key belongs to; `None` for an organization key.
    pub user_id: Option<i64>,
}
