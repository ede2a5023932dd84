//! Monthly cost ESTIMATE per resource and in total, from the plan's planned values and the
//! prior state, priced with a table bundled with the binary (`prices.toml`) or given with
//! `--prices FILE`.

use super::plan_json::Plan;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The bundled table's text.
pub const BUNDLED: &str = include_str!("prices.toml");

/// Plainly: this is an estimate.
pub const DISCLAIMER: &str = "Estimate only: OCI list prices (see the price table's as_of date and source) times the planned sizes, for a 744-hour month; usage-based charges (storage, requests, egress), taxes, discounts and free-tier allowances are not included. Your bill is the source of truth.";

/// Resource types outside OCI's Always Free tier, with the product name.
pub const NOT_ALWAYS_FREE: &[(&str, &str)] = &[
    ("oci_psql_db_system", "OCI Database with PostgreSQL"),
    ("oci_redis_redis_cluster", "OCI Cache"),
    (
        "oci_container_instances_container_instance",
        "OCI Container Instances",
    ),
];

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ComputeRate {
    pub ocpu_hour: f64,
    pub memory_gb_hour: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresRate {
    pub ocpu_hour: f64,
    pub memory_gb_hour: f64,
    pub storage_gb_month: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CacheRate {
    pub memory_gb_hour: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LbRate {
    pub base_hour: f64,
    pub bandwidth_mbps_hour: f64,
    pub always_free_mbps: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageRate {
    pub storage_gb_month: f64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub as_of: String,
    pub source: String,
    pub currency: String,
    pub hours_per_month: f64,
    pub container_instance: BTreeMap<String, ComputeRate>,
    pub postgresql: PostgresRate,
    pub cache: CacheRate,
    pub load_balancer: LbRate,
    pub object_storage: StorageRate,
    #[serde(default)]
    pub free_types: Vec<String>,
    /// The Always Free allowance assumed for `oci-vm` profiles (see `freetier`).
    pub always_free: super::freetier::AlwaysFree,
    /// Compute instance shapes (the `oci-vm` target), beyond the allowance.
    pub compute: BTreeMap<String, ComputeRate>,
    pub block_volume: StorageRate,
}

impl PriceTable {
    pub fn bundled() -> PriceTable {
        // The bundled table is checked by a unit test; parsing it cannot fail in a release.
        PriceTable::parse(BUNDLED, "bundled prices.toml").expect("bundled prices.toml parses")
    }

    pub fn parse(text: &str, origin: &str) -> anyhow::Result<PriceTable> {
        let t: PriceTable = toml::from_str(text).map_err(|e| {
            crate::error::actionable(
                format!("price table {origin} is not valid: {e}"),
                "compare it with the bundled table (src/terraform/prices.toml in the calops source): \
                 it needs as_of, source, currency, hours_per_month and the [container_instance.*], \
                 [postgresql], [cache], [load_balancer], [object_storage], [always_free], [compute.*] \
                 and [block_volume] sections",
            )
        })?;
        if t.as_of.trim().is_empty() || t.source.trim().is_empty() {
            return Err(crate::error::actionable(
                format!("price table {origin} has an empty as_of or source"),
                "write the date the prices were read and where from",
            ));
        }
        if t.hours_per_month.is_nan() || t.hours_per_month <= 0.0 {
            anyhow::bail!("price table {origin}: hours_per_month must be positive");
        }
        Ok(t)
    }

    pub fn load(path: &Path) -> anyhow::Result<PriceTable> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the price table {}", path.display()))?;
        PriceTable::parse(&text, &path.display().to_string())
    }
}

/// The price of one resource's configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Priced {
    /// A monthly amount.
    Monthly { amount: f64, basis: String },
    /// No charge of its own.
    Free,
    /// Billed by usage, which a plan cannot know.
    UsageBased { note: String },
    /// Sizes not known until apply, or the type/shape is not in the table.
    Unknown { note: String },
}

impl Priced {
    pub fn amount(&self) -> f64 {
        match self {
            Priced::Monthly { amount, .. } => *amount,
            _ => 0.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceCost {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub before: Option<Priced>,
    pub after: Option<Priced>,
    pub monthly_before: f64,
    pub monthly_after: f64,
    pub outside_always_free: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CostReport {
    pub disclaimer: String,
    pub currency: String,
    pub prices_as_of: String,
    pub prices_source: String,
    pub resources: Vec<ResourceCost>,
    pub total_before: f64,
    pub total_after: f64,
    pub delta: f64,
    /// One line per product in the plan that OCI's Always Free tier does not cover.
    pub not_always_free: Vec<String>,
}

/// A number attribute. Terraform stores a number that float64 cannot hold exactly as its
/// decimal text (see [`super::cty`]): read that too.
fn num(v: &Value, ptr: &str) -> Option<f64> {
    match v.pointer(ptr)? {
        Value::String(s) => s.parse().ok().filter(|f: &f64| f.is_finite()),
        other => other.as_f64(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Resource types whose price [`price`] reads from their attribute values (sizes, shapes);
/// every other type is priced from its type alone.
pub const PRICED_BY_VALUES: &[&str] = &[
    "oci_container_instances_container_instance",
    "oci_psql_db_system",
    "oci_redis_redis_cluster",
    "oci_load_balancer_load_balancer",
];

/// Price one resource's values.
pub fn price(rtype: &str, v: &Value, t: &PriceTable) -> Priced {
    let h = t.hours_per_month;
    let unknown = |what: &str| Priced::Unknown {
        note: format!("{what} not known until apply"),
    };
    match rtype {
        "oci_container_instances_container_instance" => {
            let shape = v.get("shape").and_then(Value::as_str).unwrap_or("");
            let Some(rate) = t.container_instance.get(shape) else {
                return Priced::Unknown {
                    note: format!("shape {shape:?} is not in the price table"),
                };
            };
            let (Some(ocpus), Some(mem)) = (
                num(v, "/shape_config/0/ocpus"),
                num(v, "/shape_config/0/memory_in_gbs"),
            ) else {
                return unknown("shape_config ocpus/memory_in_gbs");
            };
            Priced::Monthly {
                amount: round2(h * (ocpus * rate.ocpu_hour + mem * rate.memory_gb_hour)),
                basis: format!("{shape}: {ocpus} OCPU + {mem} GB"),
            }
        }
        "oci_psql_db_system" => {
            let (Some(ocpus), Some(mem)) = (
                num(v, "/instance_ocpu_count"),
                num(v, "/instance_memory_size_in_gbs"),
            ) else {
                return unknown("instance_ocpu_count/instance_memory_size_in_gbs");
            };
            let nodes = num(v, "/instance_count").unwrap_or(1.0);
            let p = &t.postgresql;
            Priced::Monthly {
                amount: round2(h * nodes * (ocpus * p.ocpu_hour + mem * p.memory_gb_hour)),
                basis: format!(
                    "{nodes} node(s) x ({ocpus} OCPU + {mem} GB); storage billed by use"
                ),
            }
        }
        "oci_redis_redis_cluster" => {
            let (Some(nodes), Some(mem)) = (num(v, "/node_count"), num(v, "/node_memory_in_gbs"))
            else {
                return unknown("node_count/node_memory_in_gbs");
            };
            Priced::Monthly {
                amount: round2(h * nodes * mem * t.cache.memory_gb_hour),
                basis: format!("{nodes} node(s) x {mem} GB"),
            }
        }
        "oci_load_balancer_load_balancer" => {
            let shape = v.get("shape").and_then(Value::as_str).unwrap_or("");
            if shape != "flexible" {
                return Priced::Unknown {
                    note: format!("load balancer shape {shape:?} is not priced (use \"flexible\")"),
                };
            }
            let Some(max) = num(v, "/shape_details/0/maximum_bandwidth_in_mbps") else {
                return unknown("shape_details.maximum_bandwidth_in_mbps");
            };
            let lb = &t.load_balancer;
            let mut basis = format!("flexible, up to {max} Mbps");
            if max <= lb.always_free_mbps {
                basis.push_str(&format!(
                    "; free if it is your account's only {} Mbps Always Free load balancer",
                    lb.always_free_mbps
                ));
            }
            Priced::Monthly {
                amount: round2(h * (lb.base_hour + max * lb.bandwidth_mbps_hour)),
                basis,
            }
        }
        "oci_objectstorage_bucket" => Priced::UsageBased {
            note: format!(
                "{:.4} {}/GB-month stored, plus requests; 20 GB Always Free",
                t.object_storage.storage_gb_month, t.currency
            ),
        },
        "oci_artifacts_container_repository" => Priced::UsageBased {
            note: "image storage billed as Object Storage".into(),
        },
        other if t.free_types.iter().any(|f| f == other) => Priced::Free,
        other => Priced::Unknown {
            note: format!("{other} is not in the price table"),
        },
    }
}

/// Estimate every managed resource before (prior state) and after (planned values).
pub fn estimate(plan: &Plan, t: &PriceTable) -> CostReport {
    let mut by_addr: BTreeMap<&str, (&str, Option<&Value>, Option<&Value>)> = BTreeMap::new();
    for r in plan.prior.iter().filter(|r| r.mode == "managed") {
        by_addr
            .entry(&r.address)
            .or_insert((&r.rtype, None, None))
            .1 = Some(&r.values);
    }
    for r in plan.planned.iter().filter(|r| r.mode == "managed") {
        by_addr
            .entry(&r.address)
            .or_insert((&r.rtype, None, None))
            .2 = Some(&r.values);
    }
    let mut resources = Vec::new();
    let mut products = BTreeSet::new();
    for (addr, (rtype, before, after)) in by_addr {
        let before = before.map(|v| price(rtype, v, t));
        let after = after.map(|v| price(rtype, v, t));
        let outside = NOT_ALWAYS_FREE
            .iter()
            .find(|(ty, _)| *ty == rtype)
            .map(|(_, p)| p.to_string());
        if let (Some(p), Some(_)) = (&outside, &after) {
            products.insert(p.clone());
        }
        resources.push(ResourceCost {
            address: addr.to_string(),
            rtype: rtype.to_string(),
            monthly_before: before.as_ref().map_or(0.0, Priced::amount),
            monthly_after: after.as_ref().map_or(0.0, Priced::amount),
            before,
            after,
            outside_always_free: outside,
        });
    }
    let total_before = round2(resources.iter().map(|r| r.monthly_before).sum());
    let total_after = round2(resources.iter().map(|r| r.monthly_after).sum());
    CostReport {
        disclaimer: DISCLAIMER.to_string(),
        currency: t.currency.clone(),
        prices_as_of: t.as_of.clone(),
        prices_source: t.source.clone(),
        resources,
        total_before,
        total_after,
        delta: round2(total_after - total_before),
        not_always_free: products
            .into_iter()
            .map(|p| {
                format!("{p} is outside OCI's Always Free tier: it is billed from the first hour")
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::plan_json::{Plan, ResourceValues};
    use serde_json::json;

    fn rv(addr: &str, t: &str, v: Value) -> ResourceValues {
        ResourceValues {
            address: addr.into(),
            rtype: t.into(),
            mode: "managed".into(),
            values: v,
        }
    }

    fn plan(prior: Vec<ResourceValues>, planned: Vec<ResourceValues>) -> Plan {
        Plan {
            terraform_version: "1.11.4".into(),
            resource_changes: vec![],
            output_changes: vec![],
            prior,
            planned,
            applyable: true,
            errored: false,
        }
    }

    #[test]
    fn only_the_listed_types_are_priced_by_their_values() {
        let t = PriceTable::bundled();
        let sized = json!({"shape": "flexible", "shape_details": [{"maximum_bandwidth_in_mbps": 10}],
            "instance_ocpu_count": 2, "instance_memory_size_in_gbs": 32, "node_count": 1,
            "node_memory_in_gbs": 2, "shape_config": [{"ocpus": 1, "memory_in_gbs": 4}]});
        let mut types: Vec<String> = [
            "oci_objectstorage_bucket",
            "oci_artifacts_container_repository",
            "oci_core_vcn",
            "terraform_data",
            "oci_unknown_thing",
        ]
        .map(String::from)
        .to_vec();
        types.extend(t.free_types.iter().cloned());
        for ty in &types {
            assert!(!PRICED_BY_VALUES.contains(&ty.as_str()));
            assert_eq!(price(ty, &Value::Null, &t), price(ty, &sized, &t), "{ty}");
        }
        for ty in PRICED_BY_VALUES {
            assert_ne!(price(ty, &Value::Null, &t), price(ty, &sized, &t), "{ty}");
        }
    }

    #[test]
    fn bundled_table_parses_and_says_where_from() {
        let t = PriceTable::bundled();
        assert!(!t.as_of.is_empty());
        assert!(t.source.contains("oracle.com"));
        assert_eq!(t.currency, "USD");
        assert!(t.container_instance.contains_key("CI.Standard.A1.Flex"));
    }

    #[test]
    fn prices_each_sized_type() {
        let t = PriceTable::bundled();
        let ci = price(
            "oci_container_instances_container_instance",
            &json!({"shape": "CI.Standard.E4.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 4}]}),
            &t,
        );
        // 744 h * (1 * 0.025 + 4 * 0.0015) = 744 * 0.031 = 23.064
        assert_eq!(ci.amount(), 23.06);
        let pg = price(
            "oci_psql_db_system",
            &json!({"instance_ocpu_count": 2, "instance_memory_size_in_gbs": 32, "instance_count": 2}),
            &t,
        );
        // 744 * 2 * (2 * 0.098 + 32 * 0.0024) = 744 * 2 * 0.2728 = 405.93
        assert_eq!(pg.amount(), 405.93);
        let redis = price(
            "oci_redis_redis_cluster",
            &json!({"node_count": 1, "node_memory_in_gbs": 2}),
            &t,
        );
        assert_eq!(redis.amount(), 20.24); // 744 * 2 * 0.0136
        let lb = price(
            "oci_load_balancer_load_balancer",
            &json!({"shape": "flexible", "shape_details": [{"maximum_bandwidth_in_mbps": 10, "minimum_bandwidth_in_mbps": 10}]}),
            &t,
        );
        assert_eq!(lb.amount(), 9.15); // 744 * (0.0113 + 10 * 0.0001) = 9.1512
        assert!(matches!(lb, Priced::Monthly { ref basis, .. } if basis.contains("Always Free")));
        assert!(matches!(
            price("oci_objectstorage_bucket", &json!({}), &t),
            Priced::UsageBased { .. }
        ));
        assert_eq!(price("oci_core_vcn", &json!({}), &t), Priced::Free);
        assert!(matches!(
            price(
                "oci_container_instances_container_instance",
                &json!({"shape": "CI.Standard.E4.Flex", "shape_config": [{"ocpus": null}]}),
                &t
            ),
            Priced::Unknown { .. }
        ));
    }

    #[test]
    fn delta_against_prior_state_and_free_tier_flags() {
        let t = PriceTable::bundled();
        let small = json!({"shape": "CI.Standard.A1.Flex", "shape_config": [{"ocpus": 1, "memory_in_gbs": 6}]});
        let big = json!({"shape": "CI.Standard.A1.Flex", "shape_config": [{"ocpus": 2, "memory_in_gbs": 12}]});
        let ci = "oci_container_instances_container_instance";
        let p = plan(
            vec![rv("module.app.x.app", ci, small)],
            vec![
                rv("module.app.x.app", ci, big),
                rv(
                    "module.cache.r.c",
                    "oci_redis_redis_cluster",
                    json!({"node_count": 1, "node_memory_in_gbs": 2}),
                ),
                rv("terraform_data.x", "terraform_data", json!({})),
            ],
        );
        let r = estimate(&p, &t);
        // before: 744 * (0.01 + 6*0.0015) = 14.136 -> 14.14; after: 744 * (0.02 + 0.018) = 28.27
        assert_eq!(r.total_before, 14.14);
        assert_eq!(r.total_after, round2(28.27 + 20.24));
        assert_eq!(r.delta, round2(28.27 + 20.24 - 14.14));
        assert!(r.disclaimer.starts_with("Estimate only"));
        assert_eq!(r.not_always_free.len(), 2);
        assert!(r.not_always_free.iter().any(|l| l.contains("OCI Cache")));
        assert!(r
            .not_always_free
            .iter()
            .any(|l| l.contains("Container Instances")));
    }

    #[test]
    fn override_table_errors_are_specific() {
        let e = PriceTable::parse("as_of = 1", "mine.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mine.toml"), "{e}");
        let mut text = BUNDLED.replace("hours_per_month = 744", "hours_per_month = 730");
        let t = PriceTable::parse(&text, "x").unwrap();
        assert_eq!(t.hours_per_month, 730.0);
        text = BUNDLED.replace("as_of = \"2025-01-15\"", "as_of = \"\"");
        assert!(PriceTable::parse(&text, "x").is_err());
    }
}
