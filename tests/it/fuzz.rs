//! API fuzzing: schemathesis (PyPI, pinned by scripts/setup) generates requests from the
//! service's own `GET /openapi.json` and sends them to a running service on real PostgreSQL,
//! with a real organization's API key. It fails on any 5xx and on any response that breaks
//! the documented schema. The seed is fixed and the examples per operation are bounded, so a
//! run is reproducible and takes a few minutes at most on 2 cores.

use crate::support::api::Client;
use calops_testkit::{TestApp, BOOTSTRAP_TOKEN};
use reqwest::Method;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The seed of every run: a failure here reproduces with the command the test prints.
const SEED: &str = "20261206";
/// Examples per operation and phase.
const MAX_EXAMPLES: &str = "25";

/// schemathesis: $CALOPS_SCHEMATHESIS, the venv scripts/setup makes, or one on PATH.
fn schemathesis(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CALOPS_SCHEMATHESIS").map(PathBuf::from),
        Some(PathBuf::from("/opt/calops-schemathesis/bin/schemathesis")),
        which::which("schemathesis").ok(),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        calops_testkit::skip_or_fail(
            test,
            "schemathesis is not installed (run scripts/setup, which puts it in /opt/calops-schemathesis)",
        );
    }
    found
}

/// The ids of real resources of one organization: schemathesis puts them into path parameters
/// in the second run, so that generated requests reach bookings, webhooks and deliveries
/// instead of only 404s.
struct Tenant {
    key: String,
    org_id: i64,
    user_id: i64,
    schedule_id: i64,
    event_type_id: i64,
    webhook_id: i64,
    delivery_id: String,
    booking_uid: String,
}

/// An organization with a host, a schedule, an event type, a webhook (to a public name that
/// never answers here) and a booking, with the webhook's delivery of it.
async fn tenant(c: &Client) -> Tenant {
    let org = c
        .create(
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            json!({"name": "Fuzz"}),
        )
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user_id = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &key,
            json!({"name": "Host", "email": "host@fuzz.example.com", "timeZone": "UTC"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let schedule_id = c
        .create(
            "/v2/schedules",
            &key,
            json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
                   "availability": [{"days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
                                     "startTime": "09:00", "endTime": "17:00"}]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let event_type_id = c
        .create(
            "/v2/event-types",
            &key,
            json!({"userId": user_id, "title": "Call", "slug": "call", "lengthInMinutes": 30}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let webhook_id = c
        .ok(
            Method::POST,
            "/v2/webhooks",
            &key,
            Some(json!({"subscriberUrl": "https://hooks.fuzz.invalid/calops",
                        "triggers": ["BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED"],
                        "secret": "fuzz-webhook-secret-0123456789"})),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let booking_uid = c
        .create(
            "/v2/bookings",
            &key,
            json!({"start": "2031-03-03T09:00:00Z", "eventTypeId": event_type_id,
                   "attendee": {"name": "Ada", "email": "ada@example.com", "timeZone": "UTC"}}),
        )
        .await["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let deliveries = c
        .ok(
            Method::GET,
            &format!("/v2/webhooks/{webhook_id}/deliveries"),
            &key,
            None,
        )
        .await;
    let delivery_id = deliveries[0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a delivery of the booking: {deliveries}"))
        .to_string();
    Tenant {
        key,
        org_id,
        user_id,
        schedule_id,
        event_type_id,
        webhook_id,
        delivery_id,
        booking_uid,
    }
}

/// Run schemathesis against `app` with `t`'s key (and `config`, a schemathesis.toml, when
/// given); panics with its report unless it found nothing.
async fn run(st: &Path, app: &TestApp, t: &Tenant, config: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = Vec::new();
    if let Some(text) = config {
        let path = dir.path().join("schemathesis.toml");
        std::fs::write(&path, text).unwrap();
        args.extend(["--config-file".into(), path.display().to_string()]);
    }
    args.extend([
        "run".into(),
        app.url("/openapi.json"),
        "--checks".into(),
        "not_a_server_error,response_schema_conformance".into(),
        // No `coverage` phase: with the versioned booking body (one schema per
        // cal-api-version) schemathesis 4.32.5's coverage generator crashes inside Python's
        // `ast` ("AST constructor recursion depth mismatch") on POST /v2/bookings, a runtime
        // error of the tool rather than a finding. Examples and fuzzing cover every operation.
        "--phases".into(),
        "examples,fuzzing".into(),
        "--seed".into(),
        SEED.into(),
        "--max-examples".into(),
        MAX_EXAMPLES.into(),
        "--workers".into(),
        "2".into(),
        "--request-timeout".into(),
        "10".into(),
        "--suppress-health-check".into(),
        "all".into(),
        "--generation-database".into(),
        "none".into(),
        "--no-color".into(),
        "--header".into(),
        format!("Authorization: Bearer {}", t.key),
    ]);
    eprintln!(
        "running {} {}",
        st.display(),
        args.iter()
            .map(|a| if a.contains(&t.key) {
                "Authorization: Bearer <key>"
            } else {
                a
            })
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = tokio::process::Command::new(st)
        .args(&args)
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(
        out.status.success(),
        "schemathesis found failures (exit {:?}); its report is above",
        out.status.code()
    );
    // It really ran: every operation was tested.
    assert!(
        stdout.contains("Tested: ") && !stdout.contains("Tested: 0"),
        "schemathesis tested nothing:\n{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let test = "schemathesis_finds_no_server_error_and_no_schema_violation";
    if !calops_testkit::have_pg(test) {
        return;
    }
    let Some(st) = schemathesis(test) else {
        return;
    };
    let app = TestApp::spawn().await.unwrap();
    let t = tenant(&Client::new(&app)).await;
    // Any ids (mostly someone else's or nobody's), then the organization's real resources.
    run(&st, &app, &t, None).await;
    let config = format!(
        "[parameters]\n\
         \"path.orgId\" = {}\n\
         \"path.userId\" = {}\n\
         \"path.scheduleId\" = {}\n\
         \"path.eventTypeId\" = {}\n\
         \"path.webhookId\" = {}\n\
         \"path.deliveryId\" = \"{}\"\n\
         \"path.uid\" = \"{}\"\n",
        t.org_id,
        t.user_id,
        t.schedule_id,
        t.event_type_id,
        t.webhook_id,
        t.delivery_id,
        t.booking_uid
    );
    run(&st, &app, &t, Some(config)).await;
    app.running.shutdown().await.unwrap();
}
