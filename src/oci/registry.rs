//! OCIR: a registry bearer token fetched with the API key (no auth token needed).
//!
//! `GET https://<region-key>.ocir.io/20180419/docker/token`, signed. The token can be used as
//! a Bearer token against the registry's `/v2/` API, or with `docker login -u BEARER_TOKEN`.

use crate::oci::client::{query, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::Deserialize;
use std::fmt;

/// A registry token. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawToken")]
pub struct RegistryToken {
    /// The bearer token (secret).
    pub token: String,
    /// Lifetime in seconds, when the registry says.
    pub expires_in: Option<u64>,
}

/// The answer as sent: Docker's token format has `token`, `access_token` or both (a serde
/// alias would reject an answer that has both as a duplicate field).
#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl From<RawToken> for RegistryToken {
    fn from(r: RawToken) -> RegistryToken {
        RegistryToken {
            token: r.token.or(r.access_token).unwrap_or_default(),
            expires_in: r.expires_in,
        }
    }
}

impl fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryToken")
            .field("token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Registry calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct Registry<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn registry(&self) -> Registry<'_> {
        Registry { client: self }
    }
}

impl Registry<'_> {
    /// The registry host for this client's region (e.g. `syd.ocir.io`), or the override.
    pub fn host(&self) -> Result<String, OciError> {
        let url = self.client.endpoint(Service::Registry)?;
        let host = url.host_str().unwrap_or_default().to_string();
        Ok(match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host,
        })
    }

    /// Fetch a bearer token for pushing and pulling. `scope` (e.g.
    /// `repository:ns/app:pull,push`) narrows it when given.
    pub async fn token(&self, scope: Option<&str>) -> Result<RegistryToken, OciError> {
        let path = format!("/20180419/docker/token{}", query(&[("scope", scope)]));
        let url = self.client.url(Service::Registry, &path)?;
        let resp = self.client.send(OciRequest::new(Method::GET, url)).await?;
        let token: RegistryToken = resp.json()?;
        if token.token.is_empty() {
            return Err(OciError::Other(format!(
                "the registry at {} returned an empty token (opc-request-id: {})",
                self.host()?,
                resp.opc_request_id().unwrap_or("none")
            )));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_with_token_access_token_or_both() {
        for body in [
            r#"{"token":"t1","expires_in":300}"#,
            r#"{"access_token":"t1"}"#,
            r#"{"token":"t1","access_token":"t1","expires_in":300}"#,
        ] {
            let t: RegistryToken = serde_json::from_str(body).unwrap();
            assert_eq!(t.token, "t1", "{body}");
        }
        let t: RegistryToken = serde_json::from_str("{}").unwrap();
        assert!(t.token.is_empty());
        assert!(!format!("{t:?}").contains("t1"));
    }
}
