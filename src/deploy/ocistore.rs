//! [`ObjectStore`] on OCI Object Storage: create-only puts use `If-None-Match: *`, compare-and-
//! swap uses `If-Match: <etag>`, deletes are conditional on the etag. The deploy lock and the
//! release ledger of the OCI target run on this, with the same code as the local target.

use super::store::{Etag, ObjectStore, StoreError};
use crate::oci::client::{OciClient, OciError};
use crate::oci::objectstorage::PutCondition;
use std::sync::Arc;

#[derive(Clone)]
pub struct OciStore {
    client: Arc<OciClient>,
    namespace: String,
    bucket: String,
}

impl OciStore {
    pub fn new(
        client: Arc<OciClient>,
        namespace: impl Into<String>,
        bucket: impl Into<String>,
    ) -> Self {
        OciStore {
            client,
            namespace: namespace.into(),
            bucket: bucket.into(),
        }
    }
}

fn map(key: &str, e: OciError) -> StoreError {
    if e.is_conflict() {
        StoreError::Conflict(format!("`{key}`: {e}"))
    } else {
        StoreError::Io(format!("object `{key}`: {e}"))
    }
}

impl ObjectStore for OciStore {
    async fn create(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        let r = self
            .client
            .object_storage()
            .put_object(
                &self.namespace,
                &self.bucket,
                key,
                body.to_vec(),
                PutCondition::CreateOnly,
                Some("application/json"),
            )
            .await
            .map_err(|e| map(key, e))?;
        Ok(Etag(r.etag))
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        let r = self
            .client
            .object_storage()
            .get_object(&self.namespace, &self.bucket, key)
            .await
            .map_err(|e| map(key, e))?;
        Ok(r.map(|d| (d.body.to_vec(), Etag(d.meta.etag))))
    }

    async fn replace(&self, key: &str, body: &[u8], etag: &Etag) -> Result<Etag, StoreError> {
        let r = self
            .client
            .object_storage()
            .put_object(
                &self.namespace,
                &self.bucket,
                key,
                body.to_vec(),
                PutCondition::IfMatch(etag.0.clone()),
                Some("application/json"),
            )
            .await
            .map_err(|e| map(key, e))?;
        Ok(Etag(r.etag))
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        let r = self
            .client
            .object_storage()
            .put_object(
                &self.namespace,
                &self.bucket,
                key,
                body.to_vec(),
                PutCondition::Any,
                Some("application/json"),
            )
            .await
            .map_err(|e| map(key, e))?;
        Ok(Etag(r.etag))
    }

    async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        self.client
            .object_storage()
            .delete_object(&self.namespace, &self.bucket, key, Some(&etag.0))
            .await
            .map(|_| ())
            .map_err(|e| map(key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .client
            .object_storage()
            .list_all_objects(&self.namespace, &self.bucket, Some(prefix))
            .await
            .map_err(|e| map(prefix, e))?
            .into_iter()
            .map(|o| o.name)
            .collect();
        names.sort();
        Ok(names)
    }
}
