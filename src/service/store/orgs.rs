//! Organizations (and child organizations), by id and by ancestry.

use super::keys::NewApiKey;
use super::{classify, Result, Store};
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::Row;

const ORG_COLS: &str = "id, parent_id, name, slug, brand_color, dark_brand_color, logo_url, theme, hide_branding, metadata, created_at, embed_origins";

impl Store {
    /// An organization and its first API key, in one transaction: both or neither.
    pub async fn create_org_with_key(&self, o: &NewOrg, key: &NewApiKey<'_>) -> Result<Org> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO organizations (parent_id, name, slug, metadata) VALUES ($1, $2, $3, $4)
                     RETURNING {ORG_COLS}"
                ),
                &[&o.parent_id, &o.name, &o.slug, &o.metadata],
            )
            .await
            .map_err(|e| classify(e, &format!("an organization with slug {:?}", o.slug)))?;
        let org = Org::from_row(&row);
        key.insert(&tx, org.id).await?;
        tx.commit().await?;
        Ok(org)
    }

    pub async fn get_org(&self, id: i64) -> Result<Option<Org>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(Org::from_row))
    }

    pub async fn list_child_orgs(&self, parent: i64) -> Result<Vec<Org>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!("SELECT {ORG_COLS} FROM organizations WHERE parent_id = $1 ORDER BY id"),
                &[&parent],
            )
            .await?;
        Ok(rows.iter().map(Org::from_row).collect())
    }

    /// Apply the fields that are `Some`; returns the updated organization.
    pub async fn update_org(&self, id: i64, p: &OrgPatch) -> Result<Option<Org>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "UPDATE organizations SET
                       name = COALESCE($2, name),
                       brand_color = CASE WHEN $3 THEN $4 ELSE brand_color END,
                       dark_brand_color = CASE WHEN $5 THEN $6 ELSE dark_brand_color END,
                       logo_url = CASE WHEN $7 THEN $8 ELSE logo_url END,
                       theme = CASE WHEN $9 THEN $10 ELSE theme END,
                       hide_branding = COALESCE($11, hide_branding),
                       metadata = COALESCE($12, metadata),
                       embed_origins = CASE WHEN $13 THEN $14 ELSE embed_origins END
                     WHERE id = $1 RETURNING {ORG_COLS}"
                ),
                &[
                    &id,
                    &p.name,
                    &p.brand_color.is_some(),
                    &p.brand_color.clone().flatten(),
                    &p.dark_brand_color.is_some(),
                    &p.dark_brand_color.clone().flatten(),
                    &p.logo_url.is_some(),
                    &p.logo_url.clone().flatten(),
                    &p.theme.is_some(),
                    &p.theme.clone().flatten(),
                    &p.hide_branding,
                    &p.metadata,
                    &p.embed_origins.is_some(),
                    &p.embed_origins.clone().flatten(),
                ],
            )
            .await?;
        // This replica's booker paths show the change at once (others on the notification).
        self.cache.invalidate_config();
        Ok(row.as_ref().map(Org::from_row))
    }

    /// The organization at a slug path (a top-level organization's slug, then a child's slug
    /// at each level) and its ancestors, nearest first: what a booking page needs for its
    /// branding. Empty when no organization has that path.
    pub async fn org_chain_by_path(&self, path: &[String]) -> Result<Vec<Org>> {
        if path.is_empty() || path.len() > 16 {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "WITH RECURSIVE down(id, depth) AS (
                   SELECT id, 1 FROM organizations
                     WHERE parent_id IS NULL AND slug = ($1::text[])[1]
                   UNION ALL
                   SELECT o.id, d.depth + 1 FROM organizations o JOIN down d ON o.parent_id = d.id
                     WHERE d.depth < cardinality($1::text[]) AND o.slug = ($1::text[])[d.depth + 1]),
                 up(oid, opar, depth) AS (
                   SELECT o.id, o.parent_id, 0 FROM organizations o JOIN down d ON o.id = d.id
                     WHERE d.depth = cardinality($1::text[])
                   UNION ALL
                   SELECT o.id, o.parent_id, up.depth + 1 FROM organizations o
                     JOIN up ON o.id = up.opar WHERE up.depth < 16)
                 SELECT {ORG_COLS} FROM organizations JOIN up ON id = up.oid ORDER BY up.depth"
            ))
            .await?;
        let rows = c.query(&stmt, &[&path]).await?;
        Ok(rows.iter().map(Org::from_row).collect())
    }

    /// The organization `id` and its ancestors, nearest first (empty when there is none).
    pub async fn org_chain(&self, id: i64) -> Result<Vec<Org>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "WITH RECURSIVE up(oid, opar, depth) AS (
                   SELECT id, parent_id, 0 FROM organizations WHERE id = $1
                   UNION ALL
                   SELECT o.id, o.parent_id, up.depth + 1 FROM organizations o
                     JOIN up ON o.id = up.opar WHERE up.depth < 16)
                 SELECT {ORG_COLS} FROM organizations JOIN up ON id = up.oid ORDER BY up.depth"
            ))
            .await?;
        let rows = c.query(&stmt, &[&id]).await?;
        Ok(rows.iter().map(Org::from_row).collect())
    }

    /// The demo organization `calops deploy --profile local` seeds (`metadata.calopsDemo`),
    /// the oldest one when there are several.
    pub async fn demo_org(&self) -> Result<Option<Org>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {ORG_COLS} FROM organizations WHERE metadata @> '{{\"calopsDemo\": true}}'
                     ORDER BY id LIMIT 1"
                ),
                &[],
            )
            .await?;
        Ok(row.as_ref().map(Org::from_row))
    }

    /// Is `org` the organization `ancestor` or one below it?
    pub async fn org_within(&self, ancestor: i64, org: i64) -> Result<bool> {
        if ancestor == org {
            return Ok(self.get_org(org).await?.is_some());
        }
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "WITH RECURSIVE up(id, parent_id, depth) AS (
                   SELECT id, parent_id, 0 FROM organizations WHERE id = $1
                   UNION ALL
                   SELECT o.id, o.parent_id, up.depth + 1 FROM organizations o
                     JOIN up ON o.id = up.parent_id WHERE up.depth < 64)
                 SELECT EXISTS (SELECT 1 FROM up WHERE id = $2)",
            )
            .await?;
        Ok(c.query_one(&stmt, &[&org, &ancestor]).await?.get(0))
    }
}

#[derive(Debug, Clone)]
pub struct NewOrg {
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub metadata: Value,
}

#[derive(Debug, Clone, Default)]
pub struct OrgPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the field.
    pub brand_color: Option<Option<String>>,
    pub dark_brand_color: Option<Option<String>>,
    pub logo_url: Option<Option<String>>,
    pub theme: Option<Option<String>>,
    pub hide_branding: Option<bool>,
    pub metadata: Option<Value>,
    /// Origins that may embed the booking pages; `Some(None)` inherits the parent's again.
    pub embed_origins: Option<Option<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub struct Org {
    pub id: i64,
    pub parent_id: Option<i64>,
    pub name: String,
    pub slug: String,
    pub brand_color: Option<String>,
    pub dark_brand_color: Option<String>,
    pub logo_url: Option<String>,
    pub theme: Option<String>,
    pub hide_branding: bool,
    pub metadata: Value,
    pub created_at: Timestamp,
    /// Origins that may embed the booking pages (`None`: the parent's).
    pub embed_origins: Option<Vec<String>>,
}

impl Org {
    fn from_row(r: &Row) -> Org {
        Org {
            id: r.get(0),
            parent_id: r.get(1),
            name: r.get(2),
            slug: r.get(3),
            brand_color: r.get(4),
            dark_brand_color: r.get(5),
            logo_url: r.get(6),
            theme: r.get(7),
            hide_branding: r.get(8),
            metadata: r.get(9),
            created_at: r.get(10),
            embed_origins: r.get(11),
        }
    }
}
