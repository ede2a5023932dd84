//! The instance principal against stand-ins on 127.0.0.1 for what a compute instance talks to:
//! the metadata service (which answers only `Authorization: Bearer Oracle`, as IMDS v2 does),
//! the auth service's `POST /v1/x509` (which checks the request as OCI does: the certificate
//! chains through the intermediate to the stand-in's root CA, the keyId names the tenancy of
//! the certificate's `opc-tenant:` value and its SHA-256 fingerprint, the signature over
//! exactly the SDKs' headers verifies with the certificate's key, the body hash matches) and
//! Object Storage (which accepts only `ST$<token>` of a live token, signed with the session key
//! that token was issued for).

use crate::support::oci::session_token;
use crate::support::ocistand::{self, header, incoming, json_reply, oci_error, param, Signatures};
use base64::Engine as _;
use calops::oci::client::{OciClient, OciError, RetryPolicy, Service};
use calops::oci::instance::{Endpoints, InstancePrincipal, InstancePrincipalError};
use rsa::pkcs8::{DecodePublicKey, EncodePrivateKey};
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use url::Url;

const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaastandintenancy";

/// A root CA, an intermediate it signed, and an instance leaf certificate with an RSA key.
struct Pki {
    root_der: Vec<u8>,
    intermediate_pem: String,
    intermediate_der: Vec<u8>,
    leaf_pem: String,
    leaf_key_pem: String,
}

fn ca_params(cn: &str) -> rcgen::CertificateParams {
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
fn pki(ous: &[&str]) -> Pki {
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
fn instance_pki() -> Pki {
    pki(&[
        "opc-certtype:instance",
        "opc-instance:ocid1.instance.oc1.ap-sydney-1.standin",
        "opc-compartment:ocid1.compartment.oc1..standin",
        &format!("opc-tenant:{TENANCY}"),
    ])
}

#[derive(Default)]
struct State {
    /// Token -> (expiry, the session key it was issued for).
    tokens: HashMap<String, (u64, RsaPublicKey)>,
    /// Tokens Object Storage refuses from now on (as if revoked).
    revoked: Vec<String>,
    /// Object Storage refuses every token (a principal without a policy, say).
    refuse_all: bool,
    /// Lifetime of the next tokens, in seconds.
    lifetime: u64,
    federations: u32,
    /// Why the auth service refused a request, for the test to show.
    refusals: Vec<String>,
    metadata_without_bearer: u32,
    os_calls: u32,
}

struct Stand {
    state: Arc<Mutex<State>>,
    endpoints: Endpoints,
    os: Url,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// OCI's checks of a federation request; the refusal says which failed.
fn check_federation(
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

async fn stand(pki: Pki) -> Stand {
    let state = Arc::new(Mutex::new(State {
        lifetime: 3600,
        ..Default::default()
    }));
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
        let (st, root) = (st.clone(), root.clone());
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
                    s.tokens.insert(token.clone(), (exp, session));
                    json_reply(200, json!({ "token": token }))
                }
                Err(why) => {
                    st.lock().unwrap().refusals.push(why.clone());
                    oci_error(401, "NotAuthenticated", &why)
                }
            }
        }
    });
    let st = state.clone();
    let os = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let st = st.clone();
        async move {
            let (method, _, pq, _, headers, body) = incoming(req).await;
            let auth = header(&headers, "authorization").unwrap_or_default();
            let key_id = param(&auth, "keyId").unwrap_or_default();
            let token = key_id.strip_prefix("ST$").unwrap_or_default().to_string();
            let mut s = st.lock().unwrap();
            s.os_calls += 1;
            let Some((exp, public)) = s.tokens.get(&token).cloned() else {
                return oci_error(401, "NotAuthenticated", "not a token this service issued");
            };
            if exp <= now() || s.revoked.contains(&token) || s.refuse_all {
                return oci_error(401, "NotAuthenticated", "the token expired or was revoked");
            }
            let sigs = Signatures {
                public,
                key_ids: vec![key_id.clone()],
                host: None,
            };
            if let Err(why) = sigs.verify(&method, &pq, &headers, &body) {
                return oci_error(401, "NotAuthenticated", &why);
            }
            json_reply(200, json!("standinns"))
        }
    });
    let md = ocistand::serve(metadata).await;
    let au = ocistand::serve(auth).await;
    let os = ocistand::serve(os).await;
    Stand {
        state,
        endpoints: Endpoints {
            metadata: Url::parse(&format!("{md}/opc/v2")).unwrap(),
            auth: Some(Url::parse(&au).unwrap()),
        },
        os: Url::parse(&os).unwrap(),
    }
}

fn client(p: Arc<InstancePrincipal>, os: &Url) -> OciClient {
    OciClient::with_instance_principal(p)
        .unwrap()
        .with_endpoint(Service::ObjectStorage, os.clone())
        .with_retry_policy(RetryPolicy::none())
}

#[tokio::test]
async fn instance_principal_federates_as_the_sdks_do_and_signs_with_the_token() {
    let s = stand(instance_pki()).await;
    let p = Arc::new(InstancePrincipal::new(s.endpoints.clone()).await.unwrap());
    assert_eq!(p.region(), "ap-sydney-1", "the metadata's `syd` is mapped");
    assert_eq!(p.tenancy_id(), TENANCY);
    let c = client(p.clone(), &s.os);
    assert_eq!(c.object_storage().namespace().await.unwrap(), "standinns");
    assert_eq!(c.object_storage().namespace().await.unwrap(), "standinns");
    let st = s.state.lock().unwrap();
    assert!(st.refusals.is_empty(), "{:?}", st.refusals);
    assert_eq!(st.federations, 1, "a token good for an hour is reused");
    assert_eq!(st.os_calls, 2);
    assert_eq!(st.metadata_without_bearer, 0);
    assert!(!format!("{p:?}").contains("ST$"), "{p:?}");
}

#[tokio::test]
async fn a_token_expiring_within_five_minutes_is_renewed_with_a_new_session_key() {
    let s = stand(instance_pki()).await;
    s.state.lock().unwrap().lifetime = 120; // inside the SDKs' 5-minute buffer
    let p = Arc::new(InstancePrincipal::new(s.endpoints.clone()).await.unwrap());
    let first = p.current_signer().unwrap();
    s.state.lock().unwrap().lifetime = 3600;
    let c = client(p.clone(), &s.os);
    assert_eq!(c.object_storage().namespace().await.unwrap(), "standinns");
    let second = p.current_signer().unwrap();
    assert_ne!(first.key_id(), second.key_id(), "renewed before use");
    c.object_storage().namespace().await.unwrap();
    let st = s.state.lock().unwrap();
    assert!(st.refusals.is_empty(), "{:?}", st.refusals);
    assert_eq!(
        st.federations, 2,
        "renewed once, then the hour-long token is kept"
    );
    let keys: std::collections::HashSet<_> =
        st.tokens.values().map(|(_, k)| format!("{k:?}")).collect();
    assert_eq!(keys.len(), 2, "each token is bound to its own session key");
}

#[tokio::test]
async fn a_token_the_service_refuses_is_renewed_once_and_the_call_retried() {
    let s = stand(instance_pki()).await;
    let p = Arc::new(InstancePrincipal::new(s.endpoints.clone()).await.unwrap());
    let c = client(p.clone(), &s.os);
    // Revoke the token in hand: the next call gets 401, renews, and succeeds.
    {
        let mut st = s.state.lock().unwrap();
        let t: Vec<String> = st.tokens.keys().cloned().collect();
        st.revoked.extend(t);
    }
    assert_eq!(c.object_storage().namespace().await.unwrap(), "standinns");
    {
        let st = s.state.lock().unwrap();
        assert_eq!((st.federations, st.os_calls), (2, 2));
    }
    // Every token refused: exactly one renewal, then the 401 is the answer (no loop).
    s.state.lock().unwrap().refuse_all = true;
    let e = c.object_storage().namespace().await.unwrap_err();
    let st = s.state.lock().unwrap();
    assert!(matches!(&e, OciError::Api(a) if a.status == 401), "{e}");
    assert_eq!((st.federations, st.os_calls), (3, 4));
}

#[tokio::test]
async fn a_certificate_without_a_tenancy_or_outside_the_chain_is_refused_clearly() {
    // No `opc-tenant:` OU: refused before any call to the auth service.
    let s = stand(pki(&["opc-certtype:instance"])).await;
    let e = InstancePrincipal::new(s.endpoints.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, InstancePrincipalError::Certificate(_)), "{e}");
    assert!(e.to_string().contains("opc-tenant:"), "{e}");
    assert_eq!(s.state.lock().unwrap().federations, 0);

    // An intermediate that did not sign the leaf: the auth service refuses, and the error says
    // where and what to check.
    let good = instance_pki();
    let other = instance_pki();
    let mixed = Pki {
        root_der: good.root_der.clone(),
        intermediate_pem: other.intermediate_pem,
        intermediate_der: other.intermediate_der,
        leaf_pem: good.leaf_pem.clone(),
        leaf_key_pem: good.leaf_key_pem.clone(),
    };
    let _ = good.intermediate_der;
    let s = stand(mixed).await;
    let e = InstancePrincipal::new(s.endpoints.clone())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, InstancePrincipalError::Federation { .. }),
        "{text}"
    );
    assert!(
        text.contains("/v1/x509") && text.contains("401") && text.contains("dynamic group"),
        "{text}"
    );
    assert!(
        s.state.lock().unwrap().refusals[0].contains("does not chain"),
        "{:?}",
        s.state.lock().unwrap().refusals
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    // No metadata service at all (not on OCI): named, with the fix.
    let gone = Endpoints {
        metadata: Url::parse("http://127.0.0.1:9/opc/v2").unwrap(),
        auth: None,
    };
    let e = InstancePrincipal::new(gone).await.unwrap_err();
    assert!(
        e.to_string().contains("/opc/v2/instance/region")
            && e.to_string().contains("compute instance"),
        "{e}"
    );
}
