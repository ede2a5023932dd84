//! The VM's cloud-init user data (`#cloud-config`), built from a typed structure and written
//! with serde: JSON is YAML, so the document needs no hand-written quoting and cloud-init's
//! YAML parser reads it as it is written. Pure: no I/O.
//!
//! Image: Oracle Linux 9 (aarch64 on Ampere A1). It is OCI's own platform image: its `dnf`
//! repositories are OCI's regional mirrors, reachable through the VCN's service gateway, and
//! it ships the Oracle Cloud Agent whose Compute Instance Monitoring plugin gives the CPU
//! metrics the alarm reads. Its AppStream has PostgreSQL 15 and 16 and Redis 7 as module
//! streams, so the server binaries the local target needs (`initdb`, `pg_ctl`, `postgres`,
//! `redis-server`, all on PATH in `/usr/bin`) come from the distribution.
//!
//! What it does at first boot, in order: (with a block volume) wait for it at its consistent
//! device path, make an XFS file system if it has none and mount it at [`DATA_DIR`]; enable the
//! module streams and install PostgreSQL and Redis; make the `calops` system user's directories;
//! open the service port in firewalld; install the OCI CLI (Oracle Linux's developer repository)
//! for the bootstrap; install and enable the agent's systemd unit, which starts once the binary
//! is at [`AGENT_BINARY`], and the bootstrap unit, which puts it there: it waits for the first
//! desired release in the bucket, downloads its binary with the instance principal, checks its
//! sha256 and starts the agent (once; the agent updates itself after each switch).

use serde::Serialize;

/// Where the service's state lives (the local target's `.calops/`, PostgreSQL's cluster).
pub const DATA_DIR: &str = "/var/lib/calops";
/// The agent binary (the same calops binary, arm64).
pub const AGENT_BINARY: &str = "/opt/calops/bin/calops";
/// The agent's environment file (non-secret settings only).
pub const AGENT_ENV: &str = "/etc/calops/agent.env";
pub const AGENT_UNIT: &str = "/etc/systemd/system/calops-agent.service";
pub const DATA_VOLUME_SCRIPT: &str = "/usr/local/sbin/calops-data-volume";
pub const BOOTSTRAP_SCRIPT: &str = "/usr/local/sbin/calops-agent-bootstrap";
pub const BOOTSTRAP_UNIT: &str = "/etc/systemd/system/calops-agent-bootstrap.service";
pub const USER: &str = "calops";

/// The inputs of the user data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmInit {
    pub profile: String,
    pub region: String,
    pub bucket: String,
    /// The service's port (the load balancer's backend port).
    pub port: u16,
    /// `15` or `16` (the AppStream module stream).
    pub postgres_version: String,
    /// The block volume's device, when there is one.
    pub data_device: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UserEntry {
    /// `default`: the image's own user (kept; it gets no SSH key from calops).
    Named(String),
    System {
        name: String,
        system: bool,
        homedir: String,
        shell: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriteFile {
    pub path: String,
    pub permissions: String,
    pub owner: String,
    pub content: String,
}

/// The `#cloud-config` document (only the modules calops uses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudConfig {
    pub users: Vec<UserEntry>,
    pub write_files: Vec<WriteFile>,
    /// Each command an argv list (cloud-init runs lists without a shell).
    pub runcmd: Vec<Vec<String>>,
}

impl CloudConfig {
    /// The user data text: `#cloud-config` and the document.
    pub fn to_user_data(&self) -> String {
        let body = serde_json::to_string_pretty(self).unwrap_or_default();
        format!("#cloud-config\n{body}\n")
    }
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// The agent's systemd unit.
pub fn agent_unit() -> String {
    format!(
        "[Unit]
Description=calops agent: takes releases from the bucket and runs the service (deploy by pull)
Wants=network-online.target
After=network-online.target
# Installed by deploy by pull; until then the unit is skipped, not failed.
ConditionPathExists={AGENT_BINARY}

[Service]
Type=simple
User={USER}
Group={USER}
EnvironmentFile={AGENT_ENV}
WorkingDirectory={DATA_DIR}
ExecStart={AGENT_BINARY} agent
Restart=always
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={DATA_DIR} /opt/calops

[Install]
WantedBy=multi-user.target
"
    )
}

/// The agent's environment: names only what is not secret (it signs as the instance principal,
/// and finds its region with the metadata service). The profile comes with each release; the
/// VM sets only where the service listens (`CALOPS_LOCAL_*`, the one section the agent takes
/// from its environment): on every address, on the load balancer's backend port.
pub fn agent_env(init: &VmInit) -> String {
    format!(
        "CALOPS_PROFILE={}\nCALOPS_BUCKET={}\nCALOPS_LOCAL_BIND=0.0.0.0\nCALOPS_LOCAL_PORT={}\nCALOPS_AGENT_BINARY={AGENT_BINARY}\n",
        init.profile, init.bucket, init.port
    )
}

/// Put the agent in place once: the binary of the desired release, checked against its digest.
/// Run by [`bootstrap_unit`] as root until it succeeds (the bucket has no release before the
/// first `calops deploy`).
pub fn bootstrap_script() -> String {
    format!(
        r#"#!/bin/sh
# Made by calops: installs the agent (the calops binary of the desired release) once.
set -eu
. {AGENT_ENV}
export OCI_CLI_AUTH=instance_principal
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
oci os object get --bucket-name "$CALOPS_BUCKET" --name {desired} --file "$tmp/desired.json"
digest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"])' "$tmp/desired.json")
hex=${{digest#sha256:}}
oci os object get --bucket-name "$CALOPS_BUCKET" --name "{prefix}releases/$hex/calops" --file "$tmp/calops"
echo "$hex  $tmp/calops" | sha256sum -c -
install -o {USER} -g {USER} -m 0755 "$tmp/calops" {AGENT_BINARY}.new
mv {AGENT_BINARY}.new {AGENT_BINARY}
systemctl start calops-agent.service
"#,
        desired = crate::pull::DESIRED,
        prefix = crate::pull::PREFIX,
    )
}

/// The bootstrap's unit: retried every 30 s until the agent's binary is there.
pub fn bootstrap_unit() -> String {
    format!(
        "[Unit]
Description=calops agent bootstrap: the first release's binary from the bucket
Wants=network-online.target
After=network-online.target
ConditionPathExists=!{AGENT_BINARY}

[Service]
Type=oneshot
ExecStart={BOOTSTRAP_SCRIPT}
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
"
    )
}

/// Wait for the block volume, give it a file system once, mount it at [`DATA_DIR`] (and in
/// fstab, by label, `nofail` so a missing volume does not stop the boot).
pub fn data_volume_script(device: &str) -> String {
    format!(
        r#"#!/bin/sh
# Made by calops: PostgreSQL's data volume at {DATA_DIR}.
set -eu
dev={device}
i=0
while [ ! -e "$dev" ]; do
  i=$((i + 1))
  if [ "$i" -gt 300 ]; then echo "calops: $dev did not appear in 5 minutes" >&2; exit 1; fi
  sleep 1
done
if ! blkid "$dev" >/dev/null 2>&1; then mkfs.xfs -L calops-data "$dev"; fi
mkdir -p {DATA_DIR}
grep -q 'LABEL=calops-data' /etc/fstab || echo 'LABEL=calops-data {DATA_DIR} xfs defaults,nofail 0 2' >> /etc/fstab
mountpoint -q {DATA_DIR} || mount {DATA_DIR}
"#
    )
}

/// The user data for `init`.
pub fn cloud_config(init: &VmInit) -> CloudConfig {
    let mut write_files = vec![
        WriteFile {
            path: AGENT_ENV.into(),
            permissions: "0644".into(),
            owner: "root:root".into(),
            content: agent_env(init),
        },
        WriteFile {
            path: AGENT_UNIT.into(),
            permissions: "0644".into(),
            owner: "root:root".into(),
            content: agent_unit(),
        },
    ];
    write_files.push(WriteFile {
        path: BOOTSTRAP_SCRIPT.into(),
        permissions: "0755".into(),
        owner: "root:root".into(),
        content: bootstrap_script(),
    });
    write_files.push(WriteFile {
        path: BOOTSTRAP_UNIT.into(),
        permissions: "0644".into(),
        owner: "root:root".into(),
        content: bootstrap_unit(),
    });
    let mut runcmd = Vec::new();
    if let Some(device) = &init.data_device {
        write_files.push(WriteFile {
            path: DATA_VOLUME_SCRIPT.into(),
            permissions: "0755".into(),
            owner: "root:root".into(),
            content: data_volume_script(device),
        });
        runcmd.push(argv(&[DATA_VOLUME_SCRIPT]));
    }
    let pg_stream = format!("postgresql:{}", init.postgres_version);
    runcmd.extend([
        argv(&["dnf", "-y", "module", "enable", &pg_stream, "redis:7"]),
        argv(&[
            "dnf",
            "-y",
            "install",
            "postgresql-server",
            "postgresql-contrib",
            "redis",
        ]),
        argv(&[
            "install", "-d", "-o", USER, "-g", USER, "-m", "0750", DATA_DIR,
        ]),
        argv(&[
            "install",
            "-d",
            "-o",
            USER,
            "-g",
            USER,
            "-m",
            "0755",
            "/opt/calops/bin",
        ]),
        argv(&[
            "firewall-offline-cmd",
            &format!("--add-port={}/tcp", init.port),
        ]),
        argv(&["systemctl", "reload-or-restart", "firewalld"]),
        argv(&["dnf", "-y", "install", "oraclelinux-developer-release-el9"]),
        argv(&["dnf", "-y", "install", "python39-oci-cli"]),
        argv(&["systemctl", "daemon-reload"]),
        argv(&["systemctl", "enable", "--now", "calops-agent.service"]),
        argv(&[
            "systemctl",
            "enable",
            "--now",
            "calops-agent-bootstrap.service",
        ]),
    ]);
    CloudConfig {
        users: vec![
            UserEntry::Named("default".into()),
            UserEntry::System {
                name: USER.into(),
                system: true,
                homedir: DATA_DIR.into(),
                shell: "/sbin/nologin".into(),
            },
        ],
        write_files,
        runcmd,
    }
}
