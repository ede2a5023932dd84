//! Object Storage: namespace, buckets, and objects with create-only and compare-and-swap
//! writes (what deploy locks and release records are built on).
//!
//! ```no_run
//! # async fn demo(client: calops::oci::client::OciClient) -> Result<(), calops::oci::client::OciError> {
//! use calops::oci::objectstorage::PutCondition;
//! let os = client.object_storage();
//! let ns = os.namespace().await?;
//! // Take a lock: fails with a 412 (is_conflict) when someone else holds it.
//! let put = os.put_object(&ns, "calops-state", "locks/deploy", b"me".to_vec(), PutCondition::CreateOnly, None).await?;
//! // ... later, release it only if it is still ours:
//! os.delete_object(&ns, "calops-state", "locks/deploy", Some(&put.etag)).await?;
//! # Ok(()) }
//! ```

use crate::oci::client::{encode_path_segment, query, OciClient, OciError, OciRequest, Service};
use crate::oci::signer::BodyMode;
use base64::Engine as _;
use bytes::Bytes;
use md5::Digest as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Object Storage calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct ObjectStorage<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn object_storage(&self) -> ObjectStorage<'_> {
        ObjectStorage { client: self }
    }
}

/// A bucket, as GetBucket / CreateBucket return it (the fields calops uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub name: String,
    pub namespace: String,
    pub compartment_id: String,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub public_access_type: Option<String>,
    #[serde(default)]
    pub storage_tier: Option<String>,
    #[serde(default)]
    pub versioning: Option<String>,
    #[serde(default)]
    pub time_created: Option<String>,
}

/// CreateBucket details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBucket {
    pub name: String,
    pub compartment_id: String,
    /// `NoPublicAccess` (default), `ObjectRead`, ...
    pub public_access_type: String,
    /// `Standard` or `Archive`.
    pub storage_tier: String,
    /// `Enabled` or `Disabled`.
    pub versioning: String,
}

impl CreateBucket {
    /// A private, standard-tier bucket with versioning on (what calops uses for its state).
    pub fn private(name: &str, compartment_id: &str) -> CreateBucket {
        CreateBucket {
            name: name.to_string(),
            compartment_id: compartment_id.to_string(),
            public_access_type: "NoPublicAccess".into(),
            storage_tier: "Standard".into(),
            versioning: "Enabled".into(),
        }
    }
}

/// When a put may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// Always write.
    Any,
    /// `If-None-Match: *`: only if no object has that name (a 412 otherwise).
    CreateOnly,
    /// `If-Match: <etag>`: only if the object still has this ETag (a 412 otherwise).
    IfMatch(String),
}

/// What PutObject returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PutObjectResult {
    pub etag: String,
    pub version_id: Option<String>,
    pub content_md5: Option<String>,
}

/// Object metadata (HeadObject, and GetObject's headers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    pub etag: String,
    pub content_length: Option<u64>,
    pub content_type: Option<String>,
    pub last_modified: Option<String>,
    pub version_id: Option<String>,
    /// Base64 MD5 of the content (`content-md5`; absent for multipart objects).
    pub content_md5: Option<String>,
    /// `opc-meta-*` headers, without the prefix.
    pub metadata: BTreeMap<String, String>,
}

/// An object's content and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectData {
    pub meta: ObjectMeta,
    pub body: Bytes,
}

/// One entry of ListObjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectSummary {
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub md5: Option<String>,
    #[serde(default)]
    pub time_created: Option<String>,
    #[serde(default)]
    pub time_modified: Option<String>,
}

/// One page of ListObjects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPage {
    pub objects: Vec<ObjectSummary>,
    #[serde(default)]
    pub prefixes: Option<Vec<String>>,
    /// Pass as `start` to get the next page; `None` on the last page.
    #[serde(default)]
    pub next_start_with: Option<String>,
}

/// ListObjects parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjects {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub limit: Option<u32>,
}

fn obj_path(ns: &str, bucket: &str, name: &str) -> String {
    format!(
        "/n/{}/b/{}/o/{}",
        encode_path_segment(ns),
        encode_path_segment(bucket),
        encode_path_segment(name)
    )
}

fn meta_from(resp: &crate::oci::client::OciResponse) -> ObjectMeta {
    let metadata = resp
        .headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("opc-meta-")?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    ObjectMeta {
        etag: resp.header("etag").unwrap_or_default().to_string(),
        content_length: resp.header("content-length").and_then(|v| v.parse().ok()),
        content_type: resp.header("content-type").map(String::from),
        last_modified: resp.header("last-modified").map(String::from),
        version_id: resp.header("version-id").map(String::from),
        content_md5: resp.header("content-md5").map(String::from),
        metadata,
    }
}

/// `Ok(None)` for a 404, the value otherwise.
fn none_if_404<T>(r: Result<T, OciError>) -> Result<Option<T>, OciError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

impl ObjectStorage<'_> {
    fn url(&self, path: &str) -> Result<url::Url, OciError> {
        self.client.url(Service::ObjectStorage, path)
    }

    /// GetNamespace: the tenancy's Object Storage namespace.
    pub async fn namespace(&self) -> Result<String, OciError> {
        let req = OciRequest::new(Method::GET, self.url("/n/")?);
        self.client.send(req).await?.json::<String>()
    }

    /// GetBucket; `None` when it does not exist.
    pub async fn get_bucket(&self, ns: &str, bucket: &str) -> Result<Option<Bucket>, OciError> {
        let path = format!(
            "/n/{}/b/{}",
            encode_path_segment(ns),
            encode_path_segment(bucket)
        );
        let req = OciRequest::new(Method::GET, self.url(&path)?);
        none_if_404(self.client.send(req).await)?
            .map(|r| r.json())
            .transpose()
    }

    /// CreateBucket. A bucket that already exists is a 409 `BucketAlreadyExists`.
    pub async fn create_bucket(
        &self,
        ns: &str,
        details: &CreateBucket,
    ) -> Result<Bucket, OciError> {
        let path = format!("/n/{}/b/", encode_path_segment(ns));
        let req = OciRequest::new(Method::POST, self.url(&path)?).json(details)?;
        self.client.send(req).await?.json()
    }

    /// PutObject (signed without body headers, as the SDKs do), with an optional condition.
    /// A lost create-only or compare-and-swap race is an error with `is_conflict()`.
    pub async fn put_object(
        &self,
        ns: &str,
        bucket: &str,
        name: &str,
        body: impl Into<Bytes>,
        condition: PutCondition,
        content_type: Option<&str>,
    ) -> Result<PutObjectResult, OciError> {
        self.put_object_with_metadata(
            ns,
            bucket,
            name,
            body,
            condition,
            content_type,
            &BTreeMap::new(),
        )
        .await
    }

    /// [`put_object`](Self::put_object) with `opc-meta-*` metadata.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_object_with_metadata(
        &self,
        ns: &str,
        bucket: &str,
        name: &str,
        body: impl Into<Bytes>,
        condition: PutCondition,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<PutObjectResult, OciError> {
        let mut req = OciRequest::new(Method::PUT, self.url(&obj_path(ns, bucket, name))?)
            .body(body, BodyMode::ExcludeBody)
            .header(
                "content-type",
                content_type.unwrap_or("application/octet-stream"),
            )?;
        match &condition {
            PutCondition::Any => {}
            PutCondition::CreateOnly => req = req.header("if-none-match", "*")?,
            PutCondition::IfMatch(etag) => req = req.header("if-match", etag)?,
        }
        for (k, v) in metadata {
            req = req.header(&format!("opc-meta-{k}"), v)?;
        }
        let body_md5 =
            base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&req.body));
        match self.client.send(req).await {
            Ok(resp) => Ok(PutObjectResult {
                etag: resp.header("etag").unwrap_or_default().to_string(),
                version_id: resp.header("version-id").map(String::from),
                content_md5: resp.header("opc-content-md5").map(String::from),
            }),
            // A conditional put that was retried can lose to its own earlier attempt (the
            // write landed but the answer was lost). If the object now holds exactly our
            // bytes, that attempt won: report success rather than a conflict.
            Err(OciError::Api(e))
                if e.attempts > 1
                    && matches!(e.status, 409 | 412)
                    && condition != PutCondition::Any =>
            {
                match self.head_object(ns, bucket, name).await? {
                    Some(meta) if meta.content_md5.as_deref() == Some(body_md5.as_str()) => {
                        tracing::debug!(
                            object = name,
                            "conditional put: an earlier attempt had succeeded"
                        );
                        Ok(PutObjectResult {
                            etag: meta.etag,
                            version_id: meta.version_id,
                            content_md5: meta.content_md5,
                        })
                    }
                    _ => Err(OciError::Api(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// GetObject; `None` when it does not exist.
    pub async fn get_object(
        &self,
        ns: &str,
        bucket: &str,
        name: &str,
    ) -> Result<Option<ObjectData>, OciError> {
        let req = OciRequest::new(Method::GET, self.url(&obj_path(ns, bucket, name))?);
        Ok(
            none_if_404(self.client.send(req).await)?.map(|r| ObjectData {
                meta: meta_from(&r),
                body: r.body,
            }),
        )
    }

    /// HeadObject; `None` when it does not exist.
    pub async fn head_object(
        &self,
        ns: &str,
        bucket: &str,
        name: &str,
    ) -> Result<Option<ObjectMeta>, OciError> {
        let req = OciRequest::new(Method::HEAD, self.url(&obj_path(ns, bucket, name))?);
        Ok(none_if_404(self.client.send(req).await)?.map(|r| meta_from(&r)))
    }

    /// ListObjects: one page.
    pub async fn list_objects(
        &self,
        ns: &str,
        bucket: &str,
        opts: &ListObjects,
    ) -> Result<ObjectPage, OciError> {
        let limit = opts.limit.map(|l| l.to_string());
        let q = query(&[
            ("prefix", opts.prefix.as_deref()),
            ("start", opts.start.as_deref()),
            ("limit", limit.as_deref()),
            (
                "fields",
                Some("name,size,etag,md5,timeCreated,timeModified"),
            ),
        ]);
        let path = format!(
            "/n/{}/b/{}/o{q}",
            encode_path_segment(ns),
            encode_path_segment(bucket)
        );
        let req = OciRequest::new(Method::GET, self.url(&path)?);
        self.client.send(req).await?.json()
    }

    /// ListObjects over every page, for names starting with `prefix`.
    pub async fn list_all_objects(
        &self,
        ns: &str,
        bucket: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<ObjectSummary>, OciError> {
        let mut out = Vec::new();
        let mut opts = ListObjects {
            prefix: prefix.map(String::from),
            ..Default::default()
        };
        loop {
            let page = self.list_objects(ns, bucket, &opts).await?;
            out.extend(page.objects);
            match page.next_start_with {
                Some(next) if Some(&next) != opts.start.as_ref() => opts.start = Some(next),
                Some(next) => {
                    return Err(OciError::Other(format!(
                        "ListObjects on bucket {bucket} returned the same nextStartWith `{next}` twice; stopping to avoid a loop"
                    )))
                }
                None => return Ok(out),
            }
        }
    }

    /// DeleteObject, optionally only if the ETag still matches. `Ok(false)` when there was
    /// nothing to delete.
    pub async fn delete_object(
        &self,
        ns: &str,
        bucket: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<bool, OciError> {
        let mut req = OciRequest::new(Method::DELETE, self.url(&obj_path(ns, bucket, name))?);
        if let Some(etag) = if_match {
            req = req.header("if-match", etag)?;
        }
        Ok(none_if_404(self.client.send(req).await)?.is_some())
    }
}
