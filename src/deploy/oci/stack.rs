//! The Terraform stack the OCI target drives: writing the root module for a set of slots, and
//! reading back what runs from its outputs.
//!
//! The target never edits Terraform files itself: a [`StackWriter`] writes the whole root module
//! for the slots of one phase ([`ProfileStack`] renders the profile; tests use fixture modules
//! with the same `slots` variable and outputs), and [`StackOutputs`] is the part of
//! `terraform output -json` the target needs.

use crate::deploy::slots::{Slot, SlotState, Slots, SLOT_NAMES};
use crate::profile::Profile;
use crate::terraform::driver::Outputs;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Writes the Terraform root module with the given `slots` input into a directory.
pub trait StackWriter: Send + Sync {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()>;
}

/// The profile's stack, rendered from the embedded templates (see [`crate::render`]).
pub struct ProfileStack {
    profile: Profile,
    terraform_version: Option<String>,
}

impl ProfileStack {
    /// `terraform_version` decides the state backend flavour (as `calops render` does).
    pub fn new(profile: Profile, terraform_version: Option<String>) -> ProfileStack {
        ProfileStack {
            profile,
            terraform_version,
        }
    }

    /// Render once without writing, for the warnings the operator should see.
    pub fn warnings(&self) -> anyhow::Result<Vec<String>> {
        let input = crate::render::RenderInput::from_profile(
            &self.profile,
            BTreeMap::new(),
            self.terraform_version.clone(),
        )?;
        Ok(crate::render::render(&input)?.warnings)
    }
}

/// The render module's slot map for `slots`.
pub fn render_slots(slots: &Slots) -> BTreeMap<String, crate::render::Slot> {
    slots
        .0
        .iter()
        .map(|(name, s)| {
            let state = match s.state {
                SlotState::Active => crate::render::SlotState::Active,
                SlotState::Draining => crate::render::SlotState::Draining,
                SlotState::Absent => crate::render::SlotState::Absent,
            };
            (
                name.clone(),
                crate::render::Slot {
                    image: s.image.clone(),
                    state,
                },
            )
        })
        .collect()
}

impl StackWriter for ProfileStack {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()> {
        let input = crate::render::RenderInput::from_profile(
            &self.profile,
            render_slots(slots),
            self.terraform_version.clone(),
        )?;
        let rendered = crate::render::render(&input)?;
        crate::render::write::write_to(&rendered, dir)?;
        Ok(())
    }
}

/// One live slot as the stack reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSlot {
    pub instance_id: String,
    #[serde(default)]
    pub private_ip: Option<String>,
    pub image: String,
    pub state: SlotState,
    /// `ip:port` of its load balancer backend.
    #[serde(default)]
    pub backend: Option<String>,
}

/// What the target reads from `terraform output -json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StackOutputs {
    pub lb_url: Option<String>,
    pub load_balancer_id: Option<String>,
    pub backend_set_name: Option<String>,
    /// Live slots (absent ones are not listed).
    pub slots: BTreeMap<String, LiveSlot>,
}

impl StackOutputs {
    /// Parse the outputs; an empty state (nothing applied yet) gives empty outputs.
    pub fn parse(outputs: &Outputs) -> anyhow::Result<StackOutputs> {
        let text = |k: &str| outputs.get(k).and_then(|v| v.as_str()).map(String::from);
        let slots = match outputs.get("slots") {
            Some(v) if !v.value().is_null() => serde_json::from_value(v.value().clone()).context(
                "the stack's `slots` output is not a map of {instance_id, image, state, backend}",
            )?,
            _ => BTreeMap::new(),
        };
        Ok(StackOutputs {
            lb_url: text("lb_url"),
            load_balancer_id: text("load_balancer_id"),
            backend_set_name: text("backend_set_name"),
            slots,
        })
    }

    /// The `slots` input that reproduces what runs.
    pub fn slots(&self) -> Slots {
        let mut s = Slots::default();
        for name in SLOT_NAMES {
            if let Some(live) = self.slots.get(name) {
                s.0.insert(
                    name.to_string(),
                    Slot {
                        image: Some(live.image.clone()),
                        state: live.state,
                    },
                );
            }
        }
        s
    }

    /// The live slot running `image`'s digest, if any.
    pub fn slot_with_digest(&self, digest: &str) -> Option<(&str, &LiveSlot)> {
        self.slots
            .iter()
            .find(|(_, s)| image_digest(&s.image) == Some(digest))
            .map(|(n, s)| (n.as_str(), s))
    }
}

/// `sha256:...` of a pinned image reference (`repo@sha256:...`).
pub fn image_digest(image: &str) -> Option<&str> {
    image.split_once('@').map(|(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::driver::OutputValue;
    use serde_json::json;

    #[test]
    fn profile_stack_renders_the_slots_input() {
        let dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")];
        let profile = crate::profile::load::load_with("dev", &dirs, vec![])
            .unwrap()
            .profile;
        let stack = ProfileStack::new(profile, Some("1.11.4".into()));
        let img = |c: char| format!("syd.ocir.io/ns/calops@sha256:{}", c.to_string().repeat(64));
        let mut slots = Slots::default();
        slots.0.insert(
            "blue".into(),
            Slot {
                image: Some(img('1')),
                state: SlotState::Draining,
            },
        );
        slots.0.insert(
            "green".into(),
            Slot {
                image: Some(img('2')),
                state: SlotState::Active,
            },
        );
        let dir = tempfile::tempdir().unwrap();
        stack.write(dir.path(), &slots).unwrap();
        let vars: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("terraform.tfvars.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            vars["slots"],
            json!({"blue": {"image": img('1'), "state": "draining"},
                   "green": {"image": img('2'), "state": "active"}})
        );
        let outputs = std::fs::read_to_string(dir.path().join("outputs.tf")).unwrap();
        for o in ["load_balancer_id", "backend_set_name", "backend"] {
            assert!(outputs.contains(o), "{o}");
        }
        // An unpinned image is refused before anything is written.
        slots.0.insert(
            "green".into(),
            Slot {
                image: Some("r:latest".into()),
                state: SlotState::Active,
            },
        );
        assert!(stack
            .write(tempfile::tempdir().unwrap().path(), &slots)
            .is_err());
    }

    #[test]
    fn outputs_to_slots() {
        let mut o = Outputs::new();
        o.insert(
            "lb_url".into(),
            OutputValue::new(false, json!("https://lb.example.com")),
        );
        o.insert(
            "slots".into(),
            OutputValue::new(
                false,
                json!({"green": {"instance_id": "ocid1.ci..g", "private_ip": "10.0.1.5", "image": "r@sha256:2", "state": "draining", "backend": "10.0.1.5:8080"}}),
            ),
        );
        let so = StackOutputs::parse(&o).unwrap();
        assert_eq!(so.lb_url.as_deref(), Some("https://lb.example.com"));
        let s = so.slots();
        assert_eq!(s.get("blue").state, SlotState::Absent);
        assert_eq!(s.get("green").state, SlotState::Draining);
        assert_eq!(s.get("green").image.as_deref(), Some("r@sha256:2"));
        assert_eq!(so.slot_with_digest("sha256:2").unwrap().0, "green");
        assert!(so.slot_with_digest("sha256:1").is_none());
        // Nothing applied yet.
        assert_eq!(
            StackOutputs::parse(&Outputs::new()).unwrap().slots(),
            Slots::default()
        );
        // A malformed output is an error naming it.
        o.insert("slots".into(), OutputValue::new(false, json!({"blue": 1})));
        assert!(format!("{:#}", StackOutputs::parse(&o).unwrap_err()).contains("`slots` output"));
    }
}
