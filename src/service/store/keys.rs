//! API keys, stored as SHA-256 hashes with their scopes.

use super::{classify, Result, Store};
use jiff::Timestamp;

impl Store {
    pub async fn create_api_key(
        &self,
        org_id: i64,
        hash: &[u8],
        prefix: &str,
        name: Option<&str>,
        scopes: &[String],
        expires_at: Option<Timestamp>,
    ) -> Result<i64> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "INSERT INTO api_keys (org_id, key_hash, key_prefix, name, scopes, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[&org_id, &hash, &prefix, &name, &scopes, &expires_at],
            )
            .await
            .map_err(|e| classify(e, "the API key"))?;
        Ok(row.get(0))
    }

    /// The organization and scopes of a live key with this hash.
    pub async fn find_api_key(&self, hash: &[u8]) -> Result<Option<KeyRow>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT id, org_id, scopes FROM api_keys WHERE key_hash = $1
                 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
            )
            .await?;
        let row = c.query_opt(&stmt, &[&hash]).await?;
        Ok(row.map(|r| KeyRow {
            id: r.get(0),
            org_id: r.get(1),
            scopes: r.get(2),
        }))
    }
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i64,
    pub org_id: i64,
    pub scopes: Vec<String>,
}
