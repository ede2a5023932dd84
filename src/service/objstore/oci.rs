//! OCI Object Storage through its native API, signed as the container instance's resource
//! principal: no S3 credentials (Customer Secret Keys) needed, only the stack's IAM grant
//! (`manage objects` in the bucket). Selected by the URL the OCI stack renders:
//! `https://objectstorage.REGION.oraclecloud.com/n/NAMESPACE/b/BUCKET`.
//!
//! Uploads are PutObject signed without the body hash, as Oracle's SDKs sign them
//! ([`crate::oci::signer::body_mode_for`]).

use super::{checked, ObjError, ObjFuture, ObjectStore};
use crate::oci::client::{OciClient, OciError, Service};
use crate::oci::objectstorage::{ListObjects, PutCondition};
use url::Url;

/// The checked native URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciSpec {
    /// `https://objectstorage.REGION.oraclecloud.com`
    pub endpoint: Url,
    pub region: String,
    pub namespace: String,
    pub bucket: String,
}

impl OciSpec {
    /// `https://objectstorage.REGION.oraclecloud.com/n/NAMESPACE/b/BUCKET`; `None` for any
    /// other URL.
    pub fn parse(u: &Url) -> Option<OciSpec> {
        let region = u
            .host_str()?
            .strip_prefix("objectstorage.")?
            .strip_suffix(".oraclecloud.com")?;
        if region.is_empty() || region.contains('.') || u.scheme() != "https" {
            return None;
        }
        let segs: Vec<&str> = u.path().trim_matches('/').split('/').collect();
        match segs.as_slice() {
            ["n", ns, "b", bucket] if !ns.is_empty() && !bucket.is_empty() => {
                let mut endpoint = u.clone();
                endpoint.set_path("/");
                endpoint.set_query(None);
                Some(OciSpec {
                    endpoint,
                    region: region.to_string(),
                    namespace: ns.to_string(),
                    bucket: bucket.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// Objects in one bucket, through a client signing as the resource principal.
pub struct OciStore {
    client: OciClient,
    spec: OciSpec,
}

impl OciStore {
    /// `client` signs the calls; its Object Storage endpoint is the URL's unless overridden
    /// (`CALOPS_ENDPOINT_OBJECTSTORAGE`, a private endpoint or a test server).
    pub fn new(client: OciClient, spec: &OciSpec) -> OciStore {
        let client = if client.endpoint(Service::ObjectStorage).ok()
            == Service::ObjectStorage
                .default_endpoint(client.region())
                .ok()
        {
            client.with_endpoint(Service::ObjectStorage, spec.endpoint.clone())
        } else {
            client
        };
        OciStore {
            client,
            spec: spec.clone(),
        }
    }

    fn fail(&self, what: &str, e: OciError) -> ObjError {
        // The first line: the status, OCI's code and message, the request id.
        let first = e.to_string();
        let first = first.lines().next().unwrap_or_default();
        ObjError(format!("{what} in {}: {first}", self.describe()))
    }
}

impl ObjectStore for OciStore {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: &'a str) -> ObjFuture<'a, ()> {
        Box::pin(async move {
            checked(key)?;
            self.client
                .object_storage()
                .put_object(
                    &self.spec.namespace,
                    &self.spec.bucket,
                    key,
                    body,
                    PutCondition::Any,
                    Some(content_type),
                )
                .await
                .map_err(|e| self.fail("writing an object", e))?;
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> ObjFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            checked(key)?;
            let got = self
                .client
                .object_storage()
                .get_object(&self.spec.namespace, &self.spec.bucket, key)
                .await
                .map_err(|e| self.fail("reading an object", e))?;
            Ok(got.map(|o| o.body.to_vec()))
        })
    }

    /// A one-object listing: needs only what the stack grants (`manage objects` in the
    /// bucket), unlike GetBucket.
    fn check(&self) -> ObjFuture<'_, ()> {
        Box::pin(async move {
            self.client
                .object_storage()
                .list_objects(
                    &self.spec.namespace,
                    &self.spec.bucket,
                    &ListObjects {
                        limit: Some(1),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| self.fail("listing objects", e))?;
            Ok(())
        })
    }

    fn describe(&self) -> String {
        format!(
            "oci://{}/{} ({})",
            self.spec.namespace, self.spec.bucket, self.spec.region
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_url_is_recognised() {
        let u =
            Url::parse("https://objectstorage.ap-sydney-1.oraclecloud.com/n/axns/b/calops-prod")
                .unwrap();
        let s = OciSpec::parse(&u).unwrap();
        assert_eq!(
            (s.region.as_str(), s.namespace.as_str(), s.bucket.as_str()),
            ("ap-sydney-1", "axns", "calops-prod")
        );
        assert_eq!(
            s.endpoint.as_str(),
            "https://objectstorage.ap-sydney-1.oraclecloud.com/"
        );
        for other in [
            "https://objectstorage.ap-sydney-1.oraclecloud.com/bucket",
            "http://objectstorage.ap-sydney-1.oraclecloud.com/n/ns/b/b",
            "https://s3.amazonaws.com/n/ns/b/b",
            "https://objectstorage.ap-sydney-1.oraclecloud.com/n//b/b",
        ] {
            assert_eq!(OciSpec::parse(&Url::parse(other).unwrap()), None, "{other}");
        }
    }
}
