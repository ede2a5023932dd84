//! The stand-ins for what a compute instance talks to before it calls OCI: the instance
//! metadata service (which answers only `Authorization: Bearer Oracle`, as IMDS v2 does) and the
//! auth service's `POST /v1/x509` (which checks the request as OCI does: the certificate chains
//! through the intermediate to the stand-in's root CA, the keyId names the tenancy of the
//! certificate's `opc-tenant:` value and its SHA-256 fingerprint, the signature over exactly the
//! SDKs' headers verifies with the certificate's key, the body hash matches), issuing session
//! tokens bound to the session key sent. Used by `instance_principal` and the VM agent's tests.

use crate::support::oci::session_token;
use crate::support::ocistand::{self, header, incoming, json_reply, oci_error, param};
use base64::Engine as _;
use calops::oci::instance::Endpoints;
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use url::Url;

pub const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaastandintenancy";

/// A root CA, an intermediate it signed, and an instance leaf certificate with an RSA key.
pub struct Pki {
    pub root_der: Vec<u8>,
    pub intermediate_pem: String,
    pub intermediate_der: Vec<u8>,
    pub leaf_pem: String,
    pub leaf_key_pem: String,
}

pub fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut p = rcgen::CertificateParams::new(vec![]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    p
}

/// `ous`: the leaf's OUs (an instance certificate has `opc-tenant:<tenancy>` among them).
pub fn pki(ous: &[&str]) -> Pki {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root = ca_params("stand-in root CA")
        .self_signed(&root_key)
        .unwrap();
    let inter_key = rcgen::KeyPair::generate().unwrap();
    let inter = ca_params("stand-in intermediate")
        .signed_by(&inter_key, &root, &root_key)
        .unwrap();
    let leaf_rsa_pem = ocistand::key()
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    let leaf_key =
        rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&leaf_rsa_pem, &rcgen::PKCS_RSA_SHA256)
            .unwrap();
    let mut lp = rcgen::CertificateParams::new(vec![]).unwrap();
    lp.distinguished_name = rcgen::DistinguishedName::new();
    lp.distinguished_name.push(
        rcgen::DnType::CommonName,
        "ocid1.instance.oc1.ap-sydney-1.standin",
    );
    for ou in ous {
        lp.distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, *ou);
    }
    lp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = lp.signed_by(&leaf_key, &inter, &inter_key).unwrap();
    Pki {
        root_der: root.der().to_vec(),
        intermediate_pem: inter.pem(),
        intermediate_der: inter.der().to_vec(),
        leaf_pem: leaf.pem(),
        leaf_key_pem: leaf_rsa_pem,
    }
}

/// The PKI of an instance: its certificate's subject has the OUs OCI gives one.
pub fn instance_pki() -> Pki {
    pki(&[
        "opc-certtype:instance",
        "opc-instance:ocid1.instance.oc1.ap-sydney-1.standin",
        "opc-compartment:ocid1.compartment.oc1..standin",
        &format!("opc-tenant:{TENANCY}"),
    ])
}

#[derive(Default)]
pub struct State {
    /// Token -> (expiry, the session key it was issued for).
    pub tokens: HashMap<String, (u64, RsaPublicKey)>,
    /// Tokens Object Storage refuses from now on (as if revoked).
    pub revoked: Vec<String>,
    /// Object Storage refuses every token (a principal without a policy, say).
    pub refuse_all: bool,
    /// Lifetime of the next tokens, in seconds.
    pub lifetime: u64,
    pub federations: u32,
    /// Why the auth service refused a request, for the test to show.
    pub refusals: Vec<String>,
    pub metadata_without_bearer: u32,
    pub os_calls: u32,
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// OCI's checks of a federation request; the refusal says which failed.
pub fn check_federation(
    pki_root: &[u8],
    path: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<RsaPublicKey, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or("not a string")?)
            .map_err(|e| format!("not base64: {e}"))
    };
    let leaf_der = b64(&req["certificate"])?;
    let inters: Vec<Vec<u8>> = req["intermediateCertificates"]
        .as_array()
        .ok_or("no intermediateCertificates")?
        .iter()
        .map(b64)
        .collect::<Result<_, _>>()?;
    if req["fingerprintAlgorithm"] != "SHA256" {
        return Err("fingerprintAlgorithm is not SHA256".into());
    }
    // The chain, as a TLS client certificate would be checked.
    let leaf_cd = rustls_pki_types::CertificateDer::from(leaf_der.clone());
    let ee = webpki::EndEntityCert::try_from(&leaf_cd).map_err(|e| format!("leaf: {e:?}"))?;
    let root_cd = rustls_pki_types::CertificateDer::from(pki_root.to_vec());
    let anchor = webpki::anchor_from_trusted_cert(&root_cd).map_err(|e| format!("{e:?}"))?;
    let inter_cds: Vec<_> = inters
        .iter()
        .map(|d| rustls_pki_types::CertificateDer::from(d.clone()))
        .collect();
    ee.verify_for_usage(
        &[
            webpki::ring::ECDSA_P256_SHA256,
            webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        ],
        &[anchor],
        &inter_cds,
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map_err(|e| format!("the certificate does not chain to the root: {e:?}"))?;
    // The key id: the tenancy in the certificate and its SHA-256 fingerprint.
    let cert = calops::oci::instance::Certificate::parse(&format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        req["certificate"].as_str().unwrap()
    ))?;
    let tenancy = cert.tenancy_id().ok_or("no opc-tenant in the subject")?;
    let fp = Sha256::digest(&leaf_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let auth = header(headers, "authorization").ok_or("no authorization")?;
    let key_id = param(&auth, "keyId").ok_or("no keyId")?;
    if key_id != format!("{tenancy}/fed-x509-sha256/{fp}") {
        return Err(format!("keyId {key_id} does not name the certificate"));
    }
    // Exactly the SDKs' headers, signed with the certificate's key.
    let names: Vec<String> = param(&auth, "headers")
        .ok_or("no headers")?
        .split(' ')
        .map(String::from)
        .collect();
    if names
        != [
            "date",
            "(request-target)",
            "content-length",
            "content-type",
            "x-content-sha256",
        ]
    {
        return Err(format!("signed headers {names:?}"));
    }
    let mut lines = Vec::new();
    for n in &names {
        let v = if n == "(request-target)" {
            format!("post {path}")
        } else {
            header(headers, n).ok_or(format!("{n} not sent"))?
        };
        lines.push(format!("{n}: {v}"));
    }
    let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
    if header(headers, "x-content-sha256").as_deref() != Some(want.as_str()) {
        return Err("x-content-sha256 does not match the body".into());
    }
    use x509_cert::der::{Decode, Encode};
    let parsed = x509_cert::Certificate::from_der(&leaf_der).map_err(|e| e.to_string())?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    let leaf_public = RsaPublicKey::from_public_key_der(&spki).map_err(|e| e.to_string())?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(param(&auth, "signature").ok_or("no signature")?)
        .map_err(|e| e.to_string())?;
    leaf_public
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(lines.join("\n").as_bytes()),
            &sig,
        )
        .map_err(|_| "the signature does not verify with the certificate's key".to_string())?;
    // The session key the token will be bound to.
    let public = req["publicKey"].as_str().ok_or("no publicKey")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(public)
        .map_err(|e| e.to_string())?;
    RsaPublicKey::from_public_key_der(&der).map_err(|e| format!("publicKey: {e}"))
}

/// Told of every token the auth service issues: the token, its expiry, its session key.
pub type Issued = Arc<dyn Fn(&str, u64, RsaPublicKey) + Send + Sync>;

/// Serve the metadata service and the auth service for `pki` on 127.0.0.1; their endpoints.
/// Tokens last `state.lifetime` seconds; each is recorded in `state.tokens` and given to
/// `issued`.
pub async fn serve(pki: &Pki, state: Arc<Mutex<State>>, issued: Option<Issued>) -> Endpoints {
    let files: HashMap<&'static str, String> = HashMap::from([
        ("/opc/v2/instance/region", "syd".to_string()),
        ("/opc/v2/identity/cert.pem", pki.leaf_pem.clone()),
        ("/opc/v2/identity/key.pem", pki.leaf_key_pem.clone()),
        (
            "/opc/v2/identity/intermediate.pem",
            pki.intermediate_pem.clone(),
        ),
    ]);
    let st = state.clone();
    let metadata = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (st, files) = (st.clone(), files.clone());
        async move {
            let (_, path, _, _, headers, _) = incoming(req).await;
            if header(&headers, "authorization").as_deref() != Some("Bearer Oracle") {
                st.lock().unwrap().metadata_without_bearer += 1;
                return ocistand::reply(401, &[], "missing Authorization: Bearer Oracle");
            }
            match files.get(path.as_str()) {
                Some(text) => ocistand::reply(200, &[], text.clone()),
                None => ocistand::reply(404, &[], "not found"),
            }
        }
    });
    let st = state.clone();
    let root = pki.root_der.clone();
    let auth = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (st, root, issued) = (st.clone(), root.clone(), issued.clone());
        async move {
            let (method, path, _, _, headers, body) = incoming(req).await;
            if method != "POST" || path != "/v1/x509" {
                return oci_error(404, "NotFound", "only POST /v1/x509");
            }
            match check_federation(&root, &path, &headers, &body) {
                Ok(session) => {
                    let mut s = st.lock().unwrap();
                    s.federations += 1;
                    let exp = now() + s.lifetime;
                    let token = session_token(exp, &format!("fed-{}", s.federations));
                    s.tokens.insert(token.clone(), (exp, session.clone()));
                    if let Some(f) = &issued {
                        f(&token, exp, session);
                    }
                    json_reply(200, json!({ "token": token }))
                }
                Err(why) => {
                    st.lock().unwrap().refusals.push(why.clone());
                    oci_error(401, "NotAuthenticated", &why)
                }
            }
        }
    });
    let md = ocistand::serve(metadata).await;
    let au = ocistand::serve(auth).await;
    Endpoints {
        metadata: Url::parse(&format!("{md}/opc/v2")).unwrap(),
        auth: Some(Url::parse(&au).unwrap()),
    }
}

/// [`serve`] for an instance whose tokens (an hour long) the stand-in OCI `oci` accepts, each
/// signed with the session key it was issued for.
pub async fn serve_for(oci: &Arc<crate::support::oci::Oci>) -> (Arc<Mutex<State>>, Endpoints) {
    let state = Arc::new(Mutex::new(State {
        lifetime: 3600,
        ..Default::default()
    }));
    let o = oci.clone();
    let issued: Issued = Arc::new(move |token, _exp, key| {
        o.tokens
            .lock()
            .unwrap()
            .session_keys
            .insert(token.to_string(), key);
    });
    let endpoints = serve(&instance_pki(), state.clone(), Some(issued)).await;
    (state, endpoints)
}
