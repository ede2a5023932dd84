//! The instance principal against stand-ins on 127.0.0.1 for what a compute instance talks to:
//! the metadata service (which answers only `Authorization: Bearer Oracle`, as IMDS v2 does),
//! the auth service's `POST /v1/x509` (which checks the request as OCI does: the certificate
//! chains through the intermediate to the stand-in's root CA, the keyId names the tenancy of
//! the certificate's `opc-tenant:` value and its SHA-256 fingerprint, the signature over
//! exactly the SDKs' headers verifies with the certificate's key, the body hash matches) and
//! Object Storage (which accepts only `ST$<token>` of a live token, signed with the session key
//! that token was issued for).

use crate::support::imds::{self, instance_pki, now, pki, Pki, State, TENANCY};
use crate::support::ocistand::{self, header, incoming, json_reply, oci_error, param, Signatures};
use calops::oci::client::{OciClient, OciError, RetryPolicy, Service};
use calops::oci::instance::{Endpoints, InstancePrincipal, InstancePrincipalError};
use serde_json::json;
use std::sync::{Arc, Mutex};
use url::Url;

struct Stand {
    state: Arc<Mutex<State>>,
    endpoints: Endpoints,
    os: Url,
}

async fn stand(pki: Pki) -> Stand {
    let state = Arc::new(Mutex::new(State {
        lifetime: 3600,
        ..Default::default()
    }));
    let endpoints = imds::serve(&pki, state.clone(), None).await;
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
    let os = ocistand::serve(os).await;
    Stand {
        state,
        endpoints,
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
