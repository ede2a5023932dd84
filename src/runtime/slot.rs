//! One blue/green deployment slot: [`Slot`].
//!
//! A slot's container instances are made from its image and its [`SlotSpec`] (environment,
//! shape, size, replicas), frozen when the slot is staged. The stack never re-derives a live
//! slot from the profile: a profile change reaches only the next staged slot, so it can never
//! replace the instances that serve traffic.
//!
//! Values only Terraform knows (the database endpoint, the cache endpoint, the Object Storage
//! namespace, the availability domains) are resolved by Terraform when the slot is staged; the
//! stack's `slots` output reports them, and from then on the slot carries them as [`Bound`]
//! values. A later change of one of them (a new database endpoint, a pinned availability
//! domain) therefore reaches only the next staged slot too.
//!
//! On the wire (Terraform's `slots` variable and output, release records) a slot is one flat
//! object: `state`, `image`, the spec's fields, `bound` and `availability_domains`.

use super::env::RenderedEnv;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Runs and receives traffic.
    Active,
    /// Runs; its load balancer backends are drained (no new connections): instant rollback.
    Draining,
    /// Not rendered: no instance, no backend.
    Absent,
}

impl SlotState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SlotState::Active => "active",
            SlotState::Draining => "draining",
            SlotState::Absent => "absent",
        }
    }
}

/// The names slots may have.
pub const SLOT_NAMES: [&str; 2] = ["blue", "green"];

/// True when `image` is `<repository>@sha256:<64 lowercase hex>`.
pub fn is_pinned_image(image: &str) -> bool {
    let Some((repo, digest)) = image.split_once("@sha256:") else {
        return false;
    };
    !repo.is_empty()
        && !repo.contains(char::is_whitespace)
        && digest.len() == 64
        && digest
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// What a slot's container instances are made from, frozen when the slot is staged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotSpec {
    /// Container instance shape, e.g. `CI.Standard.A1.Flex`.
    pub shape: String,
    pub ocpus: f64,
    pub memory_gbs: f64,
    /// Container instances in the slot, each its own load balancer backend, spread over fault
    /// domains and availability domains.
    pub replicas: u32,
    pub graceful_shutdown_seconds: u32,
    /// The container health check's path (liveness).
    pub liveness_path: String,
    #[serde(flatten)]
    pub env: RenderedEnv,
}

/// The Terraform-known values a slot was made with (from the stack's outputs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// [`super::StackValue::key`] -> value.
    pub values: BTreeMap<String, String>,
    /// The availability domains its replicas are spread over, in order.
    pub availability_domains: Vec<String>,
}

/// One deployment slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Record", try_from = "Record")]
pub struct Slot {
    pub state: SlotState,
    /// Image pinned by digest; `None` when absent.
    pub image: Option<String>,
    /// `None` when absent, or (for a live slot) "made from the profile now": the renderer fills
    /// it in. A slot read back from the stack always has one, unless an older calops made it.
    pub spec: Option<SlotSpec>,
    /// `None` until the stack has reported what Terraform resolved for the slot.
    pub bound: Option<Bound>,
}

impl Slot {
    pub fn absent() -> Slot {
        Slot {
            state: SlotState::Absent,
            image: None,
            spec: None,
            bound: None,
        }
    }

    /// A live slot running `image`, made from the profile's current settings.
    pub fn active(image: &str) -> Slot {
        Slot {
            state: SlotState::Active,
            image: Some(image.to_string()),
            spec: None,
            bound: None,
        }
    }

    pub fn with_state(mut self, state: SlotState) -> Slot {
        self.state = state;
        self
    }

    pub fn is_live(&self) -> bool {
        self.state != SlotState::Absent
    }

    /// True when `self` and `other` describe the same container instances (image and spec;
    /// the state only moves the load balancer). A slot without a recorded spec (made by an
    /// older calops) is compared by image alone.
    pub fn same_instances(&self, other: &Slot) -> bool {
        self.image == other.image
            && match (&self.spec, &other.spec) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// The keys of its instances (`blue-0`, `blue-1`, ...), as `iac/modules/slots` names them.
    pub fn instance_keys(name: &str, replicas: u32) -> Vec<String> {
        (0..replicas).map(|i| format!("{name}-{i}")).collect()
    }
}

/// The wire form: one flat object.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    state: SlotState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shape: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ocpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_gbs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    graceful_shutdown_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    liveness_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack_environment: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bound: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    availability_domains: Option<Vec<String>>,
}

impl From<Slot> for Record {
    fn from(s: Slot) -> Record {
        let (spec, env) = match s.spec {
            Some(spec) => {
                let env = spec.env.clone();
                (Some(spec), Some(env))
            }
            None => (None, None),
        };
        Record {
            state: s.state,
            image: s.image,
            shape: spec.as_ref().map(|x| x.shape.clone()),
            ocpus: spec.as_ref().map(|x| x.ocpus),
            memory_gbs: spec.as_ref().map(|x| x.memory_gbs),
            replicas: spec.as_ref().map(|x| x.replicas),
            graceful_shutdown_seconds: spec.as_ref().map(|x| x.graceful_shutdown_seconds),
            liveness_path: spec.as_ref().map(|x| x.liveness_path.clone()),
            environment: env.as_ref().map(|e| e.environment.clone()),
            stack_environment: env.as_ref().map(|e| e.stack_environment.clone()),
            secret_ids: env.map(|e| e.secret_ids),
            bound: s.bound.as_ref().map(|b| b.values.clone()),
            availability_domains: s.bound.map(|b| b.availability_domains),
        }
    }
}

impl TryFrom<Record> for Slot {
    type Error = String;

    fn try_from(r: Record) -> Result<Slot, String> {
        // A spec is all of its required fields or none of them.
        let spec = match (&r.shape, r.ocpus, r.memory_gbs) {
            (None, None, None) => None,
            (Some(shape), Some(ocpus), Some(memory_gbs)) => Some(SlotSpec {
                shape: shape.clone(),
                ocpus,
                memory_gbs,
                replicas: r.replicas.unwrap_or(1),
                graceful_shutdown_seconds: r.graceful_shutdown_seconds.unwrap_or(30),
                liveness_path: r
                    .liveness_path
                    .clone()
                    .unwrap_or_else(|| super::LIVENESS_PATH.to_string()),
                env: RenderedEnv {
                    environment: r.environment.clone().unwrap_or_default(),
                    stack_environment: r.stack_environment.clone().unwrap_or_default(),
                    secret_ids: r.secret_ids.clone().unwrap_or_default(),
                },
            }),
            _ => {
                return Err(
                    "a slot record has some of shape, ocpus and memory_gbs but not all of them"
                        .into(),
                )
            }
        };
        let bound = match (r.bound, r.availability_domains) {
            (None, None) => None,
            (values, ads) => Some(Bound {
                values: values.unwrap_or_default(),
                availability_domains: ads.unwrap_or_default(),
            }),
        };
        Ok(Slot {
            state: r.state,
            image: r.image,
            spec,
            bound,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> SlotSpec {
        SlotSpec {
            shape: "CI.Standard.A1.Flex".into(),
            ocpus: 1.0,
            memory_gbs: 4.0,
            replicas: 2,
            graceful_shutdown_seconds: 30,
            liveness_path: "/livez".into(),
            env: RenderedEnv {
                environment: BTreeMap::from([("A".into(), "1".into())]),
                stack_environment: BTreeMap::from([("H".into(), "database_host".into())]),
                secret_ids: vec!["ocid1.vaultsecret.oc1..s".into()],
            },
        }
    }

    #[test]
    fn the_wire_form_is_one_flat_object_and_round_trips() {
        let s = Slot {
            state: SlotState::Active,
            image: Some("r@sha256:1".into()),
            spec: Some(spec()),
            bound: Some(Bound {
                values: BTreeMap::from([("database_host".into(), "10.0.1.5".into())]),
                availability_domains: vec!["AD-1".into()],
            }),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "active");
        assert_eq!(v["replicas"], 2);
        assert_eq!(v["environment"]["A"], "1");
        assert_eq!(v["bound"]["database_host"], "10.0.1.5");
        assert_eq!(v["availability_domains"], json!(["AD-1"]));
        assert_eq!(serde_json::from_value::<Slot>(v).unwrap(), s);
        // Absent, and an output of an older calops (extra fields, no spec).
        assert_eq!(
            serde_json::to_value(Slot::absent()).unwrap(),
            json!({"state": "absent"})
        );
        let old: Slot = serde_json::from_value(json!({"state": "draining", "image": "r@sha256:2",
            "instance_id": "ocid1.x", "backend": "10.0.1.5:8080"}))
        .unwrap();
        assert_eq!(
            (old.state, old.spec, old.bound),
            (SlotState::Draining, None, None)
        );
        let partial = serde_json::from_value::<Slot>(json!({"state": "active", "shape": "x"}));
        assert!(partial.unwrap_err().to_string().contains("not all of them"));
    }

    #[test]
    fn same_instances_ignores_state_and_bound() {
        let a = Slot {
            state: SlotState::Active,
            image: Some("r@sha256:1".into()),
            spec: Some(spec()),
            bound: None,
        };
        let mut b = a.clone().with_state(SlotState::Draining);
        b.bound = Some(Bound::default());
        assert!(a.same_instances(&b));
        let mut c = a.clone();
        c.spec.as_mut().unwrap().replicas = 3;
        assert!(!a.same_instances(&c));
        let legacy = Slot::active("r@sha256:1");
        assert!(a.same_instances(&legacy));
        assert!(!Slot::active("r@sha256:2").same_instances(&legacy));
        assert_eq!(Slot::instance_keys("blue", 2), ["blue-0", "blue-1"]);
    }

    #[test]
    fn pinned_images() {
        let d = "a".repeat(64);
        assert!(is_pinned_image(&format!("syd.ocir.io/ns/app@sha256:{d}")));
        assert!(!is_pinned_image("syd.ocir.io/ns/app:latest"));
        assert!(!is_pinned_image(&format!(
            "syd.ocir.io/ns/app@sha256:{}",
            "A".repeat(64)
        )));
        assert!(!is_pinned_image("syd.ocir.io/ns/app@sha256:abc"));
        assert!(!is_pinned_image(&format!("@sha256:{d}")));
    }
}
