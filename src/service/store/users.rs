//! Users (hosts) of an organization.

use super::{classify, Result, Store};
use jiff::Timestamp;
use tokio_postgres::Row;

const USER_COLS: &str = "id, org_id, name, email, time_zone, created_at, slug";

impl Store {
    pub async fn create_user(
        &self,
        org_id: i64,
        name: &str,
        email: &str,
        tz: &str,
    ) -> Result<User> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO users (org_id, name, email, time_zone) VALUES ($1, $2, $3, $4)
                     RETURNING {USER_COLS}"
                ),
                &[&org_id, &name, &email, &tz],
            )
            .await
            .map_err(|e| classify(e, "a user with this e-mail address"))?;
        Ok(User::from_row(&row))
    }

    pub async fn list_users(&self, org_id: i64) -> Result<Vec<User>> {
        self.org_rows(USER_COLS, "users", org_id, User::from_row)
            .await
    }

    /// A host by its page slug, in one organization only.
    pub async fn user_by_slug(&self, org_id: i64, slug: &str) -> Result<Option<User>> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users WHERE org_id = $1 AND slug = $2"
            ))
            .await?;
        let row = c.query_opt(&stmt, &[&org_id, &slug]).await?;
        Ok(row.as_ref().map(User::from_row))
    }

    /// The oldest host of an organization (the demo page's).
    pub async fn first_user(&self, org_id: i64) -> Result<Option<User>> {
        Ok(self.list_users(org_id).await?.into_iter().next())
    }

    pub async fn get_user(&self, org_id: i64, id: i64) -> Result<Option<User>> {
        self.org_row(USER_COLS, "users", org_id, id, User::from_row)
            .await
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub email: String,
    pub time_zone: String,
    pub created_at: Timestamp,
    /// The host's part of its booking page URLs (`/{org}/{slug}`), unique in the organization.
    pub slug: String,
}

impl User {
    fn from_row(r: &Row) -> User {
        User {
            id: r.get(0),
            org_id: r.get(1),
            name: r.get(2),
            email: r.get(3),
            time_zone: r.get(4),
            created_at: r.get(5),
            slug: r.get(6),
        }
    }
}
