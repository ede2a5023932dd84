//! Schedules: a host's working hours and date overrides; one of them is the default.

use super::{classify, Result, Store};
use serde_json::Value;
use tokio_postgres::Row;

const SCHEDULE_COLS: &str =
    "id, org_id, user_id, name, time_zone, is_default, availability, overrides";

impl Store {
    /// Create a schedule; the first one of a user (or one marked default) becomes the default.
    pub async fn create_schedule(&self, s: &NewSchedule) -> Result<Schedule> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // Serialise default changes per user.
        tx.execute(
            "SELECT 1 FROM users WHERE id = $1 FOR UPDATE",
            &[&s.user_id],
        )
        .await?;
        let has_default: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schedules WHERE user_id = $1 AND is_default)",
                &[&s.user_id],
            )
            .await?
            .get(0);
        let is_default = s.is_default || !has_default;
        if is_default && has_default {
            tx.execute(
                "UPDATE schedules SET is_default = false WHERE user_id = $1 AND is_default",
                &[&s.user_id],
            )
            .await?;
        }
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO schedules (org_id, user_id, name, time_zone, is_default, availability, overrides)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {SCHEDULE_COLS}"
                ),
                &[
                    &s.org_id,
                    &s.user_id,
                    &s.name,
                    &s.time_zone,
                    &is_default,
                    &s.availability,
                    &s.overrides,
                ],
            )
            .await
            .map_err(|e| classify(e, "the schedule"))?;
        tx.commit().await?;
        self.cache.invalidate_config();
        Ok(Schedule::from_row(&row))
    }

    pub async fn list_schedules(&self, org_id: i64) -> Result<Vec<Schedule>> {
        self.org_rows(SCHEDULE_COLS, "schedules", org_id, Schedule::from_row)
            .await
    }

    /// The default schedule of user `user_id` in the organization, if it has one.
    pub async fn default_schedule(&self, org_id: i64, user_id: i64) -> Result<Option<Schedule>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "SELECT {SCHEDULE_COLS} FROM schedules
                     WHERE org_id = $1 AND user_id = $2 AND is_default"
                ),
                &[&org_id, &user_id],
            )
            .await?;
        Ok(row.as_ref().map(Schedule::from_row))
    }

    pub async fn get_schedule(&self, org_id: i64, id: i64) -> Result<Option<Schedule>> {
        self.org_row(SCHEDULE_COLS, "schedules", org_id, id, Schedule::from_row)
            .await
    }

    /// Replace the given fields; returns the updated schedule.
    pub async fn update_schedule(
        &self,
        org_id: i64,
        id: i64,
        p: &SchedulePatch,
    ) -> Result<Option<Schedule>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if p.is_default == Some(true) {
            tx.execute(
                "UPDATE schedules SET is_default = false
                 WHERE user_id = (SELECT user_id FROM schedules WHERE org_id = $1 AND id = $2)
                   AND is_default AND id <> $2",
                &[&org_id, &id],
            )
            .await?;
        }
        let row = tx
            .query_opt(
                &format!(
                    "UPDATE schedules SET name = COALESCE($3, name), time_zone = COALESCE($4, time_zone),
                       availability = COALESCE($5, availability), overrides = COALESCE($6, overrides),
                       is_default = COALESCE($7, is_default)
                     WHERE org_id = $1 AND id = $2 RETURNING {SCHEDULE_COLS}"
                ),
                &[&org_id, &id, &p.name, &p.time_zone, &p.availability, &p.overrides, &p.is_default],
            )
            .await
            .map_err(|e| classify(e, "the schedule"))?;
        tx.commit().await?;
        self.cache.invalidate_config();
        Ok(row.as_ref().map(Schedule::from_row))
    }

    pub async fn delete_schedule(&self, org_id: i64, id: i64) -> Result<bool> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "DELETE FROM schedules WHERE org_id = $1 AND id = $2",
                &[&org_id, &id],
            )
            .await?;
        self.cache.invalidate_config();
        Ok(n > 0)
    }
}

#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub org_id: i64,
    pub user_id: i64,
    pub name: String,
    pub time_zone: String,
    pub is_default: bool,
    pub availability: Value,
    pub overrides: Value,
}

#[derive(Debug, Clone, Default)]
pub struct SchedulePatch {
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub availability: Option<Value>,
    pub overrides: Option<Value>,
    pub is_default: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    pub name: String,
    pub time_zone: String,
    pub is_default: bool,
    pub availability: Value,
    pub overrides: Value,
}

impl Schedule {
    fn from_row(r: &Row) -> Schedule {
        Schedule {
            id: r.get(0),
            org_id: r.get(1),
            user_id: r.get(2),
            name: r.get(3),
            time_zone: r.get(4),
            is_default: r.get(5),
            availability: r.get(6),
            overrides: r.get(7),
        }
    }
}
