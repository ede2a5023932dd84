//! Cross-build detection and the cargo invocation that builds `calops` for a platform.
//!
//! `probe` looks at the machine (I/O); `plan` decides from those facts (pure) and either returns
//! a [`CrossPlan`] or an error with the exact commands that install what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What the machine offers for building Rust code for other targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Host triple of the default `rustc` (e.g. x86_64-unknown-linux-gnu).
    pub host: String,
    /// Targets whose standard library the default (rustup) toolchain has.
    pub default_targets: Vec<String>,
    /// A second compiler (Debian's `/usr/bin/rustc` from rustc-web) and the targets it has std for.
    pub alt_rustc: Option<(PathBuf, Vec<String>)>,
    /// Linkers found, by target triple.
    pub linkers: BTreeMap<String, PathBuf>,
    /// `cargo-zigbuild` (and `zig`) are installed.
    pub zigbuild: bool,
}

/// Overrides from options (profile or tests): a specific linker or compiler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Linker command or path per target triple; replaces the default `<arch>-linux-gnu-gcc`.
    pub linkers: BTreeMap<String, String>,
    /// An alternative rustc to consider (default `/usr/bin/rustc`).
    pub alt_rustc: Option<PathBuf>,
}

/// How one target gets built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrossPlan {
    /// The host target with the default toolchain: plain `cargo build` (shares the host build).
    Native,
    /// The default (rustup) toolchain has the target's std; link with `linker`.
    Rustup { target: String, linker: PathBuf },
    /// A separate rustc (Debian rustc-web) has the target's std. Builds go to their own
    /// target dir because artifacts of two compilers must not mix.
    AltRustc {
        target: String,
        rustc: PathBuf,
        linker: PathBuf,
    },
    /// `cargo zigbuild --target` with the default toolchain's std.
    Zigbuild { target: String },
}

impl CrossPlan {
    pub fn describe(&self) -> String {
        match self {
            CrossPlan::Native => "native cargo build".into(),
            CrossPlan::Rustup { target, linker } => {
                format!("rustup std for {target}, linker {}", linker.display())
            }
            CrossPlan::AltRustc {
                target,
                rustc,
                linker,
            } => format!(
                "{} with {target} std, linker {}",
                rustc.display(),
                linker.display()
            ),
            CrossPlan::Zigbuild { target } => format!("cargo zigbuild --target {target}"),
        }
    }
}

/// The default cross linker for a target triple.
pub fn default_linker(target: &str) -> Option<&'static str> {
    match target {
        "aarch64-unknown-linux-gnu" => Some("aarch64-linux-gnu-gcc"),
        "x86_64-unknown-linux-gnu" => Some("x86_64-linux-gnu-gcc"),
        _ => None,
    }
}

fn debian_arch(target: &str) -> &str {
    match target {
        "aarch64-unknown-linux-gnu" => "arm64",
        "x86_64-unknown-linux-gnu" => "amd64",
        other => other,
    }
}

/// Decide how to build `target` from the facts. Pure.
pub fn plan(target: &str, facts: &Facts) -> Result<CrossPlan, crate::error::Actionable> {
    if target == facts.host {
        return Ok(CrossPlan::Native);
    }
    let linker = facts.linkers.get(target).cloned();
    let has_default_std = facts.default_targets.iter().any(|t| t == target);
    if has_default_std {
        if let Some(linker) = &linker {
            return Ok(CrossPlan::Rustup {
                target: target.into(),
                linker: linker.clone(),
            });
        }
        if facts.zigbuild {
            return Ok(CrossPlan::Zigbuild {
                target: target.into(),
            });
        }
    }
    if let Some((rustc, targets)) = &facts.alt_rustc {
        if targets.iter().any(|t| t == target) {
            if let Some(linker) = &linker {
                return Ok(CrossPlan::AltRustc {
                    target: target.into(),
                    rustc: rustc.clone(),
                    linker: linker.clone(),
                });
            }
        }
    }
    let has_alt_std = facts
        .alt_rustc
        .as_ref()
        .is_some_and(|(_, t)| t.iter().any(|x| x == target));
    let arch = debian_arch(target);
    let linker_name = default_linker(target).unwrap_or("the target's C linker");
    let mut missing = Vec::new();
    let mut fixes = Vec::new();
    if !has_default_std && !has_alt_std {
        missing.push(format!("no Rust standard library for {target}"));
        fixes.push(format!(
            "rustup target add {target}   (or, on Debian 12: dpkg --add-architecture {arch} && apt-get update && apt-get install -y --no-install-recommends rustc-web libstd-rust-web-dev:{arch})"
        ));
    }
    if linker.is_none() {
        missing.push(format!("no linker for {target} ({linker_name} not found)"));
        fixes.push(format!(
            "apt-get install -y --no-install-recommends gcc-{}-linux-gnu libc6-dev-{arch}-cross   (or: cargo install cargo-zigbuild, plus zig)",
            target.split('-').next().unwrap_or(arch)
        ));
    }
    Err(crate::error::Actionable {
        what: format!(
            "cannot cross-build calops for {target}: {}",
            missing.join("; ")
        ),
        fix: fixes.join("\n  then: "),
    })
}

/// For `doctor`: how each platform would be built here, or what to install.
pub fn check_platforms(
    platforms: &[super::platform::Platform],
    overrides: &Overrides,
) -> Vec<(
    super::platform::Platform,
    Result<CrossPlan, crate::error::Actionable>,
)> {
    let targets: Vec<&str> = platforms.iter().filter_map(|p| p.rust_target()).collect();
    let facts = probe(overrides, &targets);
    platforms
        .iter()
        .map(|p| {
            let r = match p.rust_target() {
                Some(t) => plan(t, &facts),
                None => Err(crate::error::Actionable {
                    what: format!("unsupported platform {p}"),
                    fix: "use linux/amd64 or linux/arm64".into(),
                }),
            };
            (p.clone(), r)
        })
        .collect()
}

/// Look at the machine: default rustc's host and targets, Debian's rustc, linkers, zigbuild.
pub fn probe(overrides: &Overrides, wanted_targets: &[&str]) -> Facts {
    let rustc = std::env::var_os("RUSTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("rustc"));
    let host = rustc_host(&rustc).unwrap_or_default();
    let default_targets = rustc_sysroot(&rustc)
        .map(|s| std_targets(&s))
        .unwrap_or_default();
    let alt = overrides
        .alt_rustc
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/bin/rustc"));
    let same_as_default = which::which(&rustc)
        .ok()
        .and_then(|p| p.canonicalize().ok())
        == alt.canonicalize().ok();
    let alt_rustc = if alt.exists() && !same_as_default {
        rustc_sysroot(&alt).map(|s| (alt.clone(), std_targets(&s)))
    } else {
        None
    };
    let mut linkers = BTreeMap::new();
    for t in wanted_targets {
        let name = overrides
            .linkers
            .get(*t)
            .map(String::as_str)
            .or(default_linker(t));
        if let Some(p) = name.and_then(|n| which::which(n).ok()) {
            linkers.insert(t.to_string(), p);
        }
    }
    let zigbuild = which::which("cargo-zigbuild").is_ok() && which::which("zig").is_ok();
    Facts {
        host,
        default_targets,
        alt_rustc,
        linkers,
        zigbuild,
    }
}

fn rustc_host(rustc: &Path) -> Option<String> {
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
}

fn rustc_sysroot(rustc: &Path) -> Option<PathBuf> {
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Targets under `<sysroot>/lib/rustlib/` whose `lib/` holds a `libstd-*.rlib`.
pub fn std_targets(sysroot: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(sysroot.join("lib").join("rustlib")) else {
        return out;
    };
    for ent in rd.flatten() {
        let lib = ent.path().join("lib");
        let has_std = std::fs::read_dir(&lib).is_ok_and(|files| {
            files.flatten().any(|f| {
                let n = f.file_name();
                let n = n.to_string_lossy();
                n.starts_with("libstd-") && n.ends_with(".rlib")
            })
        });
        if has_std {
            out.push(ent.file_name().to_string_lossy().to_string());
        }
    }
    out.sort();
    out
}

/// A cargo invocation, kept as data so it can be shown and tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoCommand {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where the built binary will be.
    pub binary: PathBuf,
}

impl CargoCommand {
    /// The command line as a person would type it (for messages and `-v`).
    pub fn display(&self) -> String {
        let env: Vec<String> = self.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut parts = env;
        parts.push(self.program.clone());
        parts.extend(self.args.iter().cloned());
        parts.join(" ")
    }
}

/// What to build: a package's binary with a cargo profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoBuild {
    pub manifest_path: PathBuf,
    pub bin: String,
    /// Cargo profile name: `release` (default for images) or `dev`.
    pub profile: String,
    /// The host build's target dir (cross builds with another rustc go under it).
    pub target_dir: PathBuf,
    /// Pass `--locked`.
    pub locked: bool,
}

/// Build the cargo command for one plan. Pure.
pub fn cargo_command(plan: &CrossPlan, b: &CargoBuild) -> CargoCommand {
    let profile_dir = match b.profile.as_str() {
        "dev" | "test" => "debug",
        "bench" => "release",
        p => p,
    };
    let mut args = vec!["build".to_string()];
    let mut env = Vec::new();
    let mut target_dir = b.target_dir.clone();
    let target = match plan {
        CrossPlan::Native => None,
        CrossPlan::Rustup { target, linker } => {
            env.push((linker_env(target), linker.display().to_string()));
            Some(target.clone())
        }
        CrossPlan::AltRustc {
            target,
            rustc,
            linker,
        } => {
            env.push(("RUSTC".to_string(), rustc.display().to_string()));
            env.push((linker_env(target), linker.display().to_string()));
            target_dir = b.target_dir.join("cross-debian");
            Some(target.clone())
        }
        CrossPlan::Zigbuild { target } => {
            args[0] = "zigbuild".into();
            Some(target.clone())
        }
    };
    args.extend([
        "--manifest-path".to_string(),
        b.manifest_path.display().to_string(),
        "--bin".into(),
        b.bin.clone(),
        "--profile".into(),
        b.profile.clone(),
        "--target-dir".into(),
        target_dir.display().to_string(),
    ]);
    if b.locked {
        args.push("--locked".into());
    }
    let mut binary = target_dir.clone();
    if let Some(t) = &target {
        args.extend(["--target".to_string(), t.clone()]);
        binary = binary.join(t);
    }
    binary = binary.join(profile_dir).join(&b.bin);
    CargoCommand {
        program: "cargo".into(),
        args,
        env,
        binary,
    }
}

fn linker_env(target: &str) -> String {
    format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_ascii_uppercase().replace('-', "_")
    )
}

/// Run a cargo command; on failure the error carries the command and cargo's last output lines.
pub fn run_cargo(cmd: &CargoCommand) -> anyhow::Result<PathBuf> {
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.args);
    // Settings of an outer cargo (e.g. under `cargo test`) must not leak into this build.
    for var in [
        "RUSTC",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        c.env_remove(var);
    }
    for (k, v) in &cmd.env {
        c.env(k, v);
    }
    let out = c.output().map_err(|e| {
        crate::error::actionable(
            format!("cannot run `{}`: {e}", cmd.program),
            "install Rust with cargo (https://rustup.rs) and make sure it is on PATH",
        )
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(25).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow::bail!(
            "cargo build failed ({}):\n  {}\n{}",
            out.status,
            cmd.display(),
            tail.join("\n")
        );
    }
    anyhow::ensure!(
        cmd.binary.is_file(),
        "cargo build succeeded but {} does not exist",
        cmd.binary.display()
    );
    Ok(cmd.binary.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARM: &str = "aarch64-unknown-linux-gnu";
    const X86: &str = "x86_64-unknown-linux-gnu";

    fn facts() -> Facts {
        Facts {
            host: X86.into(),
            default_targets: vec![X86.into()],
            alt_rustc: Some(("/usr/bin/rustc".into(), vec![ARM.into(), X86.into()])),
            linkers: [(
                ARM.to_string(),
                PathBuf::from("/usr/bin/aarch64-linux-gnu-gcc"),
            )]
            .into_iter()
            .collect(),
            zigbuild: false,
        }
    }

    fn build() -> CargoBuild {
        CargoBuild {
            manifest_path: "/src/Cargo.toml".into(),
            bin: "calops".into(),
            profile: "release".into(),
            target_dir: "/src/target".into(),
            locked: true,
        }
    }

    #[test]
    fn host_target_is_native() {
        assert_eq!(plan(X86, &facts()).unwrap(), CrossPlan::Native);
        let c = cargo_command(&CrossPlan::Native, &build());
        assert_eq!(c.binary, PathBuf::from("/src/target/release/calops"));
        assert!(!c.args.contains(&"--target".to_string()));
        assert!(c.env.is_empty());
    }

    #[test]
    fn debian_rustc_gets_its_own_target_dir_and_linker() {
        let p = plan(ARM, &facts()).unwrap();
        assert!(matches!(p, CrossPlan::AltRustc { .. }));
        let c = cargo_command(&p, &build());
        assert_eq!(
            c.display(),
            "RUSTC=/usr/bin/rustc CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=/usr/bin/aarch64-linux-gnu-gcc cargo build --manifest-path /src/Cargo.toml --bin calops --profile release --target-dir /src/target/cross-debian --locked --target aarch64-unknown-linux-gnu"
        );
        assert_eq!(
            c.binary,
            PathBuf::from("/src/target/cross-debian/aarch64-unknown-linux-gnu/release/calops")
        );
    }

    #[test]
    fn rustup_std_is_preferred_and_zigbuild_is_a_fallback_linker() {
        let mut f = facts();
        f.default_targets.push(ARM.into());
        let p = plan(ARM, &f).unwrap();
        assert!(matches!(p, CrossPlan::Rustup { .. }));
        let mut b = build();
        b.profile = "dev".into();
        let c = cargo_command(&p, &b);
        assert_eq!(
            c.binary,
            PathBuf::from("/src/target/aarch64-unknown-linux-gnu/debug/calops")
        );
        f.linkers.clear();
        f.zigbuild = true;
        let z = plan(ARM, &f).unwrap();
        assert_eq!(cargo_command(&z, &b).args[0], "zigbuild");
    }

    #[test]
    fn missing_linker_or_std_names_the_install_commands() {
        let mut f = facts();
        f.linkers.clear();
        let e = plan(ARM, &f).unwrap_err();
        assert!(e.what.contains("no linker"), "{}", e.what);
        assert!(e.fix.contains("apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross"), "{}", e.fix);
        f.alt_rustc = None;
        let e = plan(ARM, &f).unwrap_err();
        assert!(e.what.contains("no Rust standard library"), "{}", e.what);
        assert!(e
            .fix
            .contains("rustup target add aarch64-unknown-linux-gnu"));
        assert!(e.fix.contains("libstd-rust-web-dev:arm64"));
    }

    #[test]
    fn std_targets_reads_a_sysroot() {
        let d = tempfile::tempdir().unwrap();
        let lib = d.path().join("lib/rustlib/aarch64-unknown-linux-gnu/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libstd-abc.rlib"), b"").unwrap();
        std::fs::create_dir_all(d.path().join("lib/rustlib/etc")).unwrap();
        assert_eq!(std_targets(d.path()), vec![ARM.to_string()]);
    }
}
