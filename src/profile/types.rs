//! Newtypes parsed once at the profile boundary and trusted everywhere else.
//!
//! Each `parse` returns a message that says what is wrong and what is allowed; the reader adds
//! the file, line, column and field path.

use serde::Serialize;
use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 network in CIDR notation whose address is the network address (`10.0.1.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cidr(ipnet::Ipv4Net);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let net: ipnet::Ipv4Net = s
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 CIDR block; write it like `10.0.0.0/16`"))?;
        if net.network() != net.addr() {
            return Err(format!(
                "`{s}` has host bits set; the network address is `{}`",
                net.trunc()
            ));
        }
        if net.prefix_len() < 16 || net.prefix_len() > 30 {
            return Err(format!(
                "`{s}` has prefix /{}; OCI VCNs and subnets take /16 to /30",
                net.prefix_len()
            ));
        }
        Ok(Cidr(net))
    }
    pub fn contains(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0)
    }
    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.0.contains(&other.0.network()) || other.0.contains(&self.0.network())
    }
    pub fn network(&self) -> Ipv4Addr {
        self.0.network()
    }
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        c.to_string()
    }
}

/// OCI commercial regions: identifier and the short key used in OCIR hostnames.
pub const REGIONS: &[(&str, &str)] = &[
    ("af-johannesburg-1", "jnb"),
    ("ap-batam-1", "hsg"),
    ("ap-chuncheon-1", "yny"),
    ("ap-hyderabad-1", "hyd"),
    ("ap-melbourne-1", "mel"),
    ("ap-mumbai-1", "bom"),
    ("ap-osaka-1", "kix"),
    ("ap-seoul-1", "icn"),
    ("ap-singapore-1", "sin"),
    ("ap-singapore-2", "xsp"),
    ("ap-sydney-1", "syd"),
    ("ap-tokyo-1", "nrt"),
    ("ca-montreal-1", "yul"),
    ("ca-toronto-1", "yyz"),
    ("eu-amsterdam-1", "ams"),
    ("eu-frankfurt-1", "fra"),
    ("eu-jovanovac-1", "beg"),
    ("eu-madrid-1", "mad"),
    ("eu-marseille-1", "mrs"),
    ("eu-milan-1", "lin"),
    ("eu-paris-1", "cdg"),
    ("eu-stockholm-1", "arn"),
    ("eu-zurich-1", "zrh"),
    ("il-jerusalem-1", "mtz"),
    ("me-abudhabi-1", "auh"),
    ("me-dubai-1", "dxb"),
    ("me-jeddah-1", "jed"),
    ("me-riyadh-1", "ruh"),
    ("mx-monterrey-1", "mty"),
    ("mx-queretaro-1", "qro"),
    ("sa-bogota-1", "bog"),
    ("sa-santiago-1", "scl"),
    ("sa-saopaulo-1", "gru"),
    ("sa-valparaiso-1", "vap"),
    ("sa-vinhedo-1", "vcp"),
    ("uk-cardiff-1", "cwl"),
    ("uk-london-1", "lhr"),
    ("us-ashburn-1", "iad"),
    ("us-chicago-1", "ord"),
    ("us-phoenix-1", "phx"),
    ("us-sanjose-1", "sjc"),
];

/// A known OCI region identifier such as `ap-sydney-1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Region, String> {
        if REGIONS.iter().any(|(r, _)| *r == s) {
            return Ok(Region(s.to_string()));
        }
        let names: Vec<&str> = REGIONS.iter().map(|(r, _)| *r).collect();
        let mut msg = format!("`{s}` is not a known OCI region identifier");
        if let Some(best) = did_you_mean(s, &names) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        } else {
            msg.push_str("; identifiers look like `ap-sydney-1` (see `calops profile regions`)");
        }
        Err(msg)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The short region key used by OCIR (`syd` for `ap-sydney-1`).
    pub fn key(&self) -> &'static str {
        REGIONS
            .iter()
            .find(|(r, _)| *r == self.0)
            .map(|(_, k)| *k)
            .unwrap_or("")
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Oracle Cloud ID: `ocid1.<type>.<realm>.[region][.future].<unique>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Ocid(String);

impl Ocid {
    /// Parse an OCID whose resource type is one of `types` (any type when empty).
    pub fn parse(s: &str, types: &[&str]) -> Result<Ocid, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let shape = "OCIDs look like `ocid1.<type>.<realm>.[region].<unique id>`";
        if parts.len() < 5 || parts[0] != "ocid1" {
            return Err(format!("`{s}` is not an OCID; {shape}"));
        }
        let ty = parts[1];
        let realm = parts[2];
        let unique = parts[parts.len() - 1];
        let lower_alnum = |x: &str| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        };
        if !lower_alnum(ty) {
            return Err(format!(
                "`{s}` has a malformed resource type `{ty}`; {shape}"
            ));
        }
        if !(realm.starts_with("oc")
            && realm[2..].chars().all(|c| c.is_ascii_digit())
            && realm.len() > 2)
        {
            return Err(format!(
                "`{s}` has a malformed realm `{realm}` (expected e.g. `oc1`)"
            ));
        }
        let region = parts[3];
        if !region.is_empty()
            && !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!("`{s}` has a malformed region segment `{region}`"));
        }
        if unique.len() < 10 || !unique.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{s}` has a malformed unique id (the last segment must be at least 10 letters or digits)"
            ));
        }
        if !types.is_empty() && !types.contains(&ty) {
            return Err(format!(
                "`{s}` is an OCID of type `{ty}`, but this field takes {}",
                types
                    .iter()
                    .map(|t| format!("`ocid1.{t}...`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        Ok(Ocid(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn resource_type(&self) -> &str {
        self.0.split('.').nth(1).unwrap_or("")
    }
}

impl fmt::Display for Ocid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a flexible shape allows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ShapeLimits {
    pub name: &'static str,
    pub min_ocpus: f64,
    pub max_ocpus: f64,
    pub min_gb_per_ocpu: f64,
    pub max_gb_per_ocpu: f64,
    pub max_memory_gb: f64,
    /// ARM (Ampere) or x86.
    pub arch: &'static str,
}

/// Container Instance shapes (OCI docs: "Container Instance shapes"; limits per instance).
pub const CONTAINER_SHAPES: &[ShapeLimits] = &[
    ShapeLimits {
        name: "CI.Standard.A1.Flex",
        min_ocpus: 1.0,
        max_ocpus: 80.0,
        min_gb_per_ocpu: 1.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 512.0,
        arch: "arm64",
    },
    ShapeLimits {
        name: "CI.Standard.E3.Flex",
        min_ocpus: 1.0,
        max_ocpus: 64.0,
        min_gb_per_ocpu: 1.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 1024.0,
        arch: "amd64",
    },
    ShapeLimits {
        name: "CI.Standard.E4.Flex",
        min_ocpus: 1.0,
        max_ocpus: 64.0,
        min_gb_per_ocpu: 1.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 1024.0,
        arch: "amd64",
    },
];

/// Compute shapes of the `oci-vm` target (Ampere A1: the Always Free one).
pub const VM_SHAPES: &[ShapeLimits] = &[ShapeLimits {
    name: "VM.Standard.A1.Flex",
    min_ocpus: 1.0,
    max_ocpus: 80.0,
    min_gb_per_ocpu: 1.0,
    max_gb_per_ocpu: 64.0,
    max_memory_gb: 512.0,
    arch: "arm64",
}];

/// OCI Database with PostgreSQL flexible shapes.
pub const DATABASE_SHAPES: &[ShapeLimits] = &[
    ShapeLimits {
        name: "PostgreSQL.VM.Standard.E4.Flex",
        min_ocpus: 1.0,
        max_ocpus: 64.0,
        min_gb_per_ocpu: 16.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 1024.0,
        arch: "amd64",
    },
    ShapeLimits {
        name: "PostgreSQL.VM.Standard.E5.Flex",
        min_ocpus: 1.0,
        max_ocpus: 94.0,
        min_gb_per_ocpu: 16.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 1049.0,
        arch: "amd64",
    },
    ShapeLimits {
        name: "PostgreSQL.VM.Standard3.Flex",
        min_ocpus: 1.0,
        max_ocpus: 32.0,
        min_gb_per_ocpu: 16.0,
        max_gb_per_ocpu: 64.0,
        max_memory_gb: 512.0,
        arch: "amd64",
    },
];

/// A flexible shape known to calops, with its OCPU and memory ranges.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(into = "String")]
pub struct Shape(&'static ShapeLimits);

impl Shape {
    pub fn parse(s: &str, table: &'static [ShapeLimits]) -> Result<Shape, String> {
        if let Some(l) = table.iter().find(|l| l.name == s) {
            return Ok(Shape(l));
        }
        let names: Vec<&str> = table.iter().map(|l| l.name).collect();
        let mut msg = format!("`{s}` is not a supported shape here");
        if let Some(best) = did_you_mean(s, &names) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        msg.push_str(&format!(" (allowed: {})", names.join(", ")));
        Err(msg)
    }
    pub fn limits(&self) -> &'static ShapeLimits {
        self.0
    }
    pub fn name(&self) -> &'static str {
        self.0.name
    }
    /// Check an OCPU count and memory size against the shape.
    pub fn check(&self, ocpus: f64, memory_gb: f64) -> Vec<(&'static str, String, String)> {
        let l = self.0;
        let mut out = Vec::new();
        if ocpus < l.min_ocpus || ocpus > l.max_ocpus {
            out.push((
                "ocpus",
                format!("{ocpus} OCPUs is out of range for shape {}", l.name),
                format!("{} to {} OCPUs", l.min_ocpus, l.max_ocpus),
            ));
        } else {
            let (lo, hi) = (
                (ocpus * l.min_gb_per_ocpu).max(1.0),
                (ocpus * l.max_gb_per_ocpu).min(l.max_memory_gb),
            );
            if memory_gb < lo || memory_gb > hi {
                out.push((
                    "memory_gbs",
                    format!(
                        "{memory_gb} GB is out of range for {ocpus} OCPUs of shape {}",
                        l.name
                    ),
                    format!(
                        "{lo} to {hi} GB ({} to {} GB per OCPU, at most {} GB)",
                        l.min_gb_per_ocpu, l.max_gb_per_ocpu, l.max_memory_gb
                    ),
                ));
            }
        }
        out
    }
}

impl From<Shape> for String {
    fn from(s: Shape) -> String {
        s.0.name.to_string()
    }
}

/// A DNS host name (RFC 1123 labels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Hostname, String> {
        let ok_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if s.len() > 253 || !s.contains('.') || !s.split('.').all(ok_label) {
            return Err(format!(
                "`{s}` is not a valid host name (letters, digits and '-' in dot-separated labels, e.g. `book.example.com`)"
            ));
        }
        Ok(Hostname(s.to_ascii_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A TCP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    pub fn parse(n: i64) -> Result<Port, String> {
        if (1..=65535).contains(&n) {
            Ok(Port(n as u16))
        } else {
            Err(format!("{n} is not a TCP port (1 to 65535)"))
        }
    }
    pub fn get(&self) -> u16 {
        self.0
    }
}

/// A reference to a secret: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum SecretRef {
    /// `env:NAME`: read from the environment of the process that needs it.
    Env(String),
    /// `vault:ocid1.vaultsecret...`: an OCI Vault secret.
    Vault(Ocid),
}

impl SecretRef {
    /// Parse a reference. The error never contains the input: it may be a secret.
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:") {
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if valid {
                return Ok(SecretRef::Env(name.to_string()));
            }
            return Err(
                "an `env:` reference needs an environment variable name in upper case, like `env:CALOPS_DB_PASSWORD`"
                    .into(),
            );
        }
        if let Some(id) = s.strip_prefix("vault:") {
            return Ocid::parse(id, &["vaultsecret"])
                .map(SecretRef::Vault)
                .map_err(|_| {
                    "a `vault:` reference needs a Vault secret OCID, like `vault:ocid1.vaultsecret.oc1.ap-sydney-1.<id>`"
                        .into()
                });
        }
        Err(
            "a literal value is not allowed in a secret field (the value is not shown); \
             write a reference instead: `env:NAME` (read from the environment) or \
             `vault:ocid1.vaultsecret...` (an OCI Vault secret)"
                .into(),
        )
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::Vault(o) => write!(f, "vault:{o}"),
        }
    }
}

impl From<SecretRef> for String {
    fn from(s: SecretRef) -> String {
        s.to_string()
    }
}

/// An e-mail address (syntax only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<EmailAddress, String> {
        let ok = match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !local.contains(char::is_whitespace)
                    && Hostname::parse(domain).is_ok()
            }
            None => false,
        };
        if ok {
            Ok(EmailAddress(s.to_string()))
        } else {
            Err(format!(
                "`{s}` is not an e-mail address like `ops@example.com`"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The closest candidate to `input`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rules() {
        assert!(Cidr::parse("10.0.0.0/16").is_ok());
        assert!(Cidr::parse("10.0.0.1/16")
            .unwrap_err()
            .contains("host bits"));
        assert!(Cidr::parse("banana")
            .unwrap_err()
            .contains("not an IPv4 CIDR"));
        assert!(Cidr::parse("10.0.0.0/8")
            .unwrap_err()
            .contains("/16 to /30"));
        let vcn = Cidr::parse("10.0.0.0/16").unwrap();
        let a = Cidr::parse("10.0.1.0/24").unwrap();
        let b = Cidr::parse("10.0.1.128/25").unwrap();
        let c = Cidr::parse("10.1.0.0/24").unwrap();
        assert!(vcn.contains(&a) && !vcn.contains(&c));
        assert!(a.overlaps(&b) && b.overlaps(&a) && !a.overlaps(&c));
    }

    #[test]
    fn region_suggests() {
        assert_eq!(Region::parse("ap-sydney-1").unwrap().key(), "syd");
        let e = Region::parse("ap-sidney-1").unwrap_err();
        assert!(e.contains("did you mean `ap-sydney-1`"), "{e}");
    }

    #[test]
    fn ocid_rules() {
        let ok = "ocid1.compartment.oc1..aaaaaaaabbbbbbbbccccccccdddd";
        assert!(Ocid::parse(ok, &["compartment", "tenancy"]).is_ok());
        assert!(Ocid::parse("ocid1.vaultsecret.oc1.ap-sydney-1.amaaaaaaexample1234", &[]).is_ok());
        assert!(Ocid::parse("ocid2.compartment.oc1..aaaaaaaabbbbbbbb", &[]).is_err());
        assert!(Ocid::parse("ocid1.compartment.xx1..aaaaaaaabbbbbbbb", &[])
            .unwrap_err()
            .contains("realm"));
        assert!(Ocid::parse(ok, &["vaultsecret"])
            .unwrap_err()
            .contains("type `compartment`"));
        assert!(Ocid::parse("ocid1.compartment.oc1..short", &[])
            .unwrap_err()
            .contains("unique id"));
    }

    #[test]
    fn shape_ranges() {
        let s = Shape::parse("CI.Standard.A1.Flex", CONTAINER_SHAPES).unwrap();
        assert!(s.check(1.0, 6.0).is_empty());
        assert_eq!(s.check(0.5, 6.0)[0].0, "ocpus");
        assert_eq!(s.check(1.0, 65.0)[0].0, "memory_gbs");
        assert!(Shape::parse("CI.Standard.A1.Flx", CONTAINER_SHAPES)
            .unwrap_err()
            .contains("did you mean `CI.Standard.A1.Flex`"));
    }

    #[test]
    fn secret_refs_never_echo() {
        assert!(matches!(
            SecretRef::parse("env:DB_PASS"),
            Ok(SecretRef::Env(_))
        ));
        let e = SecretRef::parse("hunter2-super-secret").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("env:NAME"));
        let e = SecretRef::parse("vault:hunter2").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(SecretRef::parse("env:lower").is_err());
    }

    #[test]
    fn misc_types() {
        assert!(Hostname::parse("book.example.com").is_ok());
        assert!(Hostname::parse("-bad.example.com").is_err());
        assert!(Hostname::parse("localhost").is_err());
        assert!(Port::parse(0).is_err() && Port::parse(3000).is_ok());
        assert!(EmailAddress::parse("ops@example.com").is_ok());
        assert!(EmailAddress::parse("ops.example.com").is_err());
    }
}
