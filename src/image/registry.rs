//! A client for the OCI distribution API: manifests, blobs (HEAD, GET, mount, monolithic and
//! chunked upload), with the bearer-token challenge flow and Basic auth.

use super::auth::{parse_challenge, Challenge, Credentials};
use super::spec::{sha256_digest, MANIFEST_ACCEPT};
use crate::error::actionable;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size.
pub const CHUNK_SIZE: usize = 8 * 1024 * 1024;

/// What a client did, for reports and tests ("a re-push uploads no blob").
#[derive(Debug, Default)]
pub struct Stats {
    pub blobs_uploaded: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub blobs_skipped: AtomicU64,
    pub blobs_mounted: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StatsSnapshot {
    pub blobs_uploaded: u64,
    pub bytes_uploaded: u64,
    pub blobs_skipped: u64,
    pub blobs_mounted: u64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            blobs_uploaded: self.blobs_uploaded.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            blobs_skipped: self.blobs_skipped.load(Ordering::Relaxed),
            blobs_mounted: self.blobs_mounted.load(Ordering::Relaxed),
        }
    }
}

/// A manifest as fetched: its bytes, content type and digest.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Bytes,
    pub content_type: Option<String>,
    pub digest: String,
}

/// One registry (host[:port]); scopes are per repository.
pub struct RegistryClient {
    http: reqwest::Client,
    registry: String,
    base_url: String,
    creds: Option<Credentials>,
    creds_from: String,
    /// Bearer tokens by scope set.
    tokens: Mutex<HashMap<String, String>>,
    /// The registry asked for Basic auth.
    basic: Mutex<bool>,
    pub stats: Stats,
}

impl RegistryClient {
    /// `plain_http` is for loopback test registries only.
    pub fn new(
        registry: &str,
        api_host: &str,
        plain_http: bool,
        creds: Option<Credentials>,
        creds_from: &str,
    ) -> anyhow::Result<RegistryClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("calops/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let scheme = if plain_http { "http" } else { "https" };
        Ok(RegistryClient {
            http,
            registry: registry.to_string(),
            base_url: format!("{scheme}://{api_host}"),
            creds,
            creds_from: creds_from.to_string(),
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(false),
            stats: Stats::default(),
        })
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else {
            self.url(location)
        }
    }

    fn auth_header(&self, scope_key: &str) -> Option<String> {
        if *self.basic.lock().unwrap() {
            return self.creds.as_ref().map(Credentials::basic_header);
        }
        self.tokens
            .lock()
            .unwrap()
            .get(scope_key)
            .map(|t| format!("Bearer {t}"))
    }

    /// Send a request, answering one auth challenge. `scopes` are token scopes such as
    /// `repository:a/b:pull,push`.
    async fn send(&self, req: RequestBuilder, scopes: &[String]) -> anyhow::Result<Response> {
        let key = scopes.join(" ");
        let attempt = |req: &RequestBuilder| -> anyhow::Result<RequestBuilder> {
            let r = req
                .try_clone()
                .ok_or_else(|| anyhow::anyhow!("internal: request body cannot be retried"))?;
            Ok(match self.auth_header(&key) {
                Some(h) => r.header(AUTHORIZATION, h),
                None => r,
            })
        };
        let resp = attempt(&req)?.send().await.map_err(|e| self.net_error(e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let had_auth = self.auth_header(&key).is_some();
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref(), scopes).await?;
                self.tokens.lock().unwrap().insert(key.clone(), token);
            }
            Some(Challenge::Basic { .. }) if self.creds.is_some() && !had_auth => {
                *self.basic.lock().unwrap() = true;
            }
            _ => return Err(self.unauthorized(self.creds.is_some())),
        }
        let resp = attempt(&req)?.send().await.map_err(|e| self.net_error(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(self.unauthorized(self.creds.is_some()));
        }
        Ok(resp)
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> anyhow::Result<String> {
        let mut url = url::Url::parse(realm).map_err(|e| {
            anyhow::anyhow!(
                "registry {} sent a bad token realm `{realm}`: {e}",
                self.registry
            )
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let mut req = self.http.get(url);
        if let Some(c) = &self.creds {
            req = req.header(AUTHORIZATION, c.basic_header());
        }
        let resp = req.send().await.map_err(|e| self.net_error(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            return Err(self.unauthorized(self.creds.is_some()));
        }
        if !resp.status().is_success() {
            anyhow::bail!(
                "token service {realm} for registry {} answered HTTP {}",
                self.registry,
                resp.status()
            );
        }
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = resp
            .json()
            .await
            .map_err(|e| anyhow::anyhow!("token service {realm} returned bad JSON: {e}"))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| anyhow::anyhow!("token service {realm} returned no token"))
    }

    fn unauthorized(&self, had_creds: bool) -> anyhow::Error {
        if had_creds {
            actionable(
                format!(
                    "registry {} rejected the credentials from {} (HTTP 401 Unauthorized)",
                    self.registry, self.creds_from
                ),
                format!(
                    "check the username and password; run `docker login {}` again or fix the secret the profile references",
                    self.registry
                ),
            )
        } else {
            actionable(
                format!(
                    "registry {} requires authentication and no credentials were found in {}",
                    self.registry, self.creds_from
                ),
                format!(
                    "run `docker login {}`, or pass --username-env/--password-env naming variables that hold them",
                    self.registry
                ),
            )
        }
    }

    fn net_error(&self, e: reqwest::Error) -> anyhow::Error {
        let mut detail = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            detail.push_str(": ");
            detail.push_str(&s.to_string());
            src = s.source();
        }
        actionable(
            format!("cannot reach registry {} at {}: {detail}", self.registry, self.base_url),
            "check the registry address and your network; a local plain-HTTP registry needs --insecure-registry",
        )
    }

    async fn status_error(&self, what: &str, resp: Response) -> anyhow::Error {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let errs = v.get("errors")?.as_array()?.clone();
                Some(
                    errs.iter()
                        .map(|e| {
                            format!(
                                "{}: {}",
                                e.get("code").and_then(|c| c.as_str()).unwrap_or("?"),
                                e.get("message").and_then(|c| c.as_str()).unwrap_or("")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })
            .unwrap_or_else(|| body.chars().take(300).collect());
        anyhow::anyhow!(
            "{what} on registry {}: HTTP {status} {detail}",
            self.registry
        )
    }

    fn pull(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull")]
    }

    fn push(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull,push")]
    }

    /// GET a manifest or index by tag or digest.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> anyhow::Result<FetchedManifest> {
        let req = self
            .http
            .get(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header("Accept", MANIFEST_ACCEPT);
        let resp = self.send(req, &Self::pull(repo)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(actionable(
                format!("image {}/{repo}:{reference} not found", self.registry),
                "check the base image reference (repository, tag or digest) and that it was pushed",
            ));
        }
        if !resp.status().is_success() {
            return Err(self
                .status_error(&format!("GET manifest {repo}:{reference}"), resp)
                .await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await?;
        let digest = sha256_digest(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            anyhow::bail!(
                "manifest {repo}@{reference} from {} has digest {digest}: content does not match",
                self.registry
            );
        }
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// PUT a manifest or index under a tag or digest; returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> anyhow::Result<String> {
        let req = self
            .http
            .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
            .header(CONTENT_TYPE, media_type)
            .body(bytes.clone());
        let resp = self.send(req, &Self::push(repo)).await?;
        if !resp.status().is_success() {
            return Err(self
                .status_error(&format!("PUT manifest {repo}:{reference}"), resp)
                .await);
        }
        Ok(sha256_digest(&bytes))
    }

    /// HEAD a blob: does the repository have it?
    pub async fn blob_exists(
        &self,
        repo: &str,
        digest: &str,
        for_push: bool,
    ) -> anyhow::Result<bool> {
        let req = self
            .http
            .head(self.url(&format!("/v2/{repo}/blobs/{digest}")));
        let scopes = if for_push {
            Self::push(repo)
        } else {
            Self::pull(repo)
        };
        let resp = self.send(req, &scopes).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .status_error(&format!("HEAD blob {repo}@{digest}"), resp)
                .await),
        }
    }

    /// GET a blob and check its digest.
    pub async fn get_blob(&self, repo: &str, digest: &str) -> anyhow::Result<Bytes> {
        let req = self
            .http
            .get(self.url(&format!("/v2/{repo}/blobs/{digest}")));
        let resp = self.send(req, &Self::pull(repo)).await?;
        if !resp.status().is_success() {
            return Err(self
                .status_error(&format!("GET blob {repo}@{digest}"), resp)
                .await);
        }
        let bytes = resp.bytes().await?;
        let got = sha256_digest(&bytes);
        anyhow::ensure!(
            got == digest,
            "blob {repo}@{digest} from {} has digest {got}: content does not match",
            self.registry
        );
        Ok(bytes)
    }

    /// Try a cross-repository mount. `Ok(true)` when mounted; `Ok(false)` when the registry
    /// declined (the caller uploads instead).
    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &str) -> anyhow::Result<bool> {
        let req = self
            .http
            .post(self.url(&format!(
                "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
            )))
            .header(CONTENT_LENGTH, 0);
        let mut scopes = Self::push(repo);
        scopes.push(format!("repository:{from}:pull"));
        let resp = self.send(req, &scopes).await?;
        match resp.status() {
            StatusCode::CREATED => {
                self.stats.blobs_mounted.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            s if s.is_success() => {
                // 202: an upload session was opened instead; cancel it politely.
                if let Some(loc) = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
                    let del = self.http.delete(self.resolve(loc));
                    let _ = self.send(del, &Self::push(repo)).await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    /// Upload a blob: one PUT when small, PATCH chunks then PUT when large.
    /// `progress` is called with the number of bytes sent so far.
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &str,
        data: Bytes,
        progress: &(dyn Fn(u64) + Sync),
    ) -> anyhow::Result<()> {
        let scopes = Self::push(repo);
        let start = self
            .http
            .post(self.url(&format!("/v2/{repo}/blobs/uploads/")))
            .header(CONTENT_LENGTH, 0);
        let resp = self.send(start, &scopes).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self
                .status_error(&format!("start upload to {repo}"), resp)
                .await);
        }
        let mut location = self.location(&resp)?;
        if data.len() > CHUNK_SIZE {
            let mut offset = 0usize;
            while offset < data.len() {
                let end = (offset + CHUNK_SIZE).min(data.len());
                let chunk = data.slice(offset..end);
                let req = self
                    .http
                    .patch(&location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header("Content-Range", format!("{}-{}", offset, end - 1))
                    .header(CONTENT_LENGTH, chunk.len())
                    .body(chunk);
                let resp = self.send(req, &scopes).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(self
                        .status_error(&format!("upload chunk to {repo}"), resp)
                        .await);
                }
                location = self.location(&resp)?;
                offset = end;
                progress(offset as u64);
            }
            let req = self
                .http
                .request(Method::PUT, with_digest(&location, digest))
                .header(CONTENT_LENGTH, 0);
            let resp = self.send(req, &scopes).await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self
                    .status_error(&format!("finish upload of {digest} to {repo}"), resp)
                    .await);
            }
        } else {
            let len = data.len();
            let req = self
                .http
                .put(with_digest(&location, digest))
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len)
                .body(data);
            let resp = self.send(req, &scopes).await?;
            if resp.status() != StatusCode::CREATED {
                return Err(self
                    .status_error(&format!("upload {digest} to {repo}"), resp)
                    .await);
            }
            progress(len as u64);
        }
        self.stats.blobs_uploaded.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn location(&self, resp: &Response) -> anyhow::Result<String> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow::anyhow!("registry {} sent no upload Location", self.registry))?;
        Ok(self.resolve(loc))
    }
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_appended_to_upload_locations() {
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u?_state=x", "sha256:1"),
            "http://r/v2/a/blobs/uploads/u?_state=x&digest=sha256:1"
        );
        assert_eq!(
            with_digest("/v2/a/blobs/uploads/u", "sha256:1"),
            "/v2/a/blobs/uploads/u?digest=sha256:1"
        );
    }
}
