//! What a booking page's path names (`/{org path}/{host}/{event type}`): the organization
//! chain, the host and the event type, from the cache when it has them (see
//! [`super::cache`]), else read and kept.

use super::cache::{Booker, BookerPath};
use super::{Result, Store};
use std::sync::Arc;

impl Store {
    /// The organization at the slug path `org` (its ancestors after it), its host `user` and
    /// that host's event type `event_type`; `None` when any of them does not exist. Slugs are
    /// checked by the caller.
    pub async fn booker(
        &self,
        org: &[String],
        user: &str,
        event_type: &str,
    ) -> Result<Option<Arc<Booker>>> {
        let path: BookerPath = (org.join("."), user.to_string(), event_type.to_string());
        if let Some(b) = self.cache.booker(&path) {
            return Ok(Some(b));
        }
        let ticket = self.cache.ticket();
        let chain = self.org_chain_by_path(org).await?;
        let Some(first) = chain.first() else {
            return Ok(None);
        };
        let Some(user) = self.user_by_slug(first.id, user).await? else {
            return Ok(None);
        };
        let Some(event_type) = self
            .event_type_by_slug(first.id, user.id, event_type)
            .await?
        else {
            return Ok(None);
        };
        let b = Arc::new(Booker {
            chain,
            user,
            event_type,
        });
        if let Some(t) = ticket {
            self.cache.put_booker(t, path, b.clone());
        }
        Ok(Some(b))
    }
}
