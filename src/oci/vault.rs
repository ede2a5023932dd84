//! OCI Vault secret retrieval: `GetSecretBundle`
//! (`GET https://secrets.vaults.<region>.oci.oraclecloud.com/20190301/secretbundles/{secretId}`),
//! the current version of a secret, its content base64-encoded.
//!
//! The value comes back as a [`SecretValue`], which never shows itself in `Debug` or
//! `Display`, and no error made here contains the response body (it may hold the secret).
//!
//! ```no_run
//! # async fn demo(client: calops::oci::client::OciClient) -> Result<(), calops::oci::client::OciError> {
//! let password = client.vault().secret_bundle("ocid1.vaultsecret.oc1.ap-sydney-1.x").await?;
//! assert!(!format!("{password:?}").contains(password.expose()));
//! # Ok(()) }
//! ```

use crate::oci::client::{encode_path_segment, OciClient, OciError, OciRequest, Service};
use base64::Engine as _;
use reqwest::Method;

/// Vault calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct Vault<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn vault(&self) -> Vault<'_> {
        Vault { client: self }
    }
}

/// A secret's value. Shown as `<secret>`; [`SecretValue::expose`] hands out the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> SecretValue {
        SecretValue(value.into())
    }

    /// The secret itself: use it, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// The part of a secret bundle calops reads (`SecretBundle` / `Base64SecretBundleContentDetails`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    secret_bundle_content: Option<Content>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Content {
    content_type: Option<String>,
    content: Option<String>,
}

/// Decode a GetSecretBundle answer (pure). The error never contains the body.
pub fn decode_bundle(secret_id: &str, body: &[u8]) -> Result<SecretValue, String> {
    let bundle: Bundle = serde_json::from_slice(body)
        .map_err(|_| format!("the secret bundle of {secret_id} is not the expected JSON"))?;
    let content = bundle
        .secret_bundle_content
        .ok_or_else(|| format!("the secret bundle of {secret_id} has no content"))?;
    if content
        .content_type
        .as_deref()
        .is_some_and(|t| t != "BASE64")
    {
        return Err(format!(
            "the secret bundle of {secret_id} has content type {:?}; calops reads BASE64",
            content.content_type.unwrap_or_default()
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(content.content.unwrap_or_default().trim())
        .map_err(|_| format!("the content of secret {secret_id} is not base64"))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("the content of secret {secret_id} is not UTF-8 text"))?;
    Ok(SecretValue(text))
}

impl Vault<'_> {
    /// The current version of secret `secret_id`. A 404 (no such secret, or not allowed to read
    /// it: OCI does not tell them apart) is an [`OciError::Api`] with [`OciError::is_not_found`].
    pub async fn secret_bundle(&self, secret_id: &str) -> Result<SecretValue, OciError> {
        let url = self.client.url(
            Service::Secrets,
            &format!("/20190301/secretbundles/{}", encode_path_segment(secret_id)),
        )?;
        let resp = self.client.send(OciRequest::new(Method::GET, url)).await?;
        decode_bundle(secret_id, &resp.body).map_err(OciError::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_decode_and_errors_never_hold_the_body() {
        let body = serde_json::json!({
            "secretId": "ocid1.vaultsecret.oc1..s", "versionNumber": 3, "stages": ["CURRENT", "LATEST"],
            "secretBundleContent": {"contentType": "BASE64", "content": "aHVudGVyMg=="}
        });
        let v = decode_bundle("ocid1.vaultsecret.oc1..s", body.to_string().as_bytes()).unwrap();
        assert_eq!(v.expose(), "hunter2");
        assert_eq!(format!("{v:?}"), "<secret>");
        for bad in [
            r#"{"secretBundleContent": {"contentType": "BASE64", "content": "hunter2!"}}"#,
            r#"{"secretBundleContent": {"contentType": "TEXT", "content": "hunter2"}}"#,
            r#"{"hunter2": true}"#,
            "hunter2",
        ] {
            let e = decode_bundle("ocid1.vaultsecret.oc1..s", bad.as_bytes()).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("ocid1.vaultsecret.oc1..s"), "{e}");
        }
    }
}
