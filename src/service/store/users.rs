//! Users (hosts) of an organization.

use super::{classify, Result, Store, StoreError};
use jiff::Timestamp;
use tokio_postgres::Row;

const USER_COLS: &str = "id, org_id, name, email, time_zone, created_at, username, slug";

impl Store {
    /// Create a user. Without a `username`, the e-mail address's local part becomes one
    /// (with `-2`, `-3`, ... when another user of the organization has it). Its booking page
    /// slug is the username (as on Cal.com, where the username is the page's URL).
    pub async fn create_user(
        &self,
        org_id: i64,
        name: &str,
        email: &str,
        tz: &str,
        username: Option<&str>,
    ) -> Result<User> {
        let c = self.conn().await?;
        let taken = |e: &tokio_postgres::Error| {
            e.as_db_error().is_some_and(|d| {
                matches!(
                    d.constraint(),
                    Some("users_org_username" | "users_org_slug")
                )
            })
        };
        let base = username
            .map(str::to_string)
            .unwrap_or_else(|| username_from_email(email));
        for n in 1..=20 {
            let candidate = match (username, n) {
                (Some(_), _) | (None, 1) => base.clone(),
                (None, n) => format!("{base}-{n}"),
            };
            let res = c
                .query_one(
                    &format!(
                        "INSERT INTO users (org_id, name, email, time_zone, username, slug)
                         VALUES ($1, $2, $3, $4, $5, calops_slugify($5)) RETURNING {USER_COLS}"
                    ),
                    &[&org_id, &name, &email, &tz, &candidate],
                )
                .await;
            match res {
                Ok(row) => return Ok(User::from_row(&row)),
                Err(e) if taken(&e) && username.is_none() => continue,
                Err(e) if taken(&e) => {
                    return Err(StoreError::Conflict(format!(
                        "username {candidate:?} is taken in this organization"
                    )))
                }
                Err(e) => return Err(classify(e, "a user with this e-mail address")),
            }
        }
        Err(StoreError::Conflict(format!(
            "no free username derived from {base:?}; send a username"
        )))
    }

    /// The user with `username` (case-insensitively) in the organization.
    pub async fn find_user_by_username(&self, org_id: i64, username: &str) -> Result<Option<User>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {USER_COLS} FROM users WHERE org_id = $1 AND lower(username) = lower($2)"
                ),
                &[&org_id, &username],
            )
            .await?;
        Ok(row.as_ref().map(User::from_row))
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
    /// Unique in the organization (case-insensitively); books with `eventTypeSlug`.
    pub username: String,
    /// The host's part of its booking page URLs (`/{org}/{slug}`), unique in the organization.
    pub slug: String,
}

/// A username from an e-mail address: its local part in lowercase letters, digits and dashes.
pub fn username_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    let mut out = String::new();
    for c in local.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "user".into()
    } else {
        out
    }
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
            username: r.get(6),
            slug: r.get(7),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames_come_from_the_local_part() {
        assert_eq!(
            super::username_from_email("Ann.Lee+cal@x.example"),
            "ann-lee-cal"
        );
        assert_eq!(super::username_from_email("__@x.example"), "user");
    }
}
