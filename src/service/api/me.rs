//! `GET /v2/me` (the user an API key belongs to) and `GET /v2/timezones` (the time zones
//! calops knows, from its bundled tz database: jiff's `tzdb-bundle-always`), in Cal.com's
//! shapes. Both are version-neutral in Cal.com too.

use super::error::{success, ApiError, ApiResult};
use super::schedules::user_key_required;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value};

/// `GET /v2/me`: the key's user (403 `user_key_required` for an organization's key).
pub async fn get(State(state): State<AppState>, who: Principal) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let id = who.user().ok_or_else(user_key_required)?;
    let u = state
        .store
        .get_user(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {id}")))?;
    let default = state.store.default_schedule(org, id).await?;
    Ok(success(
        StatusCode::OK,
        json!({
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "name": u.name,
            "avatarUrl": null,
            "bio": null,
            "timeFormat": 24,
            "defaultScheduleId": default.map(|s| s.id),
            "weekStart": "Monday",
            "timeZone": u.time_zone,
            "locale": "en",
            "organizationId": u.org_id,
            "organization": {"isPlatform": false, "id": u.org_id},
        }),
    ))
}

/// Every time zone of the bundled database as Cal.com lists them (`cityTimezonesHandler`:
/// `{city, timezone}`), the city from the zone's name (`America/New_York` is "New York").
pub fn time_zones() -> Value {
    let mut names: Vec<String> = jiff::tz::db()
        .available()
        .map(|n| n.to_string())
        .filter(|n| n.contains('/') && !n.starts_with("Etc/"))
        .collect();
    names.sort();
    names.dedup();
    Value::Array(
        names
            .iter()
            .map(|n| {
                let city = n.rsplit('/').next().unwrap_or(n).replace('_', " ");
                json!({"city": city, "timezone": n})
            })
            .collect(),
    )
}

/// `GET /v2/timezones` (no API key needed, as in Cal.com).
pub async fn timezones() -> ApiResult {
    Ok(success(StatusCode::OK, time_zones()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_zones_come_from_the_bundled_database() {
        let v = super::time_zones();
        let all = v.as_array().unwrap();
        assert!(all.len() > 300, "{}", all.len());
        let ny = all
            .iter()
            .find(|z| z["timezone"] == "America/New_York")
            .unwrap();
        assert_eq!(ny["city"], "New York");
        assert!(all
            .iter()
            .all(|z| jiff::tz::TimeZone::get(z["timezone"].as_str().unwrap()).is_ok()));
    }
}
