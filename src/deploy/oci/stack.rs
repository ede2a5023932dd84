//! The Terraform stack the OCI target drives: writing the root module for a set of slots, and
//! reading back what runs from its outputs.
//!
//! The target never edits Terraform files itself: a [`StackWriter`] writes the whole root module
//! for the slots of one phase ([`ProfileStack`] renders the profile; tests use fixture modules
//! with the same `slots` variable and outputs), and [`StackOutputs`] is the part of
//! `terraform output -json` the target needs.

use crate::deploy::slots::{Slot, SlotSpec, Slots, SLOT_NAMES};
use crate::profile::Profile;
use crate::terraform::driver::Outputs;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Writes the Terraform root module with the given `slots` input into a directory.
pub trait StackWriter: Send + Sync {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()>;

    /// What a slot staged now is made from (the profile's current settings).
    fn next_spec(&self) -> anyhow::Result<SlotSpec>;

    /// The resource addresses of one container instance and its load balancer backend
    /// (`key` as in the `slots` output, e.g. `blue-0`): the plan guard keeps them while their
    /// slot stays.
    fn instance_addresses(&self, key: &str) -> Vec<String>;
}

/// What the stack needs to know about the tenancy beyond the profile: the tenancy OCID (from
/// the OCI config calops signs with) and its home region (pinned, or from the Identity API).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    pub tenancy_id: Option<String>,
    pub home_region: Option<String>,
}

/// The profile's stack, rendered from the embedded templates (see [`crate::render`]).
pub struct ProfileStack {
    profile: Profile,
    terraform_version: Option<String>,
    account: Account,
}

impl ProfileStack {
    /// `terraform_version` decides the state backend flavour (as `calops render` does).
    pub fn new(
        profile: Profile,
        terraform_version: Option<String>,
        account: Account,
    ) -> ProfileStack {
        ProfileStack {
            profile,
            terraform_version,
            account,
        }
    }

    fn input(&self, slots: BTreeMap<String, Slot>) -> anyhow::Result<crate::render::RenderInput> {
        let mut input = crate::render::RenderInput::from_profile(
            &self.profile,
            slots,
            self.terraform_version.clone(),
        )?;
        input.oci.tenancy_id = self.account.tenancy_id.clone();
        if input.oci.home_region.is_none() {
            input.oci.home_region = self.account.home_region.clone();
        }
        Ok(input)
    }

    /// Render once without writing, for the warnings the operator should see.
    pub fn warnings(&self) -> anyhow::Result<Vec<String>> {
        Ok(crate::render::render(&self.input(BTreeMap::new())?)?.warnings)
    }
}

impl StackWriter for ProfileStack {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()> {
        let rendered = crate::render::render(&self.input(slots.0.clone())?)?;
        crate::render::write::write_to(&rendered, dir)?;
        Ok(())
    }

    fn next_spec(&self) -> anyhow::Result<SlotSpec> {
        Ok(self.input(BTreeMap::new())?.profile_spec()?)
    }

    fn instance_addresses(&self, key: &str) -> Vec<String> {
        vec![
            format!("module.container[\"{key}\"].oci_container_instances_container_instance.this"),
            format!("module.loadbalancer.oci_load_balancer_backend.slot[\"{key}\"]"),
        ]
    }
}

/// One container instance of a live slot, as the stack reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveInstance {
    /// `<slot>-<replica>`.
    #[serde(default)]
    pub key: String,
    pub instance_id: String,
    #[serde(default)]
    pub private_ip: Option<String>,
    /// `ip:port` of its load balancer backend.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub availability_domain: Option<String>,
    #[serde(default)]
    pub fault_domain: Option<String>,
}

/// One live slot as the stack reports it: its record and its instances.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSlot {
    pub slot: Slot,
    pub instances: Vec<LiveInstance>,
}

impl LiveSlot {
    pub fn image(&self) -> &str {
        self.slot.image.as_deref().unwrap_or_default()
    }

    /// Parse one entry of the `slots` output. An entry written by an older calops (one
    /// instance: `instance_id`, `private_ip`, `backend` beside the image) gives one instance
    /// and no recorded spec.
    fn parse(name: &str, v: &serde_json::Value) -> anyhow::Result<LiveSlot> {
        let slot: Slot =
            serde_json::from_value(v.clone()).map_err(|e| anyhow::anyhow!("slot {name}: {e}"))?;
        let instances = match v.get("instances") {
            Some(list) => serde_json::from_value(list.clone())
                .with_context(|| format!("slot {name}: `instances`"))?,
            None => {
                let mut legacy: LiveInstance =
                    serde_json::from_value(v.clone()).with_context(|| {
                        format!("slot {name} has neither `instances` nor `instance_id`")
                    })?;
                legacy.key = format!("{name}-0");
                vec![legacy]
            }
        };
        Ok(LiveSlot { slot, instances })
    }
}

/// What the target reads from `terraform output -json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackOutputs {
    pub lb_url: Option<String>,
    pub load_balancer_id: Option<String>,
    pub backend_set_name: Option<String>,
    /// Live slots (absent ones are not listed).
    pub slots: BTreeMap<String, LiveSlot>,
    /// The DNS record the mail sender's domain must publish for DKIM (`mail_dkim_cname`; none
    /// without `[service] mail_sender`).
    pub mail_dkim_cname: Option<DnsRecord>,
}

/// A DNS record to publish: `name` CNAME `value`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DnsRecord {
    pub name: String,
    pub value: String,
}

impl StackOutputs {
    /// The outputs of a Terraform state file (format 4: `outputs` of `{value, type}`, as
    /// `terraform output -json` prints them without `sensitive`), e.g. the `oci-vm` stack's,
    /// which the operator applies and calops only reads.
    pub fn from_state(state: &[u8]) -> anyhow::Result<StackOutputs> {
        let v: serde_json::Value =
            serde_json::from_slice(state).context("the Terraform state is not JSON")?;
        let outputs = v
            .get("outputs")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        StackOutputs::parse(&crate::terraform::driver::parse_outputs(
            &outputs.to_string(),
        )?)
    }

    /// Parse the outputs; an empty state (nothing applied yet) gives empty outputs.
    pub fn parse(outputs: &Outputs) -> anyhow::Result<StackOutputs> {
        let text = |k: &str| outputs.get(k).and_then(|v| v.as_str()).map(String::from);
        let mut slots = BTreeMap::new();
        if let Some(v) = outputs.get("slots").filter(|v| !v.value().is_null()) {
            let map = v
                .value()
                .as_object()
                .context("the stack's `slots` output is not a map of slot records")?;
            for (name, entry) in map {
                let live = LiveSlot::parse(name, entry)
                    .context("the stack's `slots` output is not a map of slot records")?;
                slots.insert(name.clone(), live);
            }
        }
        let mail_dkim_cname = outputs.get("mail_dkim_cname").and_then(|v| {
            let field = |k: &str| v.value().get(k)?.as_str().filter(|s| !s.is_empty());
            Some(DnsRecord {
                name: field("name")?.to_string(),
                value: field("value")?.to_string(),
            })
        });
        Ok(StackOutputs {
            lb_url: text("lb_url"),
            load_balancer_id: text("load_balancer_id"),
            backend_set_name: text("backend_set_name"),
            slots,
            mail_dkim_cname,
        })
    }

    /// The `slots` input that reproduces what runs: every live slot's record exactly as the
    /// stack reported it (spec and bound values included).
    pub fn slots(&self) -> Slots {
        let mut s = Slots::default();
        for name in SLOT_NAMES {
            if let Some(live) = self.slots.get(name) {
                s.0.insert(name.to_string(), live.slot.clone());
            }
        }
        s
    }

    /// The live slot running `image`'s digest, if any.
    pub fn slot_with_digest(&self, digest: &str) -> Option<(&str, &LiveSlot)> {
        self.slots
            .iter()
            .find(|(_, s)| image_digest(s.image()) == Some(digest))
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
    use crate::deploy::slots::SlotState;
    use crate::terraform::driver::OutputValue;
    use serde_json::json;

    fn dev_stack() -> ProfileStack {
        let dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")];
        let profile = crate::profile::load::load_with("dev", &dirs, vec![])
            .unwrap()
            .profile;
        let account = Account {
            tenancy_id: Some("ocid1.tenancy.oc1..t".into()),
            home_region: Some("eu-frankfurt-1".into()),
        };
        ProfileStack::new(profile, Some("1.11.4".into()), account)
    }

    #[test]
    fn profile_stack_renders_frozen_records_and_fills_new_ones() {
        let stack = dev_stack();
        let img = |c: char| format!("syd.ocir.io/ns/calops@sha256:{}", c.to_string().repeat(64));
        let mut frozen = stack.next_spec().unwrap();
        frozen.shape = "CI.Standard.E4.Flex".into();
        frozen.replicas = 3;
        let mut slots = Slots::default();
        slots.0.insert(
            "blue".into(),
            Slot {
                state: SlotState::Draining,
                image: Some(img('1')),
                spec: Some(frozen.clone()),
                bound: None,
            },
        );
        slots.0.insert("green".into(), Slot::active(&img('2')));
        let dir = tempfile::tempdir().unwrap();
        stack.write(dir.path(), &slots).unwrap();
        let vars: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("terraform.tfvars.json")).unwrap(),
        )
        .unwrap();
        // The frozen record is given exactly; the new one gets the profile's settings.
        let blue: Slot = serde_json::from_value(vars["slots"]["blue"].clone()).unwrap();
        assert_eq!(blue.spec.as_ref(), Some(&frozen));
        let green: Slot = serde_json::from_value(vars["slots"]["green"].clone()).unwrap();
        assert_eq!(green.spec, Some(stack.next_spec().unwrap()));
        assert_eq!(vars["slots"]["green"]["shape"], "CI.Standard.A1.Flex");
        assert_eq!(vars["tenancy_ocid"], "ocid1.tenancy.oc1..t");
        assert_eq!(vars["home_region"], "eu-frankfurt-1");
        let outputs = std::fs::read_to_string(dir.path().join("outputs.tf")).unwrap();
        for o in [
            "load_balancer_id",
            "backend_set_name",
            "instances",
            "backend",
            // Read by `StackOutputs::parse`: the email module's `{name, value}` record.
            "output \"mail_dkim_cname\"",
        ] {
            assert!(outputs.contains(o), "{o}");
        }
        let email = std::fs::read_to_string(dir.path().join("modules/email/outputs.tf")).unwrap();
        assert!(email.contains("name  = oci_email_dkim.this.dns_subdomain_name"));
        assert!(email.contains("value = oci_email_dkim.this.cname_record_value"));
        // An unpinned image is refused before anything is written.
        slots.0.insert("green".into(), Slot::active("r:latest"));
        assert!(stack
            .write(tempfile::tempdir().unwrap().path(), &slots)
            .is_err());
        assert_eq!(
            stack.instance_addresses("blue-1"),
            [
                "module.container[\"blue-1\"].oci_container_instances_container_instance.this",
                "module.loadbalancer.oci_load_balancer_backend.slot[\"blue-1\"]"
            ]
        );
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
                json!({"green": {"state": "draining", "image": "r@sha256:2", "shape": "S",
                    "ocpus": 1, "memory_gbs": 4, "replicas": 2, "environment": {"A": "1"},
                    "bound": {"database_host": "10.0.1.5"}, "availability_domains": ["AD-1"],
                    "instance_keys": ["green-0", "green-1"],
                    "instances": [
                        {"key": "green-0", "instance_id": "ocid1.ci..g0", "private_ip": "10.0.1.5", "backend": "10.0.1.5:8080"},
                        {"key": "green-1", "instance_id": "ocid1.ci..g1", "private_ip": "10.0.1.6", "backend": "10.0.1.6:8080"}]}}),
            ),
        );
        let so = StackOutputs::parse(&o).unwrap();
        assert_eq!(so.lb_url.as_deref(), Some("https://lb.example.com"));
        assert_eq!(so.mail_dkim_cname, None);
        let s = so.slots();
        assert_eq!(s.get("blue").state, SlotState::Absent);
        let green = s.get("green");
        assert_eq!(green.state, SlotState::Draining);
        assert_eq!(green.image.as_deref(), Some("r@sha256:2"));
        assert_eq!(green.spec.as_ref().unwrap().replicas, 2);
        assert_eq!(
            green.bound.as_ref().unwrap().values["database_host"],
            "10.0.1.5"
        );
        assert_eq!(so.slots["green"].instances.len(), 2);
        assert_eq!(so.slot_with_digest("sha256:2").unwrap().0, "green");
        assert!(so.slot_with_digest("sha256:1").is_none());
        // An output written by an older calops: one instance, no spec.
        o.insert(
            "slots".into(),
            OutputValue::new(
                false,
                json!({"blue": {"instance_id": "ocid1.ci..b", "private_ip": "10.0.1.5", "image": "r@sha256:1", "state": "active", "backend": "10.0.1.5:8080"}}),
            ),
        );
        let old = StackOutputs::parse(&o).unwrap();
        assert_eq!(old.slots["blue"].instances[0].key, "blue-0");
        assert_eq!(old.slots().get("blue").spec, None);
        // Nothing applied yet.
        assert_eq!(
            StackOutputs::parse(&Outputs::new()).unwrap().slots(),
            Slots::default()
        );
        // The DKIM record to publish, when the stack sends mail (null without a sender).
        o.insert(
            "mail_dkim_cname".into(),
            OutputValue::new(
                false,
                json!({"name": "calops-ap-sydney-1._domainkey.example.com",
                       "value": "calops-ap-sydney-1.example.com.dkim.syd1.oracleemaildelivery.com"}),
            ),
        );
        assert_eq!(
            StackOutputs::parse(&o).unwrap().mail_dkim_cname,
            Some(DnsRecord {
                name: "calops-ap-sydney-1._domainkey.example.com".into(),
                value: "calops-ap-sydney-1.example.com.dkim.syd1.oracleemaildelivery.com".into(),
            })
        );
        o.insert(
            "mail_dkim_cname".into(),
            OutputValue::new(false, json!(null)),
        );
        assert_eq!(StackOutputs::parse(&o).unwrap().mail_dkim_cname, None);
        // A malformed output is an error naming it.
        o.insert("slots".into(), OutputValue::new(false, json!({"blue": 1})));
        assert!(format!("{:#}", StackOutputs::parse(&o).unwrap_err()).contains("`slots` output"));
    }
}
