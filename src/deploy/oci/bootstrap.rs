//! State bootstrap: on first use, find the Object Storage namespace and create the private,
//! versioned state bucket that holds the Terraform state, the deploy lock and the releases.

use crate::oci::client::OciClient;
use crate::oci::objectstorage::CreateBucket;

/// What the bootstrap found or made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StateLocation {
    pub namespace: String,
    pub bucket: String,
    /// True when this run created the bucket.
    pub created: bool,
}

/// The namespace (`pinned`, else asked from the API), and the bucket, created when missing.
pub async fn ensure_state_bucket(
    client: &OciClient,
    pinned_namespace: Option<&str>,
    bucket: &str,
    compartment_id: &str,
) -> anyhow::Result<StateLocation> {
    let os = client.object_storage();
    let namespace = match pinned_namespace {
        Some(ns) => ns.to_string(),
        None => os.namespace().await.map_err(|e| {
            crate::error::actionable(
                format!("could not look up the Object Storage namespace: {e}"),
                "pin it in the profile: [oci] object_storage_namespace = \"...\" (`oci os ns get` prints it)",
            )
        })?,
    };
    if let Some(b) = os.get_bucket(&namespace, bucket).await? {
        if b.public_access_type
            .as_deref()
            .is_some_and(|p| p != "NoPublicAccess")
        {
            return Err(crate::error::actionable(
                format!("the state bucket `{bucket}` is public ({}); it holds Terraform state and deploy records", b.public_access_type.unwrap_or_default()),
                format!("make it private: oci os bucket update --name {bucket} --public-access-type NoPublicAccess"),
            ));
        }
        return Ok(StateLocation {
            namespace,
            bucket: bucket.to_string(),
            created: false,
        });
    }
    let created = match os
        .create_bucket(&namespace, &CreateBucket::private(bucket, compartment_id))
        .await
    {
        Ok(_) => true,
        // Another deploy created it meanwhile.
        Err(e) if e.status() == Some(409) => false,
        Err(e) => {
            return Err(crate::error::actionable(
                format!("could not create the state bucket `{bucket}` in namespace {namespace}: {e}"),
                "check that the API key's user may manage buckets in the profile's compartment, or create the bucket and set [state] bucket",
            ))
        }
    };
    Ok(StateLocation {
        namespace,
        bucket: bucket.to_string(),
        created,
    })
}
