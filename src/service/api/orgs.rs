//! Organizations (with child organizations, i.e. sub-accounts), their API keys and users.

use super::auth::{self, check_org_access};
use super::error::{success, ApiError, ApiResult, Path};
use super::input::{self, JsonBody};
use crate::service::domain::hours::check_time_zone;
use crate::service::domain::instant;
use crate::service::domain::FieldError;
use crate::service::principal::{Principal, SCOPES};
use crate::service::state::AppState;
use crate::service::store::{NewApiKey, NewOrg, Org, OrgPatch, User};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn org_json(o: &Org) -> Value {
    json!({
        "id": o.id,
        "parentId": o.parent_id,
        "name": o.name,
        "slug": o.slug,
        "brandColor": o.brand_color,
        "darkBrandColor": o.dark_brand_color,
        "logoUrl": o.logo_url,
        "theme": o.theme,
        "hideBranding": o.hide_branding,
        "metadata": o.metadata,
        "createdAt": o.created_at.to_string(),
        "embedAllowedOrigins": o.embed_origins,
    })
}

pub fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "organizationId": u.org_id,
        "username": u.username,
        "name": u.name,
        "email": u.email,
        "timeZone": u.time_zone,
        // The booking pages' part of the URL (`/{org}/{slug}`): the username for users made
        // since usernames exist.
        "slug": u.slug,
        "createdAt": u.created_at.to_string(),
    })
}

/// How unknown-field errors of these endpoints end.
const ORG_FIELDS: &str = "not a field of this endpoint (see GET /openapi.json)";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateOrg {
    name: String,
    slug: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    /// Scopes of the API key returned for the new organization (default: all).
    #[serde(default)]
    api_key_scopes: Option<Vec<String>>,
    /// Days until the returned key expires (default: never).
    #[serde(default)]
    api_key_days_valid: Option<u32>,
}

/// Derive a URL slug from a name: lowercase ASCII letters and digits joined by dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

/// First path segments the service uses itself (the API, the booking pages' self-service
/// links, health and metrics): no top-level organization may take them as its slug.
pub const RESERVED_SLUGS: &[&str] = &["v2", "booking", "health", "metrics"];

fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn check_scopes(scopes: &[String], errors: &mut Vec<FieldError>, field: &str) {
    if scopes.is_empty() {
        errors.push(FieldError::new(field, "list at least one scope"));
    }
    for s in scopes {
        if !SCOPES.contains(&s.as_str()) {
            errors.push(FieldError::new(
                field,
                format!("unknown scope {s:?}: use {}", SCOPES.join(", ")),
            ));
        }
    }
}

/// When a key valid for `days` (a request's `field`) expires; `None` for never. Days outside
/// 1..=[`instant::MAX_KEY_DAYS`] go to `errors`.
fn key_expiry(
    field: &str,
    days: Option<u32>,
    errors: &mut Vec<FieldError>,
) -> Option<jiff::Timestamp> {
    let days = days?;
    let expires = instant::key_expiry(jiff::Timestamp::now(), days);
    if expires.is_none() {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {} days", instant::MAX_KEY_DAYS),
        ));
    }
    expires
}

async fn create_org_with_key(state: &AppState, parent: Option<i64>, body: CreateOrg) -> ApiResult {
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let slug = body.slug.clone().unwrap_or_else(|| slugify(&name));
    if !valid_slug(&slug) {
        errors.push(FieldError::new(
            "slug",
            format!("{slug:?} is not a slug: use lowercase letters, digits and dashes"),
        ));
    } else if parent.is_none() && RESERVED_SLUGS.contains(&slug.as_str()) {
        errors.push(FieldError::new(
            "slug",
            format!("{slug:?} is reserved for the service's own paths; choose another slug"),
        ));
    }
    let scopes = body
        .api_key_scopes
        .clone()
        .unwrap_or_else(|| SCOPES.iter().map(|s| s.to_string()).collect());
    check_scopes(&scopes, &mut errors, "apiKeyScopes");
    let metadata = body.metadata.clone().unwrap_or_else(|| json!({}));
    if !metadata.is_object() {
        errors.push(FieldError::new("metadata", "must be an object"));
    }
    let expires = key_expiry("apiKeyDaysValid", body.api_key_days_valid, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (key, hash) = auth::new_key();
    let org = state
        .store
        .create_org_with_key(
            &NewOrg {
                parent_id: parent,
                name,
                slug,
                metadata,
            },
            &NewApiKey {
                hash: &hash,
                prefix: &key[..13],
                name: Some("initial"),
                scopes: &scopes,
                expires_at: expires,
                user_id: None,
            },
        )
        .await?;
    let mut data = org_json(&org);
    data["apiKey"] = json!(key);
    data["apiKeyScopes"] = json!(scopes);
    Ok(success(StatusCode::CREATED, data))
}

/// POST /v2/organizations: a top-level organization (bootstrap admin only).
pub async fn create_top(
    State(state): State<AppState>,
    who: Principal,
    body: JsonBody,
) -> ApiResult {
    let body: CreateOrg = input::typed(body.value, ORG_FIELDS)?;
    if who != Principal::Bootstrap {
        return Err(ApiError::forbidden(
            "bootstrap_admin_required",
            "only the bootstrap admin token can create top-level organizations; use POST /v2/organizations/{orgId}/organizations for a child organization",
        ));
    }
    create_org_with_key(&state, None, body).await
}

/// POST /v2/organizations/{orgId}/organizations: a child organization and its first API key
/// (returned once).
pub async fn create_child(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let body: CreateOrg = input::typed(body.value, ORG_FIELDS)?;
    check_org_access(&state, &who, org_id).await?;
    who.require("admin")?;
    create_org_with_key(&state, Some(org_id), body).await
}

pub async fn list_children(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
) -> ApiResult {
    check_org_access(&state, &who, org_id).await?;
    who.require("read")?;
    let orgs = state.store.list_child_orgs(org_id).await?;
    Ok(success(
        StatusCode::OK,
        Value::Array(orgs.iter().map(org_json).collect()),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
) -> ApiResult {
    let org = check_org_access(&state, &who, org_id).await?;
    who.require("read")?;
    Ok(success(StatusCode::OK, org_json(&org)))
}

/// Branding and name; `null` clears a branding field.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatchOrg {
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    brand_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    dark_brand_color: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    logo_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    theme: Option<Option<String>>,
    hide_branding: Option<bool>,
    metadata: Option<Value>,
    /// Origins allowed to embed the booking pages (`null`: inherit the parent's).
    #[serde(default, deserialize_with = "nullable_list")]
    embed_allowed_origins: Option<Option<Vec<String>>>,
}

/// Tell "absent" (`None`) from "null" (`Some(None)`).
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

fn nullable_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Ok(Some(Option::<Vec<String>>::deserialize(d)?))
}

/// The most origins one organization may allow to embed its pages.
pub const MAX_EMBED_ORIGINS: usize = 50;

/// Check `embedAllowedOrigins`: each an origin (`https://host[:port]`, no path), normalised.
pub fn embed_origins(
    v: &Option<Option<Vec<String>>>,
    errors: &mut Vec<FieldError>,
) -> Option<Option<Vec<String>>> {
    let list = match v {
        None => return None,
        Some(None) => return Some(None),
        Some(Some(l)) => l,
    };
    if list.len() > MAX_EMBED_ORIGINS {
        errors.push(FieldError::new(
            "embedAllowedOrigins",
            format!("at most {MAX_EMBED_ORIGINS} origins"),
        ));
    }
    let mut out = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let parsed = url::Url::parse(o.trim()).ok().filter(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.path() == "/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty()
        });
        match parsed {
            Some(u) => out.push(u.origin().ascii_serialization()),
            None => errors.push(FieldError::new(
                format!("embedAllowedOrigins[{i}]"),
                format!("{o:?} is not an origin: use scheme://host[:port], such as https://www.example.com"),
            )),
        }
    }
    Some(Some(out))
}

fn valid_color(c: &str) -> bool {
    let hex = c.strip_prefix('#').unwrap_or("");
    (hex.len() == 6 || hex.len() == 3) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

pub async fn patch(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let body: PatchOrg = input::typed(body.value, ORG_FIELDS)?;
    check_org_access(&state, &who, org_id).await?;
    who.require("admin")?;
    let mut errors = Vec::new();
    for (field, v) in [
        ("brandColor", &body.brand_color),
        ("darkBrandColor", &body.dark_brand_color),
    ] {
        if let Some(Some(c)) = v {
            if !valid_color(c) {
                errors.push(FieldError::new(
                    field,
                    format!("{c:?} is not a colour: use #RRGGBB"),
                ));
            }
        }
    }
    if let Some(Some(u)) = &body.logo_url {
        let ok = url::Url::parse(u)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok {
            errors.push(FieldError::new("logoUrl", "must be an http(s) URL"));
        }
    }
    if let Some(Some(t)) = &body.theme {
        if !matches!(t.as_str(), "light" | "dark") {
            errors.push(FieldError::new(
                "theme",
                "must be \"light\", \"dark\" or null",
            ));
        }
    }
    if let Some(n) = &body.name {
        if n.trim().is_empty() || n.len() > 200 {
            errors.push(FieldError::new("name", "must be 1 to 200 characters"));
        }
    }
    if let Some(m) = &body.metadata {
        if !m.is_object() {
            errors.push(FieldError::new("metadata", "must be an object"));
        }
    }
    let embed = embed_origins(&body.embed_allowed_origins, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let p = OrgPatch {
        name: body.name.map(|n| n.trim().to_string()),
        brand_color: body.brand_color,
        dark_brand_color: body.dark_brand_color,
        logo_url: body.logo_url,
        theme: body.theme,
        hide_branding: body.hide_branding,
        metadata: body.metadata,
        embed_origins: embed,
    };
    let org = state
        .store
        .update_org(org_id, &p)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("organization {org_id}")))?;
    Ok(success(StatusCode::OK, org_json(&org)))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateKey {
    scopes: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    days_valid: Option<u32>,
    /// A user's key (as Cal.com's): calls that take a userId default to this user, and lists
    /// show this user's resources only.
    #[serde(default)]
    user_id: Option<i64>,
}

/// POST /v2/organizations/{orgId}/api-keys: another key, returned once. A key can only grant
/// scopes it holds itself.
pub async fn create_key(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let body: CreateKey = input::typed(body.value, ORG_FIELDS)?;
    check_org_access(&state, &who, org_id).await?;
    who.require("admin")?;
    let mut errors = Vec::new();
    check_scopes(&body.scopes, &mut errors, "scopes");
    let expires = key_expiry("daysValid", body.days_valid, &mut errors);
    // A user's key makes keys for its own user only.
    let user_id = who.acting_user(body.user_id)?;
    if let Some(u) = user_id {
        if state.store.get_user(org_id, u).await?.is_none() {
            errors.push(FieldError::new(
                "userId",
                format!("no user {u} in organization {org_id}"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let (key, hash) = auth::new_key();
    let id = state
        .store
        .create_api_key(
            org_id,
            &NewApiKey {
                hash: &hash,
                prefix: &key[..13],
                name: body.name.as_deref(),
                scopes: &body.scopes,
                expires_at: expires,
                user_id,
            },
        )
        .await?;
    Ok(success(
        StatusCode::CREATED,
        json!({
            "id": id,
            "organizationId": org_id,
            "apiKey": key,
            "scopes": body.scopes,
            "name": body.name,
            "userId": user_id,
            "expiresAt": expires.map(|t| t.to_string()),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUser {
    name: String,
    email: String,
    #[serde(default)]
    time_zone: Option<String>,
    /// Unique in the organization; from the e-mail address's local part when absent.
    #[serde(default)]
    username: Option<String>,
}

/// A username: 1 to 100 lowercase letters, digits, dashes, dots and underscores.
fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 100
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
}

pub async fn create_user(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
    body: JsonBody,
) -> ApiResult {
    let body: CreateUser = input::typed(body.value, ORG_FIELDS)?;
    check_org_access(&state, &who, org_id).await?;
    who.require("admin")?;
    let mut errors = Vec::new();
    let name = body.name.trim().to_string();
    if name.is_empty() || name.len() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    let email = body.email.trim().to_string();
    if !input::valid_email(&email) {
        errors.push(FieldError::new("email", "is not an e-mail address"));
    }
    let tz = body.time_zone.unwrap_or_else(|| "UTC".into());
    check_time_zone("timeZone", &tz, &mut errors);
    if let Some(u) = &body.username {
        if !valid_username(u) {
            errors.push(FieldError::new(
                "username",
                "use 1 to 100 lowercase letters, digits, dashes, dots and underscores",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let user = state
        .store
        .create_user(org_id, &name, &email, &tz, body.username.as_deref())
        .await?;
    Ok(success(StatusCode::CREATED, user_json(&user)))
}

pub async fn list_users(
    State(state): State<AppState>,
    who: Principal,
    Path(org_id): Path<i64>,
) -> ApiResult {
    check_org_access(&state, &who, org_id).await?;
    who.require("read")?;
    let users = state.store.list_users(org_id).await?;
    Ok(success(
        StatusCode::OK,
        Value::Array(users.iter().map(user_json).collect()),
    ))
}

pub async fn get_user(
    State(state): State<AppState>,
    who: Principal,
    Path((org_id, user_id)): Path<(i64, i64)>,
) -> ApiResult {
    check_org_access(&state, &who, org_id).await?;
    who.require("read")?;
    let user = state
        .store
        .get_user(org_id, user_id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("user {user_id}")))?;
    Ok(success(StatusCode::OK, user_json(&user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_colors() {
        assert_eq!(slugify("Acme Dental, Inc."), "acme-dental-inc");
        assert!(valid_slug("acme-1"));
        assert!(!valid_slug("Acme"));
        assert!(valid_color("#1a2B3c"));
        assert!(!valid_color("red"));
    }

    #[test]
    fn embed_origins_are_origins() {
        let mut errors = Vec::new();
        let ok = embed_origins(
            &Some(Some(vec![
                "https://www.Example.com".into(),
                "http://127.0.0.1:8080".into(),
            ])),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            ok,
            Some(Some(vec![
                "https://www.example.com".to_string(),
                "http://127.0.0.1:8080".to_string()
            ]))
        );
        for bad in [
            "https://x.example/page",
            "javascript:alert(1)",
            "*",
            "https://a.example/?q",
        ] {
            let mut errors = Vec::new();
            embed_origins(&Some(Some(vec![bad.into()])), &mut errors);
            assert_eq!(errors.len(), 1, "{bad}");
        }
        assert_eq!(embed_origins(&Some(None), &mut errors), Some(None));
        assert_eq!(embed_origins(&None, &mut errors), None);
    }
}
