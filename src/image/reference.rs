//! Image references: `[registry/]repository[:tag][@sha256:...]`, parsed once at the boundary.

use std::fmt;
use std::str::FromStr;

/// A parsed image reference. `registry` is the host (and port) the distribution API lives on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReference {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageReference {
    /// The tag or digest to ask the registry for (digest wins: it pins the content).
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host the HTTP API is served from (Docker Hub's API host differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// True for 127.0.0.0/8, ::1 and localhost, where plain HTTP may be allowed.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.registry)
    }
}

/// True when `host[:port]` names this machine.
pub fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageReference {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageReference, String> {
        let bad = |why: &str| {
            format!("invalid image reference `{s}`: {why} (expected REGISTRY/REPOSITORY[:TAG][@sha256:DIGEST], e.g. syd.ocir.io/ns/calops:1.0)")
        };
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return Err(bad("empty or contains whitespace"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("digest must start with sha256:"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("digest must be sha256: and 64 hex digits"));
                }
                (r, Some(d.to_ascii_lowercase()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad(
                    "tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -",
                ));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ if name.contains('/') => ("docker.io".to_string(), name.to_string()),
            _ => ("docker.io".to_string(), format!("library/{name}")),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !repo_ok {
            return Err(bad(
                "repository path must be lowercase letters, digits, '.', '_', '-' separated by '/'",
            ));
        }
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageReference {
        s.parse().unwrap()
    }

    #[test]
    fn parses_registry_repo_tag_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let x = r(&format!("gcr.io/distroless/cc-debian12:nonroot@{d}"));
        assert_eq!(x.registry, "gcr.io");
        assert_eq!(x.repository, "distroless/cc-debian12");
        assert_eq!(x.tag.as_deref(), Some("nonroot"));
        assert_eq!(x.reference(), d);
        let y = r("127.0.0.1:5000/calops");
        assert_eq!(y.registry, "127.0.0.1:5000");
        assert_eq!(y.reference(), "latest");
        assert!(y.is_loopback());
        let z = r("debian:12");
        assert_eq!(
            (z.registry.as_str(), z.repository.as_str()),
            ("docker.io", "library/debian")
        );
        assert_eq!(z.api_host(), "registry-1.docker.io");
        assert_eq!(r("localhost:1/a/b:t").to_string(), "localhost:1/a/b:t");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "a b",
            "x.io/Upper",
            "x.io/a:",
            "x.io/a@sha256:12",
            "x.io//a",
        ] {
            let e = bad.parse::<ImageReference>().unwrap_err();
            assert!(e.contains("invalid image reference"), "{bad}: {e}");
        }
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("syd.ocir.io"));
        assert!(!is_loopback_host("10.0.0.1:5000"));
    }
}
