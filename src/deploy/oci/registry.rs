//! Does the registry still have an image? `HEAD /v2/<repo>/manifests/<digest>` on OCIR with a
//! bearer token fetched through the signed OCI client (no registry password needed).

use crate::oci::client::{OciClient, Service};
use anyhow::Context;
use std::time::Duration;

/// `host/ns/repo@sha256:...` -> (`ns/repo`, `sha256:...`).
pub fn split_pinned(image: &str) -> anyhow::Result<(&str, &str)> {
    let (name, digest) = image.split_once('@').with_context(|| {
        format!("image `{image}` is not pinned by digest (expected REPOSITORY@sha256:...)")
    })?;
    let repo = name
        .split_once('/')
        .map(|(_, r)| r)
        .filter(|r| !r.is_empty())
        .with_context(|| {
            format!(
                "image `{image}` has no registry host (expected HOST/NAMESPACE/REPO@sha256:...)"
            )
        })?;
    if !digest.starts_with("sha256:") {
        anyhow::bail!("image `{image}`: `{digest}` is not a sha256 digest");
    }
    Ok((repo, digest))
}

/// True when the registry has the manifest (or index) of `image`; false on 404.
pub async fn manifest_exists(client: &OciClient, image: &str) -> anyhow::Result<bool> {
    let (repo, digest) = split_pinned(image)?;
    let token = client
        .registry()
        .token(Some(&format!("repository:{repo}:pull")))
        .await
        .context("fetching a registry token")?;
    let base = client.endpoint(Service::Registry)?;
    let url = format!(
        "{}/v2/{repo}/manifests/{digest}",
        base.as_str().trim_end_matches('/')
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;
    let r = http
        .head(&url)
        .bearer_auth(&token.token)
        .header("Accept", crate::image::spec::MANIFEST_ACCEPT)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("HEAD {url}: {}", e.without_url()))?;
    match r.status().as_u16() {
        200..=299 => Ok(true),
        404 => Ok(false),
        s => anyhow::bail!("HEAD {url} answered HTTP {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_references() {
        let (r, d) = split_pinned("syd.ocir.io/ns/calops@sha256:abc").unwrap();
        assert_eq!((r, d), ("ns/calops", "sha256:abc"));
        assert!(split_pinned("syd.ocir.io/ns/calops:latest").is_err());
        assert!(split_pinned("calops@sha256:abc").is_err());
        assert!(split_pinned("h/r@md5:x").is_err());
    }
}
