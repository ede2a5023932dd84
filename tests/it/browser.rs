//! The booking pages in a real browser: Debian's chromium driven by playwright-core
//! (`tests/browser/pages.mjs`) against the real service and PostgreSQL. The script books in
//! New York (keyboard only) and Sydney across daylight-saving changes, without JavaScript,
//! inside an iframe of another origin, reschedules and cancels through the links, and runs
//! axe-core on every page; this test checks what it saw and what the database stored.
//! Under CI=true a missing chromium, node or node_modules fails; locally it skips with a
//! printed reason.

use crate::pages::{tenant, Tenant};
use crate::support::api::Client;
use crate::support::db;
use calops_testkit::{have_pg, skip_or_fail, TestApp};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;

fn tools(test: &str) -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = Path::new("/usr/bin/chromium");
    if !chromium.exists() {
        skip_or_fail(
            test,
            "/usr/bin/chromium is not installed (run scripts/setup)",
        );
        return None;
    }
    calops_testkit::require_tool(test, "node")?;
    for m in ["playwright-core/package.json", "axe-core/axe.min.js"] {
        if !dir.join("node_modules").join(m).exists() {
            skip_or_fail(
                test,
                &format!("tests/browser/node_modules/{m} is missing (run scripts/setup)"),
            );
            return None;
        }
    }
    Some(dir)
}

async fn stored(url: &str, uid: &str) -> (String, String, String) {
    let d = db(url).await;
    let uid: uuid::Uuid = uid
        .parse()
        .unwrap_or_else(|_| panic!("a booking uid: {uid:?}"));
    let r = d
        .query_one(
            "SELECT status, start_at, attendee->>'timeZone' FROM bookings WHERE uid = $1",
            &[&uid],
        )
        .await
        .unwrap();
    (
        r.get(0),
        r.get::<_, jiff::Timestamp>(1).to_string(),
        r.get(2),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitees_book_reschedule_and_cancel_in_chromium_across_dst_with_zero_axe_violations() {
    const NAME: &str =
        "invitees_book_reschedule_and_cancel_in_chromium_across_dst_with_zero_axe_violations";
    if !have_pg(NAME) {
        return;
    }
    let Some(dir) = tools(NAME) else {
        return;
    };
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t: Tenant = tenant(&c, "Browser Org", "UTC").await;
    let embed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v2/organizations/{}", t.org_id),
            Some(&t.key),
            Some(
                json!({"embedAllowedOrigins": [format!("http://127.0.0.1:{embed_port}")],
                        "brandColor": "#0b7285"}),
            ),
        )
        .await;
    assert_eq!(s, 200, "{v}");

    let out = tokio::process::Command::new("node")
        .arg(dir.join("pages.mjs"))
        .current_dir(&dir)
        .env("CALOPS_BASE", &app.base)
        .env("CALOPS_BOOKER", t.booker())
        .env("CALOPS_EMBED_PORT", embed_port.to_string())
        .env("CALOPS_404", format!("/{}/nobody", t.org_slug))
        .env(
            "CALOPS_INVALID_LINK",
            format!("/booking/{}?t=1.2.AAAA", uuid::Uuid::new_v4()),
        )
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed: {stderr}\n{stdout}");
    let r: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    assert_eq!(r["errors"], json!([]), "the driver or a page failed: {r:#}");
    // The only thing the browser refused: framing by an origin that is not allowed.
    let csp = r["csp"].as_array().unwrap();
    assert!(
        csp.iter().all(|c| c["run"] == "embed-refused"
            && c["text"].as_str().unwrap().contains("frame-ancestors")),
        "the browser refused something: {r:#}"
    );
    assert!(
        !csp.is_empty(),
        "the refused embedding was not reported: {r:#}"
    );

    // Every page audited, zero axe violations.
    let audits = r["audits"].as_array().unwrap();
    let pages: Vec<&str> = audits.iter().map(|a| a["page"].as_str().unwrap()).collect();
    for p in [
        "booker",
        "booker-form",
        "confirmation",
        "booker-form-errors",
        "reschedule",
        "cancel",
        "cancelled",
        "embedded-booker",
        "home",
        "profile",
        "booker-de",
        "not-found",
        "invalid-link",
    ] {
        assert!(pages.contains(&p), "{p} was not audited: {pages:?}");
    }
    let bad: Vec<&Value> = audits
        .iter()
        .filter(|a| !a["violations"].as_array().unwrap().is_empty())
        .collect();
    assert!(bad.is_empty(), "axe violations: {bad:#?}");

    // New York, keyboard only: the zone came from the browser; 09:00 UTC is 4:00 AM before
    // the change (EST) and 5:00 AM after it (EDT).
    let ny = &r["runs"]["ny"];
    assert_eq!(ny["tzShown"], "America/New_York", "{ny}");
    assert_eq!(ny["before"][0], "4:00 AM", "{ny}");
    assert_eq!(ny["after"][0], "5:00 AM", "{ny}");
    assert_eq!(ny["when"], "Monday, March 15, 2027, 5:00 AM", "{ny}");
    assert_eq!(ny["heading"], "Your booking is confirmed");
    assert!(
        ny["nameShown"]
            .as_str()
            .unwrap()
            .contains("Nia <i>York</i>"),
        "shown as text: {ny}"
    );
    let (status, start, tz) = stored(&app.database_url, ny["uid"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_str(), start.as_str(), tz.as_str()),
        ("accepted", "2027-03-15T09:00:00Z", "America/New_York")
    );

    // Sydney across the end of daylight saving time: 09:00 UTC is 8:00 PM on the 3rd (AEDT)
    // and 7:00 PM on the 5th (AEST); then moved to 7:30 PM on the 6th, then cancelled.
    let syd = &r["runs"]["sydney"];
    // The host's day starts at 09:00 UTC: the first evening slot of each local date.
    let first_pm = |k: &str| {
        syd[k]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x.as_str().unwrap().ends_with("PM"))
            .cloned()
    };
    assert_eq!(first_pm("before"), Some(json!("8:00 PM")), "{syd}");
    assert_eq!(first_pm("after"), Some(json!("7:00 PM")), "{syd}");
    assert_eq!(
        syd["booked"]["when"], "Monday, April 5, 2027, 7:00 PM",
        "{syd}"
    );
    assert_eq!(
        syd["moved"]["when"], "Tuesday, April 6, 2027, 7:30 PM",
        "{syd}"
    );
    assert_eq!(syd["cancelled"], "This booking is cancelled");
    let (status, start, tz) =
        stored(&app.database_url, syd["booked"]["uid"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_str(), start.as_str(), tz.as_str()),
        ("cancelled", "2027-04-05T09:00:00Z", "Australia/Sydney")
    );
    let (status, start, _) = stored(&app.database_url, syd["moved"]["uid"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_str(), start.as_str()),
        ("cancelled", "2027-04-06T09:30:00Z")
    );

    // Without JavaScript: the host's zone first, the invitee's after the GET form.
    let nojs = &r["runs"]["nojs"];
    assert_eq!(nojs["defaultTz"], "UTC", "{nojs}");
    assert_eq!(nojs["when"], "Tuesday, March 16, 2027, 5:00 AM", "{nojs}");
    let (status, start, tz) = stored(&app.database_url, nojs["uid"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_str(), start.as_str(), tz.as_str()),
        ("accepted", "2027-03-16T09:00:00Z", "America/New_York")
    );

    // Embedded: no chrome, booked inside the frame, the height posted to the parent; refused
    // from an origin that is not allowed.
    let e = &r["runs"]["embed"];
    assert_eq!(e["chrome"], 0, "{e}");
    assert_eq!(e["when"], "Wednesday, March 17, 2027, 10:00 AM", "{e}");
    assert!(
        e["heights"].as_u64().unwrap() >= 1 && e["maxHeight"].as_u64().unwrap() > 100,
        "{e}"
    );
    assert_eq!(
        e["refusedBooker"], 0,
        "framed by an origin not on the list: {e}"
    );
    let (status, start, _) = stored(&app.database_url, e["uid"].as_str().unwrap()).await;
    assert_eq!(
        (status.as_str(), start.as_str()),
        ("accepted", "2027-03-17T10:00:00Z")
    );

    let o = &r["runs"]["other"];
    assert_eq!(o["de"]["lang"], "de", "{o}");
    assert_eq!(o["de"]["caption"], "März 2027", "{o}");
    assert_eq!(o["status404"], 404);
    assert_eq!(o["statusInvalid"], 404);

    // The API sees the same bookings (one store).
    let (s, v) = c
        .call(
            Method::GET,
            "/v2/bookings?status=upcoming",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 3, "{v}");
}
