//! The first local deploy seeds a demo organization with a host, a weekday schedule and an
//! event type, so that `curl` shows slots right away. The organization's API key is shown once
//! and kept (mode 0600) under `.calops/<profile>/secrets/`.

use super::layout::Layout;
use crate::deploy::store::write_atomic;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// `Debug` shows whether the demo key was created, never the key.
#[derive(Clone, serde::Serialize)]
pub struct Demo {
    pub organization_id: i64,
    pub event_type_id: i64,
    /// Only set when it was created by this call (shown once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    pub api_key_file: String,
    pub curl: String,
    /// The demo host's booking page (`/{org}/{host}/{eventType}`); absent for demo data
    /// seeded by a calops without booking pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_url: Option<String>,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("organization_id", &self.organization_id)
            .field("event_type_id", &self.event_type_id)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_file", &self.api_key_file)
            .field("curl", &self.curl)
            .field("booking_url", &self.booking_url)
            .finish()
    }
}

async fn post(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    body: Value,
) -> Result<Value> {
    let mut rq = c.post(format!("{base}{path}")).bearer_auth(token);
    // The shapes seeded below are the newest Cal.com version of each route.
    if let Some(v) = crate::service::api::versions::newest_for("POST", path) {
        rq = rq.header(crate::service::api::versions::HEADER, v);
    }
    let r = rq
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {path}"))?;
    let status = r.status();
    let v: Value = r
        .json()
        .await
        .with_context(|| format!("POST {path}: reading the answer"))?;
    if !status.is_success() {
        bail!(
            "POST {path} answered {status}: {}",
            v["error"]["message"].as_str().unwrap_or("?")
        );
    }
    Ok(v["data"].clone())
}

/// Seed the demo data unless it was seeded before. `base` is the service's URL.
pub async fn ensure(
    layout: &Layout,
    base: &str,
    public_url: &str,
    admin_token: &str,
) -> Result<Option<Demo>> {
    let key_file = layout.secret("demo-api-key");
    let ids_file = layout.secret("demo.json");
    if key_file.exists() && ids_file.exists() {
        return Ok(None);
    }
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    // `calopsDemo` marks the organization whose page `GET /` points to.
    let org = post(&c, base, "/v2/organizations", admin_token, json!({"name": "Demo", "slug": format!("demo-{}", crate::pg::random_token(6).to_lowercase()), "metadata": {"calopsDemo": true}})).await?;
    let key = org["apiKey"]
        .as_str()
        .context("no apiKey in the organization answer")?
        .to_string();
    let org_id = org["id"].as_i64().context("no organization id")?;
    let tz = "Australia/Sydney";
    let user = post(
        &c,
        base,
        &format!("/v2/organizations/{org_id}/users"),
        &key,
        json!({"name": "Demo Host", "email": "host@demo.example.com", "timeZone": tz, "username": "demo-host"}),
    )
    .await?;
    let user_id = user["id"].as_i64().context("no user id")?;
    let org_slug = org["slug"].as_str().context("no organization slug")?;
    let user_slug = user["slug"].as_str().context("no user slug")?;
    post(&c, base, "/v2/schedules", &key, json!({
        "userId": user_id, "name": "Weekdays", "timeZone": tz,
        "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday"], "startTime": "09:00", "endTime": "17:00"}]
    }))
    .await?;
    let et = post(
        &c,
        base,
        "/v2/event-types",
        &key,
        json!({"title": "Intro call", "slug": "intro", "lengthInMinutes": 30, "userId": user_id}),
    )
    .await?;
    let et_id = et["id"].as_i64().context("no event type id")?;
    write_atomic(&key_file, format!("{key}\n").as_bytes())?;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))?;
    let page = format!("/{org_slug}/{user_slug}/intro");
    let ids = json!({"organization_id": org_id, "event_type_id": et_id, "booking_path": page});
    write_atomic(&ids_file, ids.to_string().as_bytes())?;
    Ok(Some(Demo {
        organization_id: org_id,
        event_type_id: et_id,
        api_key: Some(key),
        api_key_file: key_file.display().to_string(),
        curl: curl_line(public_url, et_id, &key_file.display().to_string()),
        booking_url: Some(format!("{}{page}", public_url.trim_end_matches('/'))),
    }))
}

/// The demo data seeded earlier, without the key itself.
pub fn existing(layout: &Layout, public_url: &str) -> Option<Demo> {
    let ids: Value =
        serde_json::from_str(&std::fs::read_to_string(layout.secret("demo.json")).ok()?).ok()?;
    let et = ids["event_type_id"].as_i64()?;
    let key_file = layout.secret("demo-api-key").display().to_string();
    Some(Demo {
        organization_id: ids["organization_id"].as_i64()?,
        event_type_id: et,
        api_key: None,
        api_key_file: key_file.clone(),
        curl: curl_line(public_url, et, &key_file),
        booking_url: ids["booking_path"]
            .as_str()
            .map(|p| format!("{}{p}", public_url.trim_end_matches('/'))),
    })
}

fn curl_line(public_url: &str, event_type_id: i64, key_file: &str) -> String {
    let start = jiff::Zoned::now().date();
    let end = start
        .checked_add(jiff::Span::new().days(7))
        .unwrap_or(start);
    format!(
        "curl -s -H \"Authorization: Bearer $(cat {key_file})\" \"{public_url}/v2/slots?eventTypeId={event_type_id}&start={start}&end={end}&timeZone=Australia/Sydney\""
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let d = Demo {
            organization_id: 1,
            event_type_id: 2,
            api_key: Some("cal_live_0123456789abcdef".into()),
            api_key_file: "/x/demo-api-key".into(),
            curl: curl_line("http://127.0.0.1:3000", 2, "/x/demo-api-key"),
            booking_url: None,
        };
        let shown = format!("{d:?}");
        assert!(
            !shown.contains("cal_live_0123") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
