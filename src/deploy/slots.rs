//! Blue/green container slots for the OCI target, as pure planning.
//!
//! OCI container instances cannot change their image in place (every field of `containers`
//! forces a new instance with a new IP), so the stack has two named slots. A deploy puts the new
//! image into the idle slot, waits for it to be healthy behind the load balancer, then drains
//! and (unless the previous release is kept for instant rollback) removes the old slot. These
//! functions compute the `slots` input for each phase; the OCI target applies them in order.
//!
//! Every slot carries its frozen record ([`Slot`]: image, [`SlotSpec`], bound values): a phase
//! only ever changes the record of the slot it stages, drains, flips or retires, and
//! [`kept_slots`] names the ones whose instances the plan guard must keep.

pub use crate::runtime::slot::{Slot, SlotSpec, SlotState, SLOT_NAMES};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `slots` input of the root module: slot name -> slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slots(pub BTreeMap<String, Slot>);

impl Default for Slots {
    fn default() -> Self {
        Slots(
            SLOT_NAMES
                .iter()
                .map(|n| (n.to_string(), Slot::absent()))
                .collect(),
        )
    }
}

/// One apply of the blue/green sequence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// `stage`, `drain` or `retire`.
    pub name: &'static str,
    pub slots: Slots,
    /// What must be true before the next phase.
    pub wait_for: &'static str,
}

impl Slots {
    pub fn get(&self, name: &str) -> &Slot {
        &self.0[name]
    }
    fn set(&mut self, name: &str, slot: Slot) {
        self.0.insert(name.to_string(), slot);
    }
    /// The slots that run instances, by name.
    pub fn live(&self) -> impl Iterator<Item = (&str, &Slot)> {
        self.0
            .iter()
            .filter(|(_, s)| s.is_live())
            .map(|(n, s)| (n.as_str(), s))
    }
    /// The slot serving traffic (if exactly one is active, or the first active one).
    pub fn active(&self) -> Option<&str> {
        SLOT_NAMES
            .iter()
            .copied()
            .find(|n| self.get(n).state == SlotState::Active)
    }
    /// The slot a new release should go into: not active, preferring an absent one.
    pub fn idle(&self) -> &'static str {
        let active = self.active();
        SLOT_NAMES
            .iter()
            .copied()
            .find(|n| Some(*n) != active && self.get(n).state == SlotState::Absent)
            .or_else(|| SLOT_NAMES.iter().copied().find(|n| Some(*n) != active))
            .unwrap_or("blue")
    }
}

/// The phases that move traffic to `image` made from `spec` (frozen into the new slot; `None`
/// lets the renderer take the profile's current settings). With no active slot (first
/// deploy) there is nothing to drain, so one phase suffices. Only the new slot changes at
/// stage; the others keep their records exactly.
pub fn plan_deploy(
    current: &Slots,
    image: &str,
    spec: Option<SlotSpec>,
    keep_previous: bool,
) -> Vec<Phase> {
    let new = current.idle();
    let old = current.active().filter(|o| *o != new);
    let mut staged = current.clone();
    staged.set(
        new,
        Slot {
            state: SlotState::Active,
            image: Some(image.to_string()),
            spec,
            bound: None,
        },
    );
    let mut phases = vec![Phase { name: "stage", slots: staged.clone(), wait_for: "the new container instances ACTIVE, their backends OK, and /health through the load balancer reporting the new version" }];
    if let Some(old) = old {
        let mut drained = staged.clone();
        drained.set(
            old,
            current.get(old).clone().with_state(SlotState::Draining),
        );
        phases.push(Phase {
            name: "drain",
            slots: drained.clone(),
            wait_for: "in-flight requests on the old backends to finish",
        });
        if !keep_previous {
            phases.push(Phase {
                name: "retire",
                slots: plan_retire(&drained, old),
                wait_for: "the old container instances to be deleted",
            });
        }
    }
    phases
}

/// `slots` with `old` removed (its instances and backends deleted).
pub fn plan_retire(slots: &Slots, old: &str) -> Slots {
    let mut retired = slots.clone();
    retired.set(old, Slot::absent());
    retired
}

/// Slots that send traffic back to `previous` after a failed stage: the new slot goes away.
pub fn plan_abort(before: &Slots) -> Slots {
    before.clone()
}

/// Rollback by a load balancer change only: the draining slot (still running the previous
/// release) becomes active and the active one drains. `None` when there is nothing to flip to.
pub fn plan_flip(current: &Slots) -> Option<Slots> {
    let active = current.active()?;
    let other = SLOT_NAMES
        .iter()
        .copied()
        .find(|n| *n != active && current.get(n).state == SlotState::Draining)?;
    let mut s = current.clone();
    s.set(
        other,
        current.get(other).clone().with_state(SlotState::Active),
    );
    s.set(
        active,
        current.get(active).clone().with_state(SlotState::Draining),
    );
    Some(s)
}

/// The slots that run in both `current` and `next` with the same instances (image and spec):
/// applying `next` must neither replace nor delete their instances or backends. A slot whose
/// record changes (a draining slot reused for a new release, a retired or aborted slot) is
/// not listed: that change is the point of the phase.
pub fn kept_slots<'a>(current: &'a Slots, next: &Slots) -> Vec<(&'a str, &'a Slot)> {
    current
        .live()
        .filter(|(name, slot)| {
            next.0
                .get(*name)
                .is_some_and(|n| n.is_live() && n.same_instances(slot))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(s: &Slots) -> (SlotState, SlotState) {
        (s.get("blue").state, s.get("green").state)
    }

    #[test]
    fn first_deploy_is_one_phase() {
        let p = plan_deploy(&Slots::default(), "r@sha256:1", None, true);
        assert_eq!(p.len(), 1);
        assert_eq!(states(&p[0].slots), (SlotState::Active, SlotState::Absent));
        assert_eq!(p[0].slots.get("blue").image.as_deref(), Some("r@sha256:1"));
    }

    #[test]
    fn blue_green_sequence_and_flip() {
        let v1 = plan_deploy(&Slots::default(), "r@sha256:1", None, true)
            .pop()
            .unwrap()
            .slots;
        let p = plan_deploy(&v1, "r@sha256:2", None, true);
        assert_eq!(
            p.iter().map(|x| x.name).collect::<Vec<_>>(),
            ["stage", "drain"]
        );
        assert_eq!(states(&p[0].slots), (SlotState::Active, SlotState::Active));
        assert_eq!(
            states(&p[1].slots),
            (SlotState::Draining, SlotState::Active)
        );
        // Only the new slot changes at stage.
        assert_eq!(p[0].slots.get("blue"), v1.get("blue"));
        // Instant rollback: flip back.
        let flipped = plan_flip(&p[1].slots).unwrap();
        assert_eq!(states(&flipped), (SlotState::Active, SlotState::Draining));
        assert_eq!(flipped.get("blue").image.as_deref(), Some("r@sha256:1"));
        // Without keep_previous the old slot is removed, and there is nothing to flip to.
        let p = plan_deploy(&v1, "r@sha256:2", None, false);
        let last = &p.last().unwrap().slots;
        assert_eq!(states(last), (SlotState::Absent, SlotState::Active));
        assert_eq!(plan_flip(last), None);
        // The next deploy goes into the absent slot.
        let p3 = plan_deploy(last, "r@sha256:3", None, false);
        assert_eq!(p3[0].slots.get("blue").image.as_deref(), Some("r@sha256:3"));
    }

    #[test]
    fn deploy_over_a_draining_slot_reuses_it() {
        let v1 = plan_deploy(&Slots::default(), "r@sha256:1", None, true)
            .pop()
            .unwrap()
            .slots;
        let v2 = plan_deploy(&v1, "r@sha256:2", None, true)
            .pop()
            .unwrap()
            .slots;
        let p = plan_deploy(&v2, "r@sha256:3", None, true);
        // blue was draining (release 1): it gets release 3; green (release 2) drains.
        assert_eq!(p[0].slots.get("blue").image.as_deref(), Some("r@sha256:3"));
        assert_eq!(
            states(&p.last().unwrap().slots),
            (SlotState::Active, SlotState::Draining)
        );
        assert_eq!(plan_abort(&v2), v2);
    }

    fn spec(shape: &str) -> SlotSpec {
        SlotSpec {
            shape: shape.into(),
            ocpus: 1.0,
            memory_gbs: 4.0,
            replicas: 2,
            graceful_shutdown_seconds: 30,
            liveness_path: "/livez".into(),
            env: Default::default(),
        }
    }

    #[test]
    fn a_new_spec_reaches_only_the_staged_slot() {
        let v1 = plan_deploy(&Slots::default(), "r@sha256:1", Some(spec("A")), true)
            .pop()
            .unwrap()
            .slots;
        // The profile changed its shape: the next deploy stages green with it, blue keeps A.
        let p = plan_deploy(&v1, "r@sha256:2", Some(spec("B")), true);
        for phase in &p {
            let blue = phase.slots.get("blue");
            assert_eq!(blue.spec.as_ref().unwrap().shape, "A", "{}", phase.name);
            assert!(blue.same_instances(v1.get("blue")), "{}", phase.name);
        }
        assert_eq!(p[0].slots.get("green").spec.as_ref().unwrap().shape, "B");
        // The guard keeps blue at stage and drain; green is new at stage, kept at drain.
        let kept = |from: &Slots, to: &Slots| {
            kept_slots(from, to)
                .into_iter()
                .map(|(n, _)| n.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(kept(&v1, &p[0].slots), ["blue"]);
        assert_eq!(kept(&p[0].slots, &p[1].slots), ["blue", "green"]);
        // A flip keeps both; a retire keeps only the new one.
        let flipped = plan_flip(&p[1].slots).unwrap();
        assert_eq!(kept(&p[1].slots, &flipped), ["blue", "green"]);
        assert_eq!(
            kept(&p[1].slots, &plan_retire(&p[1].slots, "blue")),
            ["green"]
        );
        // Reusing a draining slot for a new release changes its record: not kept.
        let p3 = plan_deploy(&p[1].slots, "r@sha256:3", Some(spec("B")), true);
        assert_eq!(kept(&p[1].slots, &p3[0].slots), ["green"]);
    }
}
