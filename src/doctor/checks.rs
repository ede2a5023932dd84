//! The individual checks. Each takes what it needs and returns one [`Check`].

use super::tools::{self, Version};
use super::{Check, Report};
use crate::profile::{Profile, Target};

const TF_MIN: Version = Version(1, 5, 0);
/// The S3-compatible state backend with OCI Object Storage needs `endpoints`/`use_path_style`.
const TF_S3_BACKEND: Version = Version(1, 6, 0);
const TF_NATIVE_OCI_BACKEND: Version = Version(1, 12, 0);

/// Run every check that applies to `profile` (or the machine-wide ones without a profile).
pub fn run(profile: Option<&Profile>) -> Report {
    let target = profile.map(|p| p.target);
    let mut checks = vec![terraform(profile)];
    let oci = target == Some(Target::Oci);
    if oci {
        if profile
            .map(|p| p.image.builder == "buildx")
            .unwrap_or(false)
        {
            checks.push(docker_buildx());
        }
        checks.push(rust_toolchain());
        let platforms = profile
            .map(|p| p.image.platforms.clone())
            .unwrap_or_default();
        if profile
            .map(|p| p.image.builder == "native")
            .unwrap_or(false)
        {
            checks.extend(cross_targets(&platforms));
        }
    }
    if target == Some(Target::Local) || target.is_none() {
        checks.push(postgres(target == Some(Target::Local)));
        checks.push(redis());
    }
    if let Some(p) = profile {
        if p.target == Target::Oci {
            checks.extend(super::oci::checks(p));
        }
        if p.target == Target::OciVm {
            checks.push(always_free(p));
        }
    }
    Report {
        profile: profile.map(|p| p.name.clone()),
        target: profile.map(|p| p.target.name().into()),
        checks,
    }
}

/// An `oci-vm` profile's sizes against the Always Free allowance the price table assumes.
pub fn always_free(p: &Profile) -> Check {
    let t = crate::terraform::cost::PriceTable::bundled();
    let outside = crate::terraform::freetier::outside_allowance(p, &t.always_free);
    if outside.is_empty() {
        Check::ok(
            "always free",
            false,
            format!(
                "[vm] and [load_balancer] sizes are within the Always Free allowance assumed (prices as of {})",
                t.as_of
            ),
        )
    } else {
        Check::warn(
            "always free",
            false,
            format!("outside the Always Free allowance: {}", outside.join("; ")),
            "lower the sizes named, or accept the charge (`calops plan` estimates it)",
        )
    }
}

pub fn terraform(profile: Option<&Profile>) -> Check {
    let required = profile.map(|p| p.target == Target::Oci).unwrap_or(false);
    let install = "install Terraform >= 1.5 (HashiCorp's apt repository: `apt-get install terraform`), or set CALOPS_TERRAFORM=/path/to/terraform";
    let Some(path) = tools::terraform() else {
        return Check::fail(
            "terraform",
            required,
            "terraform not found on PATH (nor CALOPS_TERRAFORM)",
            install,
        );
    };
    let Some(v) = tools::run_capture(&path, &["version", "-json"])
        .and_then(|(o, _)| tools::parse_terraform_version(&o))
    else {
        return Check::fail(
            "terraform",
            required,
            "terraform did not report its version",
            install,
        )
        .at(&path);
    };
    if v < TF_MIN {
        return Check::fail(
            "terraform",
            required,
            format!("terraform {v} is older than {TF_MIN}"),
            install,
        )
        .found(v.to_string())
        .at(&path);
    }
    let oci_state = profile
        .map(|p| p.target == Target::Oci && p.state.backend == "oci")
        .unwrap_or(false);
    if v < TF_S3_BACKEND && oci_state {
        return Check::fail(
            "terraform",
            required,
            format!("terraform {v} cannot keep state in Object Storage: its S3-compatible backend needs >= {TF_S3_BACKEND} (and >= 1.12 for the native `oci` backend, which locks)"),
            "upgrade Terraform to >= 1.12, or set `[state] backend = \"local\"`",
        )
        .found(v.to_string())
        .at(&path);
    }
    if v < TF_NATIVE_OCI_BACKEND && oci_state {
        return Check::warn(
            "terraform",
            required,
            format!("terraform {v} works, but only >= 1.12 has the native OCI state backend; older versions use the S3-compatible endpoint, which has no state locking"),
            "upgrade Terraform to >= 1.12 for state locking in Object Storage",
        )
        .found(v.to_string())
        .at(&path);
    }
    let mut c = Check::ok("terraform", required, format!("terraform {v}"))
        .found(v.to_string())
        .at(&path);
    if v < TF_NATIVE_OCI_BACKEND {
        c.detail
            .push_str(" (>= 1.12 brings the native OCI state backend)");
    }
    c
}

pub fn docker_buildx() -> Check {
    let fix = "install Docker with the buildx plugin (`apt-get install docker.io docker-buildx`), or set `[image] builder = \"native\"` to build without Docker";
    let Some(docker) = tools::find("docker") else {
        return Check::fail(
            "docker-buildx",
            true,
            "docker not found, and [image] builder = \"buildx\" needs it",
            fix,
        );
    };
    match tools::run_version(&docker, &["buildx", "version"]).and_then(|o| tools::parse_version(&o))
    {
        Some(v) => Check::ok("docker-buildx", true, format!("docker buildx {v}"))
            .found(v.to_string())
            .at(&docker),
        None => Check::fail(
            "docker-buildx",
            true,
            "docker is installed but `docker buildx version` failed",
            fix,
        )
        .at(&docker),
    }
}

pub fn rust_toolchain() -> Check {
    let fix = "install Rust with rustup (https://rustup.rs) or Debian's `apt-get install rustc-web cargo-web`";
    let Some(cargo) = tools::find("cargo") else {
        return Check::fail(
            "rust",
            true,
            "cargo not found; building the service image needs a Rust toolchain",
            fix,
        );
    };
    let rustc = tools::find("rustc");
    match rustc
        .as_deref()
        .and_then(|r| tools::run_version(r, &["--version"]))
        .and_then(|o| tools::parse_version(&o))
    {
        Some(v) => Check::ok("rust", true, format!("rustc {v}"))
            .found(v.to_string())
            .at(&cargo),
        None => Check::fail("rust", true, "rustc did not report its version", fix).at(&cargo),
    }
}

/// Can this machine build the image for each platform? Asks the same planner the image build
/// uses, so doctor and `calops image build` never disagree. The host platform needs nothing.
pub fn cross_targets(platforms: &[String]) -> Vec<Check> {
    use crate::image::platform::Platform;
    use crate::image::toolchain::{check_platforms, CrossPlan, Overrides};
    let parsed: Vec<Platform> = platforms.iter().filter_map(|p| p.parse().ok()).collect();
    check_platforms(&parsed, &Overrides::default())
        .into_iter()
        .filter_map(|(p, plan)| {
            let name = format!("cross-{p}");
            match plan {
                Ok(CrossPlan::Native) => None,
                Ok(plan) => Some(
                    Check::ok(&name, true, format!("can build {p}: {}", plan.describe()))
                        .found(p.to_string()),
                ),
                Err(e) => Some(Check::fail(&name, true, e.what, e.fix)),
            }
        })
        .collect()
}

pub fn postgres(required: bool) -> Check {
    let fix = "apt-get install postgresql (the server binaries initdb, pg_ctl and postgres; they need not be on PATH)";
    match tools::postgres_bin_dir() {
        Some(dir) => {
            let v = tools::run_version(&dir.join("postgres"), &["--version"]).and_then(|o| tools::parse_version(&o));
            let mut c = Check::ok("postgresql", required, format!("PostgreSQL server binaries in {}", dir.display())).at(&dir);
            if let Some(v) = v {
                c.found = Some(v.to_string());
            }
            c
        }
        None => Check::fail("postgresql", required, "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, via pg_config --bindir, or under /usr/lib/postgresql/*/bin", fix),
    }
}

pub fn redis() -> Check {
    let fix = "apt-get install redis-server (optional: without it the service uses in-process rate limits and locks)";
    match tools::find("redis-server") {
        Some(p) => match tools::run_version(&p, &["--version"])
            .and_then(|o| tools::parse_redis_version(&o))
        {
            Some(v) => Check::ok("redis", false, format!("redis-server {v}"))
                .found(v.to_string())
                .at(&p),
            None => Check::fail(
                "redis",
                false,
                "redis-server did not report its version",
                fix,
            )
            .at(&p),
        },
        None => Check::fail("redis", false, "redis-server not found (optional)", fix),
    }
}
