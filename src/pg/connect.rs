//! Client connections to PostgreSQL, with TLS by rustls (no OpenSSL): one [`Connector`] made
//! from where the database is, its password and `sslmode`, used by every connection the service
//! opens (the pool, the booking writer, the LISTEN connections).
//!
//! - `disable`: plain TCP;
//! - `require`: TLS, the server's certificate not checked (the handshake's signatures are);
//! - `verify-full`: TLS, the certificate checked against the given CA (OCI Database with
//!   PostgreSQL: the `caCertificate` of its connection details) or, without one, the public
//!   roots (webpki-roots), and issued for the host name connected to.
//!
//! Building a connector reads the CA file (the only side effect); connecting is the caller's.

use crate::runtime::env::{DatabaseSettings, DatabaseTarget, Pem, SslMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::str::FromStr;
use std::sync::Arc;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The stream of a connection made by a [`Connector`] (plain or TLS).
pub type Stream = <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream;
/// A connection made by a [`Connector`]: poll it (spawn it) for the client to work.
pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, Stream>;

/// What is wrong with the TLS settings (names no secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(pub String);

/// How to connect: the connection settings and the TLS to use.
#[derive(Clone)]
pub struct Connector {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    sslmode: SslMode,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("target", &self.describe())
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl Connector {
    /// A connector for `settings`, with the password already resolved. The CA (when given) is
    /// read here.
    pub fn new(settings: &DatabaseSettings, password: Option<&str>) -> Result<Connector, String> {
        let mut config = match &settings.target {
            DatabaseTarget::Url(u) => tokio_postgres::Config::from_str(u)
                .map_err(|e| format!("DATABASE_URL is not a PostgreSQL URL: {e}"))?,
            DatabaseTarget::Parts {
                host,
                port,
                user,
                name,
            } => {
                let mut c = tokio_postgres::Config::new();
                c.host(host).port(*port).user(user).dbname(name);
                c
            }
        };
        if let Some(p) = password {
            config.password(p);
        }
        let ca = match &settings.ca {
            None => None,
            Some(pem) => Some(read_pem(pem).map_err(|e| format!("CALOPS_DATABASE_CA_CERT: {e}"))?),
        };
        let tls = client_config(settings.sslmode, ca.as_deref())
            .map_err(|e| format!("CALOPS_DATABASE_CA_CERT: {e}"))?;
        Ok(Connector::with(config, settings.sslmode, tls))
    }

    /// A connector for a URL without TLS (local clusters, tests).
    pub fn plain(url: &str) -> Result<Connector, tokio_postgres::Error> {
        let config = tokio_postgres::Config::from_str(url)?;
        let tls = client_config(SslMode::Disable, None).expect("no CA, nothing to fail");
        Ok(Connector::with(config, SslMode::Disable, tls))
    }

    fn with(
        mut config: tokio_postgres::Config,
        sslmode: SslMode,
        tls: rustls::ClientConfig,
    ) -> Connector {
        config.ssl_mode(match sslmode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Require | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        });
        Connector {
            config,
            tls: MakeRustlsConnect::new(tls),
            sslmode,
        }
    }

    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The settings (password included: never print them; their `Debug` redacts it).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The TLS connector, for pools that connect by themselves.
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// `user@host:port/database`, for logs and messages.
    pub fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        format!(
            "{}@{host}:{}/{}",
            self.config.get_user().unwrap_or_default(),
            self.config.get_ports().first().copied().unwrap_or(5432),
            self.config
                .get_dbname()
                .or(self.config.get_user())
                .unwrap_or_default()
        )
    }

    /// A copy with more settings applied (connect timeout, options).
    pub fn adjusted(&self, f: impl FnOnce(&mut tokio_postgres::Config)) -> Connector {
        let mut c = self.clone();
        f(&mut c.config);
        c
    }

    /// Connect once.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// Connect, and run the connection on the current runtime.
    pub async fn client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) = self.connect().await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
        Ok(client)
    }

    /// The URL of these settings (a TCP host; contains the password: never print it).
    pub fn to_url(&self) -> String {
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
        let c = &self.config;
        let user = enc(c.get_user().unwrap_or_default());
        let auth = match c.get_password() {
            Some(p) => format!("{user}:{}", enc(&String::from_utf8_lossy(p))),
            None => user,
        };
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "localhost".into(),
        };
        format!(
            "postgres://{auth}@{host}:{}/{}",
            c.get_ports().first().copied().unwrap_or(5432),
            enc(c.get_dbname().unwrap_or_default())
        )
    }
}

/// The certificates in a PEM text or file.
fn read_pem(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = match pem {
        Pem::Text(t) => t.clone(),
        Pem::File(p) => {
            std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("is not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err("holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)".into());
    }
    Ok(certs)
}

/// The crypto calops uses everywhere (ring; no process-wide default is relied on).
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client configuration for `mode`: `ca` replaces the public roots.
pub fn client_config(
    mode: SslMode,
    ca: Option<&[CertificateDer<'static>]>,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(e.to_string()))?;
    let config = match mode {
        SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck(provider())))
            .with_no_client_auth(),
        SslMode::Disable | SslMode::VerifyFull => {
            let mut roots = RootCertStore::empty();
            match ca {
                Some(certs) => {
                    for c in certs {
                        roots.add(c.clone()).map_err(|e| {
                            TlsSetupError(format!("a certificate in it is not a usable CA ({e})"))
                        })?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(config)
}

/// `sslmode=require`: encrypt, but take any certificate (libpq's meaning). The handshake's
/// signatures are still checked, so the peer holds the key of the certificate it sent.
#[derive(Debug)]
struct NoCertificateCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a connection failed, as the setting to change: finds a TLS certificate problem or a
/// server that refused TLS (or plain TCP) inside `e`.
pub fn diagnose(e: &(dyn std::error::Error + 'static)) -> Option<Diagnosis> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(t) = tls {
            return Some(match t {
                rustls::Error::InvalidCertificate(c) => match c {
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => {
                        Diagnosis::NameMismatch(format!("{c:?}"))
                    }
                    rustls::CertificateError::Expired
                    | rustls::CertificateError::ExpiredContext { .. }
                    | rustls::CertificateError::NotValidYet
                    | rustls::CertificateError::NotValidYetContext { .. } => {
                        Diagnosis::Expired(format!("{c:?}"))
                    }
                    _ => Diagnosis::UntrustedCertificate(format!("{c:?}")),
                },
                other => Diagnosis::Tls(other.to_string()),
            });
        }
        cur = err.source();
    }
    None
}

/// See [`diagnose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diagnosis {
    /// The certificate does not chain to the CA (or the public roots).
    UntrustedCertificate(String),
    /// It chains, but is not issued for the host name connected to.
    NameMismatch(String),
    Expired(String),
    /// Another TLS failure (e.g. the server does not speak TLS on that port).
    Tls(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_connection_settings() {
        let s = DatabaseSettings {
            target: DatabaseTarget::Parts {
                host: "db.example".into(),
                port: 6432,
                user: "calops".into(),
                name: "postgres".into(),
            },
            password: None,
            sslmode: SslMode::VerifyFull,
            ca: None,
        };
        let c = Connector::new(&s, Some("p@ss word")).unwrap();
        assert_eq!(c.describe(), "calops@db.example:6432/postgres");
        assert_eq!(
            c.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert_eq!(
            c.to_url(),
            "postgres://calops:p%40ss%20word@db.example:6432/postgres"
        );
        assert!(!format!("{c:?}").contains("p@ss"));
        let e = Connector::new(
            &DatabaseSettings {
                ca: Some(Pem::Text("no certificate here".into())),
                ..s.clone()
            },
            None,
        )
        .unwrap_err();
        assert!(
            e.starts_with("CALOPS_DATABASE_CA_CERT: holds no certificate"),
            "{e}"
        );
        let e = Connector::new(
            &DatabaseSettings {
                ca: Some(Pem::File("/nonexistent/ca.pem".into())),
                ..s
            },
            None,
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let plain = Connector::plain("postgres://u:pw@127.0.0.1:5433/db").unwrap();
        assert_eq!(
            plain.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        assert_eq!(plain.to_url(), "postgres://u:pw@127.0.0.1:5433/db");
    }
}
