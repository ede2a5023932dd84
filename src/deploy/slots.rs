//! Blue/green container slots for the OCI target, as pure planning.
//!
//! OCI container instances cannot change their image in place (every field of `containers`
//! forces a new instance with a new IP), so the stack has two named slots. A deploy puts the new
//! image into the idle slot, waits for it to be healthy behind the load balancer, then drains
//! and (unless the previous release is kept for instant rollback) removes the old slot. These
//! functions compute the `slots` input for each phase; the OCI target applies them in order.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Running, with a live load balancer backend.
    Active,
    /// Running, backend drained: no new traffic, instant rollback possible.
    Draining,
    /// No container instance.
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// Image pinned by digest (`repo@sha256:...`); `None` when absent.
    pub image: Option<String>,
    pub state: SlotState,
}

pub const SLOT_NAMES: [&str; 2] = ["blue", "green"];

/// The `slots` input of the root module: slot name -> slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots(pub BTreeMap<String, Slot>);

impl Default for Slots {
    fn default() -> Self {
        Slots(
            SLOT_NAMES
                .iter()
                .map(|n| {
                    (
                        n.to_string(),
                        Slot {
                            image: None,
                            state: SlotState::Absent,
                        },
                    )
                })
                .collect(),
        )
    }
}

/// One apply of the blue/green sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
    fn set(&mut self, name: &str, image: Option<String>, state: SlotState) {
        self.0.insert(name.to_string(), Slot { image, state });
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

/// The phases that move traffic to `image`. With no active slot (first deploy) there is
/// nothing to drain, so one phase suffices.
pub fn plan_deploy(current: &Slots, image: &str, keep_previous: bool) -> Vec<Phase> {
    let new = current.idle();
    let old = current.active().filter(|o| *o != new);
    let mut staged = current.clone();
    staged.set(new, Some(image.to_string()), SlotState::Active);
    let mut phases = vec![Phase { name: "stage", slots: staged.clone(), wait_for: "the new container instance ACTIVE, its backend OK, and /health through the load balancer reporting the new version" }];
    if let Some(old) = old {
        let old_image = current.get(old).image.clone();
        let mut drained = staged.clone();
        drained.set(old, old_image, SlotState::Draining);
        phases.push(Phase {
            name: "drain",
            slots: drained.clone(),
            wait_for: "in-flight requests on the old backend to finish",
        });
        if !keep_previous {
            let mut retired = drained;
            retired.set(old, None, SlotState::Absent);
            phases.push(Phase {
                name: "retire",
                slots: retired,
                wait_for: "the old container instance to be deleted",
            });
        }
    }
    phases
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
    s.set(other, current.get(other).image.clone(), SlotState::Active);
    s.set(
        active,
        current.get(active).image.clone(),
        SlotState::Draining,
    );
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(s: &Slots) -> (SlotState, SlotState) {
        (s.get("blue").state, s.get("green").state)
    }

    #[test]
    fn first_deploy_is_one_phase() {
        let p = plan_deploy(&Slots::default(), "r@sha256:1", true);
        assert_eq!(p.len(), 1);
        assert_eq!(states(&p[0].slots), (SlotState::Active, SlotState::Absent));
        assert_eq!(p[0].slots.get("blue").image.as_deref(), Some("r@sha256:1"));
    }

    #[test]
    fn blue_green_sequence_and_flip() {
        let v1 = plan_deploy(&Slots::default(), "r@sha256:1", true)
            .pop()
            .unwrap()
            .slots;
        let p = plan_deploy(&v1, "r@sha256:2", true);
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
        let p = plan_deploy(&v1, "r@sha256:2", false);
        let last = &p.last().unwrap().slots;
        assert_eq!(states(last), (SlotState::Absent, SlotState::Active));
        assert_eq!(plan_flip(last), None);
        // The next deploy goes into the absent slot.
        let p3 = plan_deploy(last, "r@sha256:3", false);
        assert_eq!(p3[0].slots.get("blue").image.as_deref(), Some("r@sha256:3"));
    }

    #[test]
    fn deploy_over_a_draining_slot_reuses_it() {
        let v1 = plan_deploy(&Slots::default(), "r@sha256:1", true)
            .pop()
            .unwrap()
            .slots;
        let v2 = plan_deploy(&v1, "r@sha256:2", true).pop().unwrap().slots;
        let p = plan_deploy(&v2, "r@sha256:3", true);
        // blue was draining (release 1): it gets release 3; green (release 2) drains.
        assert_eq!(p[0].slots.get("blue").image.as_deref(), Some("r@sha256:3"));
        assert_eq!(
            states(&p.last().unwrap().slots),
            (SlotState::Active, SlotState::Draining)
        );
        assert_eq!(plan_abort(&v2), v2);
    }
}
