//! Identity: the tenancy's home region, where OCI accepts IAM writes (dynamic groups, policies).
//!
//! `GET /20160918/tenancies/{id}` gives the home region's key (`SYD`), and
//! `GET /20160918/tenancies/{id}/regionSubscriptions` the subscribed regions with their keys and
//! names; [`home_region`] picks the name. The profile can pin it (`[oci] home_region`) so that a
//! plan needs no such call.

use crate::oci::client::{encode_path_segment, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// GetTenancy (the fields calops uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenancy {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// e.g. `SYD`.
    #[serde(default)]
    pub home_region_key: Option<String>,
}

/// One element of ListRegionSubscriptions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionSubscription {
    /// e.g. `SYD`.
    pub region_key: String,
    /// e.g. `ap-sydney-1`.
    pub region_name: String,
    /// `READY` or `IN_PROGRESS`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub is_home_region: bool,
}

/// Identity calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn identity(&self) -> Identity<'_> {
        Identity { client: self }
    }
}

impl Identity<'_> {
    pub async fn tenancy(&self, tenancy_id: &str) -> Result<Tenancy, OciError> {
        let path = format!("/20160918/tenancies/{}", encode_path_segment(tenancy_id));
        let url = self.client.url(Service::Identity, &path)?;
        self.client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()
    }

    pub async fn region_subscriptions(
        &self,
        tenancy_id: &str,
    ) -> Result<Vec<RegionSubscription>, OciError> {
        let path = format!(
            "/20160918/tenancies/{}/regionSubscriptions",
            encode_path_segment(tenancy_id)
        );
        let url = self.client.url(Service::Identity, &path)?;
        self.client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()
    }

    /// The name of the tenancy's home region (`ap-sydney-1`).
    pub async fn home_region(&self, tenancy_id: &str) -> Result<String, OciError> {
        let tenancy = self.tenancy(tenancy_id).await?;
        let subs = self.region_subscriptions(tenancy_id).await?;
        home_region(&tenancy, &subs).map_err(OciError::Other)
    }
}

/// The home region's name: the subscription whose key is the tenancy's home region key (or,
/// without a key, the one flagged as home). The two must agree when both are given.
pub fn home_region(tenancy: &Tenancy, subs: &[RegionSubscription]) -> Result<String, String> {
    let flagged = subs.iter().find(|s| s.is_home_region);
    let by_key = tenancy
        .home_region_key
        .as_deref()
        .and_then(|k| subs.iter().find(|s| s.region_key.eq_ignore_ascii_case(k)));
    match (by_key, flagged) {
        (Some(a), Some(b)) if a.region_name != b.region_name => Err(format!(
            "the tenancy's home region key {} names {}, but the region subscriptions flag {} as home",
            tenancy.home_region_key.as_deref().unwrap_or("?"),
            a.region_name,
            b.region_name
        )),
        (Some(s), _) | (None, Some(s)) => Ok(s.region_name.clone()),
        (None, None) => Err(format!(
            "tenancy {} reports no home region (home region key {:?}, subscriptions {})",
            tenancy.id,
            tenancy.home_region_key,
            subs.iter()
                .map(|s| s.region_name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(key: &str, name: &str, home: bool) -> RegionSubscription {
        RegionSubscription {
            region_key: key.into(),
            region_name: name.into(),
            status: Some("READY".into()),
            is_home_region: home,
        }
    }

    #[test]
    fn the_home_region_comes_from_the_key_and_the_flag() {
        let t = |key: Option<&str>| Tenancy {
            id: "ocid1.tenancy.oc1..t".into(),
            name: None,
            home_region_key: key.map(String::from),
        };
        let subs = [
            sub("FRA", "eu-frankfurt-1", false),
            sub("SYD", "ap-sydney-1", true),
        ];
        assert_eq!(home_region(&t(Some("SYD")), &subs).unwrap(), "ap-sydney-1");
        assert_eq!(home_region(&t(None), &subs).unwrap(), "ap-sydney-1");
        let e = home_region(&t(Some("FRA")), &subs).unwrap_err();
        assert!(e.contains("flag ap-sydney-1"), "{e}");
        let none = [sub("FRA", "eu-frankfurt-1", false)];
        assert!(home_region(&t(None), &none).is_err());
        // The API answer's field names.
        let parsed: Vec<RegionSubscription> = serde_json::from_str(
            r#"[{"regionKey":"SYD","regionName":"ap-sydney-1","status":"READY","isHomeRegion":true}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0], sub("SYD", "ap-sydney-1", true));
    }
}
