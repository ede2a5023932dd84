//! Image platforms (`linux/amd64`, `linux/arm64`) and their Rust target triples.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// An OCI platform as it appears in an image index (`os`/`architecture`[/`variant`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux_amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    pub fn linux_arm64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        }
    }

    /// The Rust target triple that builds binaries for this platform (glibc, as distroless/cc).
    pub fn rust_target(&self) -> Option<&'static str> {
        match (self.os.as_str(), self.architecture.as_str()) {
            ("linux", "amd64") => Some("x86_64-unknown-linux-gnu"),
            ("linux", "arm64") => Some("aarch64-unknown-linux-gnu"),
            _ => None,
        }
    }

    /// True when `other` (e.g. from a base image index) satisfies this wanted platform.
    /// A wanted platform without a variant accepts any variant (`arm64` matches `arm64/v8`).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || {
            format!("invalid platform `{s}`: expected OS/ARCH such as linux/amd64 or linux/arm64")
        };
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let architecture = match parts[1] {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let p = Platform {
            os: parts[0].to_string(),
            architecture: architecture.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        };
        if p.rust_target().is_none() {
            return Err(format!(
                "unsupported platform `{s}`: calops images are built for linux/amd64 and linux/arm64"
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_maps_to_rust_targets() {
        let p: Platform = "linux/arm64".parse().unwrap();
        assert_eq!(p, Platform::linux_arm64());
        assert_eq!(p.rust_target(), Some("aarch64-unknown-linux-gnu"));
        let p: Platform = "linux/x86_64".parse().unwrap();
        assert_eq!(p, Platform::linux_amd64());
        assert_eq!(p.to_string(), "linux/amd64");
        let v: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(v.to_string(), "linux/arm64/v8");
    }

    #[test]
    fn rejects_bad_platforms_with_reason() {
        assert!("linux".parse::<Platform>().unwrap_err().contains("OS/ARCH"));
        assert!("linux/s390x"
            .parse::<Platform>()
            .unwrap_err()
            .contains("unsupported"));
        assert!("/amd64".parse::<Platform>().is_err());
    }

    #[test]
    fn wanted_platform_without_variant_matches_any_variant() {
        let want = Platform::linux_arm64();
        let mut have = Platform::linux_arm64();
        have.variant = Some("v8".into());
        assert!(want.matches(&have));
        assert!(!have.matches(&Platform::linux_arm64()));
        assert!(!want.matches(&Platform::linux_amd64()));
    }
}
