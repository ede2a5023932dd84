//! Sending one message: SMTP through lettre (rustls; STARTTLS required on `smtp://`, TLS from
//! the first byte on `smtps://`), OCI Email Delivery's `SubmitRawEmail` (the same MIME bytes,
//! signed as the resource principal, or the `oci-vm` target's instance principal), or a Maildir
//! (`tmp/` then a rename into `new/`, so a reader never sees half a message).

use super::{Security, Transport};
use crate::oci::client::{OciClient, OciError, OciRequest, Service};
use crate::oci::signer::BodyMode;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again later (connection refused, timeout, 4xx).
    Transient(String),
    /// The server refused this message or recipient for good (5xx): no retry.
    Permanent(String),
}

/// A ready transport.
pub enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Maildir(PathBuf),
    OciEmail {
        client: OciClient,
        compartment_id: String,
    },
}

/// `SubmitRawEmail` (Email Delivery submission API 20220926, oci-go-sdk `emaildataplane`).
pub const SUBMIT_RAW_EMAIL_PATH: &str = "/20220926/actions/submitRawEmail";

impl Sender {
    /// Build the transport of `t`; `oci` is the resource principal's client, which
    /// `oci-email` needs. `Err`: a problem with the settings (e.g. a bad certificate).
    pub fn new(
        t: &Transport,
        timeout: Duration,
        oci: Option<&OciClient>,
    ) -> Result<Sender, String> {
        match t {
            Transport::OciEmail { compartment_id } => match oci {
                Some(c) => Ok(Sender::OciEmail {
                    client: c.clone(),
                    compartment_id: compartment_id.clone(),
                }),
                None => Err("oci-email needs an OCI principal (the container instance's resource principal, OCI_RESOURCE_PRINCIPAL_* variables; or on the oci-vm target CALOPS_OCI_PRINCIPAL=instance_principal), which this process does not have".into()),
            },
            Transport::Maildir(dir) => {
                for sub in ["tmp", "new", "cur"] {
                    std::fs::create_dir_all(dir.join(sub))
                        .map_err(|e| format!("creating the maildir {}: {e}", dir.display()))?;
                }
                Ok(Sender::Maildir(dir.clone()))
            }
            Transport::Smtp {
                host,
                port,
                security,
                username,
                password,
                ca_pem,
            } => {
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
                    .port(*port)
                    .timeout(Some(timeout));
                if *security != Security::None {
                    let mut p = TlsParameters::builder(host.clone());
                    if let Some(pem) = ca_pem {
                        let cert = Certificate::from_pem(pem).map_err(|e| e.to_string())?;
                        p = p.add_root_certificate(cert);
                    }
                    let p = p.build_rustls().map_err(|e| e.to_string())?;
                    b = b.tls(match security {
                        Security::Tls => Tls::Wrapper(p),
                        _ => Tls::Required(p),
                    });
                }
                if let (Some(u), Some(pw)) = (username, password) {
                    b = b.credentials(Credentials::new(u.clone(), pw.clone()));
                }
                Ok(Sender::Smtp(b.build()))
            }
        }
    }

    /// Send `m` (whose `Message-ID` names the file in a Maildir).
    pub async fn send(&self, m: Message, file_name: &str) -> Result<(), SendError> {
        match self {
            Sender::Smtp(t) => t.send(m).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    SendError::Permanent(e.to_string())
                } else {
                    SendError::Transient(e.to_string())
                }
            }),
            Sender::OciEmail {
                client,
                compartment_id,
            } => submit_raw(client, compartment_id, &m).await,
            Sender::Maildir(dir) => {
                let bytes = m.formatted();
                let (dir, name) = (dir.clone(), file_name.to_string());
                tokio::task::spawn_blocking(move || write_maildir(&dir, &name, &bytes))
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?
                    .map_err(|e| SendError::Transient(e.to_string()))
            }
        }
    }
}

/// `POST /actions/submitRawEmail`: the message as `message/rfc822`, the envelope in the
/// `sender` and `recipients` headers. 2xx: accepted. A 400 (the service refuses this message
/// or recipient) is permanent; anything else (429, 5xx, 401/403/404 while a policy or sender
/// is being set up, the network) is tried again.
async fn submit_raw(
    client: &OciClient,
    compartment_id: &str,
    m: &Message,
) -> Result<(), SendError> {
    let env = m.envelope();
    let from = env
        .from()
        .map(|a| a.to_string())
        .ok_or_else(|| SendError::Permanent("the message has no sender".into()))?;
    let to: Vec<String> = env.to().iter().map(|a| a.to_string()).collect();
    let url = client
        .url(Service::EmailSubmission, SUBMIT_RAW_EMAIL_PATH)
        .map_err(|e| SendError::Transient(e.to_string()))?;
    let req = OciRequest::new(reqwest::Method::POST, url)
        .header("content-type", "message/rfc822")
        .and_then(|r| r.header("compartment-id", compartment_id))
        .and_then(|r| r.header("sender", &from))
        .and_then(|r| r.header("recipients", &to.join(",")))
        .map_err(|e| {
            SendError::Permanent(format!("{e} (SubmitRawEmail takes ASCII addresses only)"))
        })?
        .body(m.formatted(), BodyMode::Standard);
    match client.send(req).await {
        Ok(_) => Ok(()),
        Err(e @ OciError::Api(_)) if e.status() == Some(400) => {
            Err(SendError::Permanent(format!("SubmitRawEmail: {e}")))
        }
        Err(e) => Err(SendError::Transient(format!("SubmitRawEmail: {e}"))),
    }
}

/// Write `bytes` as `dir/new/<name>.eml` through `dir/tmp/`; the same name again replaces the
/// earlier file (one file per message however often it is written).
pub fn write_maildir(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let name = format!("{name}.eml");
    let tmp = dir.join("tmp").join(&name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join("new").join(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maildir_message_appears_whole_in_new_once_per_name() {
        let d = tempfile::tempdir().unwrap();
        let s = Sender::new(
            &Transport::Maildir(d.path().to_path_buf()),
            Duration::from_secs(1),
            None,
        )
        .unwrap();
        assert!(matches!(s, Sender::Maildir(_)));
        write_maildir(d.path(), "a", b"one").unwrap();
        write_maildir(d.path(), "a", b"two").unwrap();
        let files: Vec<_> = std::fs::read_dir(d.path().join("new")).unwrap().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(d.path().join("new/a.eml")).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    }
}
