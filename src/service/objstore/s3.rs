//! An S3-compatible bucket (OCI Object Storage's Amazon S3 Compatibility API in production):
//! path-style addressing by default, AWS Signature V4 from `rusty-s3` (sans-IO presigned URLs,
//! sent with reqwest), credentials resolved from references at start.

use super::{checked, ObjError, ObjFuture, ObjectStore};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::time::Duration;
use url::Url;

/// How long a signed URL is valid: just long enough to send it.
const SIGNED_FOR: Duration = Duration::from_secs(120);

/// The checked S3 settings; `Debug` never shows the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Spec {
    pub endpoint: Url,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    /// `(access key, secret key)`; `None` when the default references (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`) are not set: storage is then reported down, not a start error.
    pub credentials: Option<(String, String)>,
}

impl std::fmt::Debug for S3Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Spec")
            .field("endpoint", &self.endpoint.as_str())
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("credentials", &self.credentials.as_ref().map(|_| "***"))
            .finish()
    }
}

/// The region of an OCI S3 compatibility host: `NS.compat.objectstorage.REGION.oraclecloud.com`.
pub fn oci_region_of(host: &str) -> Option<String> {
    let rest = host.split_once(".compat.objectstorage.")?.1;
    let region = rest.strip_suffix(".oraclecloud.com")?;
    (!region.is_empty() && !region.contains('.')).then(|| region.to_string())
}

fn valid_bucket(b: &str) -> bool {
    (1..=256).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// Resolve `env:NAME`; the value itself is never put in a message.
fn resolve(
    setting: &str,
    reference: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    match reference.strip_prefix("env:") {
        Some(name) if !name.is_empty() => env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| v.trim().to_string())
            .ok_or_else(|| {
                format!("{setting} refers to environment variable {name}, which is not set")
            }),
        _ => Err(format!(
            "{setting} is not a reference: use {setting}=env:NAME, naming the environment variable that holds it (the value is not shown)"
        )),
    }
}

impl S3Spec {
    /// `s3://BUCKET?endpoint=...&region=...` or `http(s)://HOST/BUCKET?region=...`, with
    /// optional `style=path|virtual`, `access_key=env:NAME`, `secret_key=env:NAME`.
    pub fn parse(u: &Url, env: &dyn Fn(&str) -> Option<String>) -> Result<S3Spec, String> {
        let mut endpoint = None;
        let mut region = None;
        let mut style = None;
        let mut access_ref = None;
        let mut secret_ref = None;
        for (k, v) in u.query_pairs() {
            match k.as_ref() {
                "endpoint" => endpoint = Some(v.to_string()),
                "region" => region = Some(v.to_string()),
                "style" => style = Some(v.to_string()),
                "access_key" => access_ref = Some(v.to_string()),
                "secret_key" => secret_ref = Some(v.to_string()),
                other => {
                    return Err(format!(
                        "unknown setting {other:?} in the query; known: endpoint, region, style, access_key, secret_key"
                    ))
                }
            }
        }
        let (endpoint, bucket) = if u.scheme() == "s3" {
            let bucket = u.host_str().unwrap_or_default().to_string();
            if !matches!(u.path(), "" | "/") {
                return Err(
                    "s3://BUCKET takes no path; put the endpoint in ?endpoint=https://HOST".into(),
                );
            }
            let e = endpoint.ok_or(
                "s3:// needs ?endpoint=https://HOST (for OCI: https://NAMESPACE.compat.objectstorage.REGION.oraclecloud.com)",
            )?;
            let e = Url::parse(&e).map_err(|_| "endpoint is not a URL: use https://HOST[:PORT]")?;
            (e, bucket)
        } else {
            if endpoint.is_some() {
                return Err("endpoint= is only for s3:// URLs; https://HOST/BUCKET names the endpoint already".into());
            }
            let segs: Vec<&str> = u.path().trim_matches('/').split('/').collect();
            if segs.len() != 1 || segs[0].is_empty() {
                return Err("an http(s) object storage URL is https://HOST/BUCKET (path-style) or OCI's native https://objectstorage.REGION.oraclecloud.com/n/NAMESPACE/b/BUCKET".into());
            } else {
                let mut e = u.clone();
                e.set_path("/");
                e.set_query(None);
                (e, segs[0].to_string())
            }
        };
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err("the endpoint must be http(s)://HOST[:PORT]".into());
        }
        if endpoint.username() != "" || endpoint.password().is_some() {
            return Err("put no credentials in the endpoint: use access_key=env:NAME and secret_key=env:NAME".into());
        }
        if !valid_bucket(&bucket) {
            return Err(format!(
                "{bucket:?} is not a bucket name (letters, digits, '.', '_', '-')"
            ));
        }
        let region = match region.filter(|r| !r.trim().is_empty()) {
            Some(r) => r,
            None => oci_region_of(endpoint.host_str().unwrap_or_default()).ok_or(
                "region= is required (the endpoint is not an OCI compatibility host that names it)",
            )?,
        };
        let path_style = match style.as_deref() {
            None | Some("path") => true,
            Some("virtual") => false,
            Some(_) => return Err("style must be path or virtual".into()),
        };
        // References given explicitly must resolve; the defaults may be unset (then storage
        // is reported down and writes wait, rather than the service refusing to start).
        let explicit = access_ref.is_some() || secret_ref.is_some();
        let access_ref = access_ref.unwrap_or_else(|| "env:AWS_ACCESS_KEY_ID".into());
        let secret_ref = secret_ref.unwrap_or_else(|| "env:AWS_SECRET_ACCESS_KEY".into());
        let credentials = match (
            resolve("access_key", &access_ref, env),
            resolve("secret_key", &secret_ref, env),
        ) {
            (Ok(a), Ok(s)) => Some((a, s)),
            (Err(e), _) | (_, Err(e)) if explicit => return Err(e),
            _ => None,
        };
        Ok(S3Spec {
            endpoint,
            bucket,
            region,
            path_style,
            credentials,
        })
    }
}

/// A bucket over HTTP.
pub struct S3Store {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    shown: String,
}

impl S3Store {
    pub fn new(spec: &S3Spec) -> Result<S3Store, ObjError> {
        let Some((access, secret)) = spec.credentials.clone() else {
            return Err(ObjError(format!(
                "no credentials for bucket {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (an OCI customer secret key) or add access_key=env:NAME&secret_key=env:NAME to the URL",
                spec.bucket
            )));
        };
        let style = if spec.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            spec.endpoint.clone(),
            style,
            spec.bucket.clone(),
            spec.region.clone(),
        )
        .map_err(|e| ObjError(format!("bucket {}: {e}", spec.bucket)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ObjError(format!("HTTP client: {e}")))?;
        Ok(S3Store {
            bucket,
            credentials: Credentials::new(access, secret),
            http,
            shown: format!("s3 bucket {} at {}", spec.bucket, spec.endpoint),
        })
    }

    fn fail(&self, what: &str, e: reqwest::Error) -> ObjError {
        // Without the URL: a signed URL carries the access key id and a signature.
        ObjError(format!("{what} on {}: {}", self.shown, e.without_url()))
    }

    async fn status_error(&self, what: &str, res: reqwest::Response) -> ObjError {
        let status = res.status();
        let body = res.text().await.unwrap_or_default();
        let code = body
            .split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map(|(c, _)| format!(" ({c})"))
            .unwrap_or_default();
        ObjError(format!("{what} on {}: HTTP {status}{code}", self.shown))
    }

    /// Create the bucket (tests and first-time setup); an existing bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), ObjError> {
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(SIGNED_FOR);
        let res = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .body(Vec::new())
            .send()
            .await
            .map_err(|e| self.fail("creating the bucket", e))?;
        if res.status().is_success() || res.status() == reqwest::StatusCode::CONFLICT {
            Ok(())
        } else {
            Err(self.status_error("creating the bucket", res).await)
        }
    }
}

impl ObjectStore for S3Store {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: &'a str) -> ObjFuture<'a, ()> {
        Box::pin(async move {
            checked(key)?;
            let url = self
                .bucket
                .put_object(Some(&self.credentials), key)
                .sign(SIGNED_FOR);
            let res = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body)
                .send()
                .await
                .map_err(|e| self.fail("writing an object", e))?;
            if res.status().is_success() {
                Ok(())
            } else {
                Err(self.status_error("writing an object", res).await)
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> ObjFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            checked(key)?;
            let url = self
                .bucket
                .get_object(Some(&self.credentials), key)
                .sign(SIGNED_FOR);
            let res = self
                .http
                .get(url)
                .send()
                .await
                .map_err(|e| self.fail("reading an object", e))?;
            if res.status() == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !res.status().is_success() {
                return Err(self.status_error("reading an object", res).await);
            }
            let bytes = res
                .bytes()
                .await
                .map_err(|e| self.fail("reading an object", e))?;
            Ok(Some(bytes.to_vec()))
        })
    }

    fn check(&self) -> ObjFuture<'_, ()> {
        Box::pin(async move {
            let url = self
                .bucket
                .head_bucket(Some(&self.credentials))
                .sign(SIGNED_FOR);
            let res = self
                .http
                .head(url)
                .send()
                .await
                .map_err(|e| self.fail("checking the bucket", e))?;
            if res.status().is_success() {
                Ok(())
            } else {
                Err(self.status_error("checking the bucket", res).await)
            }
        })
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::Spec;
    use super::*;

    fn env(n: &str) -> Option<String> {
        match n {
            "AWS_ACCESS_KEY_ID" | "KEY" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" | "SECRET" => Some("wJalrXUtnFEMI/K7MDENG".into()),
            _ => None,
        }
    }

    fn s3(text: &str) -> Result<S3Spec, String> {
        match Spec::parse(text, &env)? {
            Spec::S3(s) => Ok(s),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn oci_compatibility_urls_parse_with_their_region() {
        let s = s3("s3://calops-ics?endpoint=https://axaxnpcrorw5.compat.objectstorage.ap-sydney-1.oraclecloud.com").unwrap();
        assert_eq!(s.bucket, "calops-ics");
        assert_eq!(s.region, "ap-sydney-1");
        assert!(s.path_style);
        assert_eq!(s.credentials.as_ref().unwrap().0, "AKIDEXAMPLE");
        // OCI's native URL (what the OCI target renders) is the native API, not S3.
        assert!(matches!(
            Spec::parse(
                "https://objectstorage.ap-sydney-1.oraclecloud.com/n/axaxnpcrorw5/b/calops-prod",
                &env
            ),
            Ok(Spec::Oci(_))
        ));
        // Without the default credential variables the URL is still valid; the store says why
        // it cannot work (reported by /health); explicit references must resolve.
        let spec = match Spec::parse("s3://b?endpoint=https://x&region=r", &|_| None).unwrap() {
            Spec::S3(s) => s,
            other => panic!("{other:?}"),
        };
        assert!(spec.credentials.is_none());
        let e = S3Store::new(&spec).err().unwrap();
        assert!(e.0.contains("AWS_ACCESS_KEY_ID"), "{e}");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("AKIDEXAMPLE") && !shown.contains("wJalr"),
            "{shown}"
        );

        let s = s3("http://127.0.0.1:9000/ics?region=us-east-1&access_key=env:KEY&secret_key=env:SECRET&style=virtual").unwrap();
        assert_eq!(s.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(s.bucket, "ics");
        assert!(!s.path_style);
    }

    #[test]
    fn bad_s3_urls_say_what_to_change_without_echoing_secrets() {
        let cases = [
            ("s3://b", "needs ?endpoint"),
            ("s3://b?endpoint=https://example.com", "region= is required"),
            (
                "s3://b?endpoint=https://x&region=r&access_key=AKIASECRETVALUE",
                "not a reference",
            ),
            (
                "s3://b?endpoint=https://x&region=r&secret_key=env:NOPE",
                "NOPE, which is not set",
            ),
            (
                "s3://b?endpoint=https://x&region=r&colour=blue",
                "unknown setting",
            ),
            ("s3://b?endpoint=ftp://x&region=r", "http(s)://HOST"),
            ("https://host/a/b?region=r", "https://HOST/BUCKET"),
            ("https://u:pw@host/b?region=r", "no credentials"),
        ];
        for (url, want) in cases {
            let e = s3(url).unwrap_err();
            assert!(e.contains(want), "{url}: {e}");
            assert!(!e.contains("AKIASECRETVALUE"), "{e}");
        }
        assert_eq!(
            oci_region_of("ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com").as_deref(),
            Some("eu-frankfurt-1")
        );
        assert_eq!(oci_region_of("s3.amazonaws.com"), None);
    }
}
