//! The Always Free allowance of an `oci-vm` profile: what it assumes (from the price table), a
//! monthly estimate from the profile's sizes, and the warnings when a size leaves the
//! allowance. Pure: no I/O.

use super::cost::PriceTable;
use crate::profile::Profile;
use serde::{Deserialize, Serialize};

/// The allowance assumed (the price table's `[always_free]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlwaysFree {
    /// Ampere A1 OCPUs that may run all month for free.
    pub a1_ocpus: f64,
    pub a1_memory_gbs: f64,
    /// Boot and block volumes together.
    pub block_storage_gbs: f64,
    /// One flexible load balancer up to this bandwidth.
    pub load_balancer_mbps: f64,
    pub object_storage_gbs: f64,
}

/// One line of the estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub item: String,
    pub monthly: f64,
    pub basis: String,
}

/// A monthly estimate of an `oci-vm` profile with the allowance assumed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub currency: String,
    pub prices_as_of: String,
    pub prices_source: String,
    pub allowance: AlwaysFree,
    pub lines: Vec<Line>,
    pub total: f64,
    /// One sentence per size that leaves the allowance (empty: all free).
    pub outside_allowance: Vec<String>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The sizes of `profile` that leave the allowance, each with what to change. Only `oci-vm`
/// profiles are assessed (other targets use products without a free allowance).
pub fn outside_allowance(profile: &Profile, a: &AlwaysFree) -> Vec<String> {
    if profile.target != crate::profile::Target::OciVm {
        return Vec::new();
    }
    let vm = &profile.vm;
    let mut out = Vec::new();
    if vm.shape.name() != "VM.Standard.A1.Flex" {
        out.push(format!(
            "[vm] shape {} is not Ampere A1: only VM.Standard.A1.Flex is in the Always Free allowance",
            vm.shape.name()
        ));
    }
    if vm.ocpus > a.a1_ocpus {
        out.push(format!(
            "[vm] ocpus = {} is above the {} OCPUs of Ampere A1 assumed Always Free: the extra OCPUs are billed (set ocpus = {} to stay free)",
            vm.ocpus, a.a1_ocpus, a.a1_ocpus
        ));
    }
    if vm.memory_gbs > a.a1_memory_gbs {
        out.push(format!(
            "[vm] memory_gbs = {} is above the {} GB of Ampere A1 memory assumed Always Free: the extra GB are billed (set memory_gbs = {} to stay free)",
            vm.memory_gbs, a.a1_memory_gbs, a.a1_memory_gbs
        ));
    }
    let storage = f64::from(vm.boot_volume_gbs) + f64::from(vm.block_volume_gbs);
    if storage > a.block_storage_gbs {
        out.push(format!(
            "[vm] boot_volume_gbs + block_volume_gbs = {storage} GB is above the {} GB of block storage assumed Always Free",
            a.block_storage_gbs
        ));
    }
    let lb = f64::from(profile.load_balancer.max_bandwidth_mbps);
    if lb > a.load_balancer_mbps {
        out.push(format!(
            "[load_balancer] max_bandwidth_mbps = {lb} is above the {} Mbps Always Free load balancer: it is billed (set min and max to {})",
            a.load_balancer_mbps, a.load_balancer_mbps
        ));
    }
    out
}

/// The monthly estimate of an `oci-vm` profile: what exceeds the allowance, at list prices.
pub fn estimate(profile: &Profile, t: &PriceTable) -> Estimate {
    let a = &t.always_free;
    let h = t.hours_per_month;
    let vm = &profile.vm;
    let mut lines = Vec::new();
    let shape = vm.shape.name();
    let (free_ocpus, free_mem) = if shape == "VM.Standard.A1.Flex" {
        (a.a1_ocpus, a.a1_memory_gbs)
    } else {
        (0.0, 0.0)
    };
    let (extra_ocpus, extra_mem) = (
        (vm.ocpus - free_ocpus).max(0.0),
        (vm.memory_gbs - free_mem).max(0.0),
    );
    let (monthly, basis) = match t.compute.get(shape) {
        Some(rate) => (
            round2(h * (extra_ocpus * rate.ocpu_hour + extra_mem * rate.memory_gb_hour)),
            format!(
                "{shape}: {} OCPU + {} GB; {free_ocpus} OCPU + {free_mem} GB Always Free",
                vm.ocpus, vm.memory_gbs
            ),
        ),
        None => (0.0, format!("{shape} is not in the price table")),
    };
    lines.push(Line {
        item: "compute instance".into(),
        monthly,
        basis,
    });
    let storage = f64::from(vm.boot_volume_gbs) + f64::from(vm.block_volume_gbs);
    lines.push(Line {
        item: "boot and block volumes".into(),
        monthly: round2((storage - a.block_storage_gbs).max(0.0) * t.block_volume.storage_gb_month),
        basis: format!("{storage} GB; {} GB Always Free", a.block_storage_gbs),
    });
    let lb = &t.load_balancer;
    let mbps = f64::from(profile.load_balancer.max_bandwidth_mbps);
    let lb_monthly = if mbps <= a.load_balancer_mbps {
        0.0
    } else {
        round2(h * (lb.base_hour + mbps * lb.bandwidth_mbps_hour))
    };
    lines.push(Line {
        item: "flexible load balancer".into(),
        monthly: lb_monthly,
        basis: format!(
            "up to {mbps} Mbps; one at {} Mbps Always Free (if it is the account's only one)",
            a.load_balancer_mbps
        ),
    });
    lines.push(Line {
        item: "bucket".into(),
        monthly: 0.0,
        basis: format!(
            "billed by use above {} GB stored (Always Free); not in an estimate",
            a.object_storage_gbs
        ),
    });
    lines.push(Line {
        item: "VCN, gateways, IAM, alarms, notifications".into(),
        monthly: 0.0,
        basis: "no charge of their own (email notifications within the free monthly count)".into(),
    });
    let total = round2(lines.iter().map(|l| l.monthly).sum());
    Estimate {
        currency: t.currency.clone(),
        prices_as_of: t.as_of.clone(),
        prices_source: t.source.clone(),
        allowance: a.clone(),
        lines,
        total,
        outside_allowance: outside_allowance(profile, a),
    }
}

/// The estimate as text for a terminal.
pub fn render_text(e: &Estimate) -> String {
    let mut s = format!(
        "Monthly estimate, Always Free allowance assumed ({} A1 OCPUs, {} GB memory, {} GB block storage, one {} Mbps load balancer, {} GB Object Storage); prices as of {}:\n",
        e.allowance.a1_ocpus,
        e.allowance.a1_memory_gbs,
        e.allowance.block_storage_gbs,
        e.allowance.load_balancer_mbps,
        e.allowance.object_storage_gbs,
        e.prices_as_of
    );
    for l in &e.lines {
        s.push_str(&format!(
            "  {:<42} {:>8.2} {}  ({})\n",
            l.item, l.monthly, e.currency, l.basis
        ));
    }
    s.push_str(&format!(
        "  {:<42} {:>8.2} {}\n",
        "total", e.total, e.currency
    ));
    s
}
