//! The scheduling service against a real PostgreSQL cluster (one per test run, a database per
//! test) over real HTTP on 127.0.0.1.

use calops_testkit::{fresh_database, have_pg, TestApp, BOOTSTRAP_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

use crate::support::api::{code, Client};

/// A top-level organization with a host, a schedule and an event type.
struct Tenant {
    org_id: i64,
    key: String,
    user_id: i64,
    schedule_id: i64,
    event_type_id: i64,
}

async fn tenant(c: &Client, name: &str, tz: &str, event_type: Value) -> Tenant {
    let org = c
        .create("/v2/organizations", BOOTSTRAP_TOKEN, json!({"name": name}))
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .create(&format!("/v2/organizations/{org_id}/users"), &key,
            json!({"name": "Host", "email": format!("host@{}.example.com", org["slug"].as_str().unwrap()), "timeZone": tz}))
        .await;
    let user_id = user["id"].as_i64().unwrap();
    let schedule = c
        .create("/v2/schedules", &key, json!({
            "userId": user_id, "name": "Work", "timeZone": tz,
            "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday"], "startTime": "09:00", "endTime": "12:00"}]
        }))
        .await;
    let mut et = event_type;
    et["userId"] = json!(user_id);
    let et = c.create("/v2/event-types", &key, et).await;
    Tenant {
        org_id,
        key,
        user_id,
        schedule_id: schedule["id"].as_i64().unwrap(),
        event_type_id: et["id"].as_i64().unwrap(),
    }
}

fn basic_type() -> Value {
    json!({"title": "Intro", "slug": "intro", "lengthInMinutes": 30})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_isolated_and_keys_are_hashed() {
    if !have_pg("tenants_are_isolated_and_keys_are_hashed") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let a = tenant(&c, "Acme", "UTC", basic_type()).await;
    let b = tenant(&c, "Bravo", "UTC", basic_type()).await;

    // A child organization (sub-account): its key is returned once.
    let child = c
        .create(
            &format!("/v2/organizations/{}/organizations", a.org_id),
            &a.key,
            json!({"name": "Acme Dental", "metadata": {"crmId": "42"}}),
        )
        .await;
    let child_id = child["id"].as_i64().unwrap();
    let child_key = child["apiKey"].as_str().unwrap().to_string();
    assert_eq!(child["parentId"], a.org_id);
    assert_eq!(child["slug"], "acme-dental");
    let (s, v) = c
        .get(
            &format!("/v2/organizations/{}/organizations", a.org_id),
            &a.key,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert!(
        v["data"][0].get("apiKey").is_none(),
        "the key is shown only once"
    );

    // Parent sees child; child does not see parent; nobody sees another tenant: 404 not 403.
    assert_eq!(
        c.get(&format!("/v2/organizations/{child_id}"), &a.key)
            .await
            .0,
        200
    );
    for (path, key) in [
        (format!("/v2/organizations/{}", a.org_id), &child_key),
        (format!("/v2/organizations/{}", a.org_id), &b.key),
        (format!("/v2/organizations/{child_id}"), &b.key),
        (format!("/v2/organizations/{}/users", a.org_id), &b.key),
        (
            format!("/v2/organizations/{}/users/{}", a.org_id, a.user_id),
            &b.key,
        ),
        (format!("/v2/schedules/{}", a.schedule_id), &b.key),
        (format!("/v2/schedules/{}", a.schedule_id), &child_key),
        (format!("/v2/event-types/{}", a.event_type_id), &b.key),
    ] {
        let (s, v) = c.get(&path, key).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "GET {path}: {v}");
        assert_eq!(v["status"], "error");
    }
    let (s, v) = c
        .get(
            &format!(
                "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-04",
                a.event_type_id
            ),
            &b.key,
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "event_type_not_found")
    );
    let (s, v) = c
        .post(
            &format!("/v2/organizations/{}/organizations", a.org_id),
            &b.key,
            json!({"name": "Sneaky"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    let (_, v) = c.get("/v2/schedules", &b.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["id"], b.schedule_id);

    // Only the bootstrap admin creates top-level organizations.
    let (s, v) = c
        .post("/v2/organizations", &a.key, json!({"name": "Mine"}))
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "bootstrap_admin_required")
    );
    let (s, v) = c.call(Method::GET, "/v2/schedules", None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, "unauthorized"));
    let (s, _) = c.get("/v2/schedules", "cal_live_not_a_key").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = c.get("/v2/schedules", BOOTSTRAP_TOKEN).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::FORBIDDEN, "organization_key_required")
    );
    let (s, v) = c
        .post(
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            json!({"name": "Acme"}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "conflict"),
        "duplicate slug"
    );

    // Keys are stored only as SHA-256 hashes.
    let (client, conn) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let dump: String = client
        .query_one("SELECT string_agg(k::text, ' ') FROM api_keys k", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        !dump.contains(&child_key[9..]),
        "plaintext key in the database"
    );
    use sha2::Digest;
    let h = sha2::Sha256::digest(child_key.as_bytes()).to_vec();
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM api_keys WHERE key_hash = $1 AND org_id = $2",
            &[&h, &child_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_limit_what_a_key_can_do() {
    if !have_pg("scopes_limit_what_a_key_can_do") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Scoped", "UTC", basic_type()).await;
    let reader = c
        .create(
            &format!("/v2/organizations/{}/api-keys", t.org_id),
            &t.key,
            json!({"scopes": ["read"], "name": "crm"}),
        )
        .await;
    let reader = reader["apiKey"].as_str().unwrap().to_string();
    assert_eq!(c.get("/v2/schedules", &reader).await.0, 200);
    assert_eq!(
        c.get(
            &format!(
                "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-04",
                t.event_type_id
            ),
            &reader
        )
        .await
        .0,
        200
    );
    for (path, body) in [
        (
            "/v2/schedules".to_string(),
            json!({"userId": t.user_id, "name": "x", "timeZone": "UTC"}),
        ),
        (
            "/v2/event-types".to_string(),
            json!({"userId": t.user_id, "title": "x", "slug": "x", "lengthInMinutes": 15}),
        ),
        (
            format!("/v2/organizations/{}/users", t.org_id),
            json!({"name": "x", "email": "x@example.com"}),
        ),
        (
            format!("/v2/organizations/{}/api-keys", t.org_id),
            json!({"scopes": ["admin"]}),
        ),
    ] {
        let (s, v) = c.post(&path, &reader, body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::FORBIDDEN, "insufficient_scope"),
            "POST {path}"
        );
    }
    let (s, v) = c
        .call(
            Method::DELETE,
            &format!("/v2/schedules/{}", t.schedule_id),
            Some(&reader),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "insufficient_scope"));
    let booker = c
        .create(
            &format!("/v2/organizations/{}/api-keys", t.org_id),
            &t.key,
            json!({"scopes": ["book"]}),
        )
        .await;
    let (s, _) = c
        .get("/v2/schedules", booker["apiKey"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "book does not imply read");
    let (s, v) = c
        .post(
            &format!("/v2/organizations/{}/api-keys", t.org_id),
            &t.key,
            json!({"scopes": ["superuser"]}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_carry_branding() {
    if !have_pg("organizations_carry_branding") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Brand Co", "UTC", basic_type()).await;
    let path = format!("/v2/organizations/{}", t.org_id);
    let (s, v) = c
        .call(Method::PATCH, &path, Some(&t.key), Some(json!({
            "brandColor": "#112233", "darkBrandColor": "#abcdef", "logoUrl": "https://cdn.example.com/l.png",
            "theme": "dark", "hideBranding": true
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["brandColor"], "#112233");
    assert_eq!(v["data"]["theme"], "dark");
    assert_eq!(v["data"]["hideBranding"], true);
    let (_, v) = c
        .call(
            Method::PATCH,
            &path,
            Some(&t.key),
            Some(json!({"logoUrl": null})),
        )
        .await;
    assert_eq!(v["data"]["logoUrl"], Value::Null);
    assert_eq!(v["data"]["brandColor"], "#112233", "absent fields stay");
    let (s, v) = c
        .call(
            Method::PATCH,
            &path,
            Some(&t.key),
            Some(json!({"brandColor": "red", "theme": "neon", "logoUrl": "ftp://x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        3,
        "{v}"
    );
    let (s, v) = c.get(&path, &t.key).await;
    assert_eq!(
        (s, &v["data"]["darkBrandColor"]),
        (StatusCode::OK, &json!("#abcdef"))
    );
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_event_types_and_bad_input() {
    if !have_pg("schedules_event_types_and_bad_input") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Crud", "Europe/Berlin", basic_type()).await;

    // Users.
    let (s, v) = c
        .get(
            &format!("/v2/organizations/{}/users/{}", t.org_id, t.user_id),
            &t.key,
        )
        .await;
    assert_eq!(
        (s, &v["data"]["timeZone"]),
        (StatusCode::OK, &json!("Europe/Berlin"))
    );
    let (s, v) = c
        .post(
            &format!("/v2/organizations/{}/users", t.org_id),
            &t.key,
            json!({"name": "", "email": "nope", "timeZone": "Mars/Base"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        3,
        "{v}"
    );
    let (_, v) = c
        .get(&format!("/v2/organizations/{}/users", t.org_id), &t.key)
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);

    // Schedules: the first is the default; a new default replaces it.
    let (_, v) = c
        .get(&format!("/v2/schedules/{}", t.schedule_id), &t.key)
        .await;
    assert_eq!(v["data"]["isDefault"], true);
    assert_eq!(v["data"]["ownerId"], t.user_id);
    assert_eq!(v["data"]["availability"][0]["days"][0], "Monday");
    let second = c
        .create("/v2/schedules", &t.key, json!({
            "userId": t.user_id, "name": "Evenings", "timeZone": "Europe/Berlin", "isDefault": true,
            "availability": [{"days": ["Saturday"], "startTime": "18:00", "endTime": "24:00"}],
            "overrides": [{"date": "2031-03-08", "startTime": "19:00", "endTime": "20:00"}]
        }))
        .await;
    assert_eq!(second["isDefault"], true);
    let (_, v) = c
        .get(&format!("/v2/schedules/{}", t.schedule_id), &t.key)
        .await;
    assert_eq!(v["data"]["isDefault"], false);
    let sid = second["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v2/schedules/{sid}"),
            Some(&t.key),
            Some(json!({"name": "Late", "overrides": []})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["name"], "Late");
    assert_eq!(v["data"]["overrides"], json!([]));
    let (_, v) = c.get("/v2/schedules", &t.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (s, v) = c
        .post(
            "/v2/schedules",
            &t.key,
            json!({
                "userId": t.user_id, "name": "Bad", "timeZone": "Nowhere/Land",
                "availability": [{"days": ["Someday"], "startTime": "25:00", "endTime": "08:00"}],
                "overrides": [{"date": "2031-02-30", "startTime": "10:00", "endTime": "09:00"}]
            }),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    let fields: Vec<&str> = v["error"]["details"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "timeZone",
            "availability[0].days",
            "availability[0].startTime",
            "overrides[0].date"
        ],
        "{v}"
    );
    let (s, v) = c
        .post(
            "/v2/schedules",
            &t.key,
            json!({"userId": 999999, "name": "x", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));

    // Event types.
    let et = c
        .create("/v2/event-types", &t.key, json!({
            "userId": t.user_id, "title": "Long", "slug": "long", "lengthInMinutes": 90, "slotInterval": 30,
            "minimumBookingNotice": 120, "beforeEventBuffer": 10, "afterEventBuffer": 15, "scheduleId": t.schedule_id,
            "bookingWindow": {"type": "businessDays", "value": 10}, "bookingLimitsCount": {"day": 2}
        }))
        .await;
    assert_eq!(et["lengthInMinutes"], 90);
    assert_eq!(et["bookingLimitsCount"], json!({"day": 2}));
    assert_eq!(et["scheduleId"], t.schedule_id);
    let et_id = et["id"].as_i64().unwrap();
    let (s, v) = c.get(&format!("/v2/event-types/{et_id}"), &t.key).await;
    assert_eq!((s, &v["data"]["slug"]), (StatusCode::OK, &json!("long")));
    let (_, v) = c.get("/v2/event-types", &t.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let (s, v) = c
        .post(
            "/v2/event-types",
            &t.key,
            json!({"userId": t.user_id, "title": "Dup", "slug": "long", "lengthInMinutes": 30}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));
    let (s, v) = c.post("/v2/event-types", &t.key, json!({
        "userId": t.user_id, "title": "", "slug": "Bad Slug", "lengthInMinutes": 0, "beforeEventBuffer": -5,
        "bookingWindow": {"type": "weeks", "value": 2}, "bookingLimitsCount": {"week": 3}
    })).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    // Five problems; a weekly limit is not one (Cal.com documents it: a warning says calops
    // enforces the daily limit only).
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        5,
        "{v}"
    );

    // PATCH merges, then checks the whole event type.
    let path = format!("/v2/event-types/{et_id}");
    let (s, v) = c
        .call(
            Method::PATCH,
            &path,
            Some(&t.key),
            Some(json!({"title": "Longer", "slotInterval": null, "bookingWindow": null})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["title"], "Longer");
    assert_eq!(v["data"]["slotInterval"], Value::Null);
    assert_eq!(v["data"]["bookingWindow"], Value::Null);
    assert_eq!(v["data"]["lengthInMinutes"], 90, "untouched fields stay");
    let (s, v) = c
        .call(
            Method::PATCH,
            &path,
            Some(&t.key),
            Some(json!({"lengthInMinutes": 0, "scheduleId": 424242})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    let (s, v) = c
        .call(
            Method::PATCH,
            &path,
            Some(&t.key),
            Some(json!({"slug": "intro"})),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "conflict"));

    // Bad JSON, wrong shapes, wrong content type, unknown routes and methods: 4xx, never 500.
    let raw = c
        .http
        .post(format!("{}/v2/event-types", c.base))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"title\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&raw.json::<Value>().await.unwrap()), "invalid_json");
    let (s, v) = c
        .post("/v2/event-types", &t.key, json!({"title": "no length"}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    let (s, v) = c
        .post("/v2/event-types", &t.key, json!(["not", "an", "object"]))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    let raw = c
        .http
        .post(format!("{}/v2/schedules", c.base))
        .bearer_auth(&t.key)
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (s, v) = c.get("/v2/event-types/not-a-number", &t.key).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "invalid_path"));
    let (s, v) = c.get("/v2/nothing-here", &t.key).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "route_not_found"));
    let (s, v) = c
        .call(Method::PUT, "/v2/schedules", Some(&t.key), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    // Deleting.
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/v2/event-types/{et_id}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        c.get(&format!("/v2/event-types/{et_id}"), &t.key).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/v2/schedules/{sid}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, _) = c
        .call(
            Method::DELETE,
            &format!("/v2/schedules/{sid}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.running.shutdown().await.unwrap();
}

fn slot_starts(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (_, list) in v["data"].as_object().unwrap() {
        for s in list.as_array().unwrap() {
            out.push(s["start"].as_str().unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_apply_hours_bookings_buffers_and_limits() {
    if !have_pg("slots_apply_hours_bookings_buffers_and_limits") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    // Host in Berlin, Monday to Friday 09:00-12:00; 30-minute meetings, buffers 10 before, 5 after.
    let t = tenant(&c, "Slots", "Europe/Berlin", json!({
        "title": "Call", "slug": "call", "lengthInMinutes": 30, "beforeEventBuffer": 10, "afterEventBuffer": 5,
        "bookingLimitsCount": {"day": 2}
    }))
    .await;
    let store = &app.running.state.store;
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    // Monday 2031-03-03: a booking 10:00-10:30 Berlin (09:00Z) of this type.
    store
        .insert_accepted_booking(
            t.org_id,
            t.event_type_id,
            at("2031-03-03T09:00:00Z"),
            at("2031-03-03T09:30:00Z"),
            &json!({}),
        )
        .await
        .unwrap();
    let q = format!(
        "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-03&timeZone=Europe/Berlin",
        t.event_type_id
    );
    let (s, v) = c.get(&q, &t.key).await;
    assert_eq!(s, 200, "{v}");
    // Busy 10:00-10:30 widened by (10 booked before + 5 this after) and (5 booked after + 10
    // this before): 09:45-10:45. Free 09:00-09:45 -> 09:00; 10:45-12:00 -> grid 11:00, 11:30.
    assert_eq!(
        slot_starts(&v),
        [
            "2031-03-03T09:00:00.000+01:00",
            "2031-03-03T11:00:00.000+01:00",
            "2031-03-03T11:30:00.000+01:00"
        ]
    );
    // Same answer in New York time, grouped by New York dates, with ranges.
    let (_, v) = c.get(&format!("/v2/slots?eventTypeId={}&start=2031-03-03T00:00:00Z&end=2031-03-03T23:59:00Z&timeZone=America/New_York&format=range", t.event_type_id), &t.key).await;
    assert_eq!(
        v["data"]["2031-03-03"][0],
        json!({"start": "2031-03-03T03:00:00.000-05:00", "end": "2031-03-03T03:30:00.000-05:00"})
    );
    assert_eq!(v["data"]["2031-03-03"].as_array().unwrap().len(), 3);
    // Two bookings of this type on Tuesday reach the per-day limit; another type's would not.
    store
        .insert_accepted_booking(
            t.org_id,
            t.event_type_id,
            at("2031-03-04T08:00:00Z"),
            at("2031-03-04T08:30:00Z"),
            &json!({}),
        )
        .await
        .unwrap();
    store
        .insert_accepted_booking(
            t.org_id,
            t.event_type_id,
            at("2031-03-04T10:30:00Z"),
            at("2031-03-04T11:00:00Z"),
            &json!({}),
        )
        .await
        .unwrap();
    let (_, v) = c
        .get(
            &format!(
                "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-05&timeZone=Europe/Berlin",
                t.event_type_id
            ),
            &t.key,
        )
        .await;
    let dates: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(dates, ["2031-03-03", "2031-03-05"], "{v}");
    // duration overrides the length; the weekend has no hours.
    let (_, v) = c.get(&format!("/v2/slots?eventTypeId={}&start=2031-03-07&end=2031-03-09&timeZone=Europe/Berlin&duration=60", t.event_type_id), &t.key).await;
    assert_eq!(
        slot_starts(&v),
        [
            "2031-03-07T09:00:00.000+01:00",
            "2031-03-07T10:00:00.000+01:00",
            "2031-03-07T11:00:00.000+01:00"
        ]
    );
    // Spring forward in Berlin (Sunday 2031-03-30): an override 01:30-04:00 starts at 03:00 CEST.
    let (s, _) = c
        .call(
            Method::PATCH,
            &format!("/v2/schedules/{}", t.schedule_id),
            Some(&t.key),
            Some(json!({
                "overrides": [{"date": "2031-03-30", "startTime": "02:30", "endTime": "04:00"}]
            })),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = c
        .get(
            &format!(
                "/v2/slots?eventTypeId={}&start=2031-03-30&end=2031-03-30&timeZone=Europe/Berlin",
                t.event_type_id
            ),
            &t.key,
        )
        .await;
    assert_eq!(slot_starts(&v), ["2031-03-30T03:30:00.000+02:00"], "{v}");

    // A rolling window: the next 2 dates (from today) that still have a slot.
    let rolling = c
        .create(
            "/v2/event-types",
            &t.key,
            json!({"userId": t.user_id, "title": "Rolling", "slug": "rolling", "lengthInMinutes": 30,
                   "bookingWindow": {"type": "calendarDays", "value": 2, "rolling": true}}),
        )
        .await;
    assert_eq!(rolling["bookingWindow"]["rolling"], true);
    let rolling_id = rolling["id"].as_i64().unwrap();
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let today = jiff::Timestamp::now().to_zoned(berlin.clone()).date();
    let days_of =
        |v: &Value| -> Vec<String> { v["data"].as_object().unwrap().keys().cloned().collect() };
    let in_days = |n: i64| today.checked_add(jiff::Span::new().days(n)).unwrap();
    let rolling_q = |from: jiff::civil::Date, to: jiff::civil::Date| {
        format!("/v2/slots?eventTypeId={rolling_id}&start={from}&end={to}&timeZone=Europe/Berlin")
    };
    let (s, v) = c.get(&rolling_q(today, in_days(12)), &t.key).await;
    assert_eq!(s, 200, "{v}");
    let first = days_of(&v);
    assert_eq!(first.len(), 2, "{v}");
    // Booking out the first of them moves the window on by a date, also for a query that
    // starts after it.
    let d1: jiff::civil::Date = first[0].parse().unwrap();
    store
        .insert_accepted_booking(
            t.org_id,
            rolling_id,
            d1.at(9, 0, 0, 0)
                .to_zoned(berlin.clone())
                .unwrap()
                .timestamp(),
            d1.at(12, 0, 0, 0)
                .to_zoned(berlin.clone())
                .unwrap()
                .timestamp(),
            &json!({}),
        )
        .await
        .unwrap();
    let (_, v) = c.get(&rolling_q(today, in_days(12)), &t.key).await;
    let second = days_of(&v);
    assert_eq!(second.len(), 2, "{v}");
    assert_eq!(second[0], first[1]);
    let d3: jiff::civil::Date = second[1].parse().unwrap();
    let (_, v) = c.get(&rolling_q(d3, in_days(12)), &t.key).await;
    assert_eq!(days_of(&v), [second[1].clone()], "{v}");

    // Bad queries.
    let base = format!("/v2/slots?eventTypeId={}", t.event_type_id);
    for (query, status, want) in [
        (
            format!("{base}&start=2031-03-03&end=2031-03-04&timeZone=Atlantis/City"),
            400,
            "invalid_time_zone",
        ),
        (
            format!("{base}&start=2031-03-05&end=2031-03-03"),
            400,
            "invalid_range",
        ),
        (
            format!("{base}&start=2031-03-01&end=2031-04-15"),
            400,
            "range_too_large",
        ),
        (
            format!("{base}&start=yesterday&end=2031-03-03"),
            400,
            "validation_error",
        ),
        (
            "/v2/slots?start=2031-03-03&end=2031-03-04".to_string(),
            400,
            "validation_error",
        ),
        (
            "/v2/slots?eventTypeId=987654&start=2031-03-03&end=2031-03-04".to_string(),
            404,
            "event_type_not_found",
        ),
    ] {
        let (s, v) = c.get(&query, &t.key).await;
        assert_eq!((s.as_u16(), code(&v)), (status, want), "{query}: {v}");
    }
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_a_truthful_openapi_document() {
    if !have_pg("health_metrics_and_a_truthful_openapi_document") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Ops", "UTC", basic_type()).await;
    let (s, v) = c
        .call(Method::GET, "/health", Some(BOOTSTRAP_TOKEN), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["checks"]["database"]["status"], "up");
    assert!(v["checks"]["database"]["latencyMs"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["checks"]["redis"]["status"], "not_configured");
    assert_eq!(v["checks"]["objectStorage"]["status"], "not_configured");

    // Every documented operation is routed (no route_not_found / 405), and the response
    // status is one the document lists.
    let (_, doc) = c.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum::<usize>(),
        calops::service::api::openapi::ENDPOINTS.len()
    );
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path
                .replace("{orgId}", &t.org_id.to_string())
                .replace("{userId}", &t.user_id.to_string())
                .replace("{scheduleId}", "0")
                .replace("{eventTypeId}", "0");
            let m: Method = method.to_uppercase().parse().unwrap();
            let body = if op.get("requestBody").is_some() {
                Some(json!({}))
            } else {
                None
            };
            let (s, v) = c.call(m, &concrete, Some(&t.key), body).await;
            assert_ne!(
                code(&v),
                "route_not_found",
                "{method} {path} is documented but not routed"
            );
            assert_ne!(s, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(s.as_u16() < 500, "{method} {path}: {s} {v}");
            let listed = op["responses"].as_object().unwrap();
            assert!(
                listed.contains_key(s.as_str()),
                "{method} {path} answered {s}, not documented: {v}"
            );
        }
    }

    let res = c
        .http
        .get(format!(
            "{}/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-04",
            c.base, t.event_type_id
        ))
        .bearer_auth(&t.key)
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let res = c
        .http
        .get(format!("{}/health", c.base))
        .send()
        .await
        .unwrap();
    assert!(!res.headers()["x-request-id"].is_empty());
    let text = c.metrics().await;
    assert!(text.contains("calops_http_request_duration_seconds_count{route=\"/v2/slots\",method=\"GET\",status=\"200\"}"), "{text}");
    assert!(text.contains("calops_db_pool_max_connections 16"));
    app.running.shutdown().await.unwrap();

    // Optional dependencies that are configured but down degrade the status; 200 still.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = tempfile::tempdir().unwrap();
    let config = calops::service::config::Config {
        redis_url: Some(format!("redis://127.0.0.1:{dead}")),
        object_storage_url: Some(
            url::Url::from_directory_path(storage.path())
                .unwrap()
                .to_string(),
        ),
        admin_token: None,
        db_pool_size: 4,
        ..calops_testkit::app_config(
            &fresh_database().await.unwrap(),
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    };
    let app = TestApp::spawn_with(config).await.unwrap();
    let c = Client::new(&app);
    let (s, v) = c.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("degraded")),
        "{v}"
    );
    assert_eq!(v["checks"]["redis"]["status"], "down");
    assert_eq!(v["checks"]["objectStorage"]["status"], "up");
    app.running.shutdown().await.unwrap();
}

/// Every route the router registers (`.route(PATH, get(..).post(..))` anywhere under
/// `src/service/api`, read from the source with `syn`), as (METHOD, path with `{}` for each
/// parameter).
fn routed_operations() -> std::collections::BTreeSet<(String, String)> {
    use syn::visit::Visit;
    struct Routes(std::collections::BTreeSet<(String, String)>);
    /// The HTTP methods a method router expression names: `get(h)`, `axum::routing::post(h)`,
    /// `.patch(h)`, chained.
    fn methods(e: &syn::Expr, out: &mut Vec<String>) {
        const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];
        match e {
            syn::Expr::Call(c) => {
                if let syn::Expr::Path(p) = &*c.func {
                    let name = p.path.segments.last().unwrap().ident.to_string();
                    if METHODS.contains(&name.as_str()) {
                        out.push(name);
                    }
                }
            }
            syn::Expr::MethodCall(m) => {
                methods(&m.receiver, out);
                let name = m.method.to_string();
                if METHODS.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            _ => {}
        }
    }
    impl<'ast> Visit<'ast> for Routes {
        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            // Unit tests build routers of their own.
            let test_only = m.attrs.iter().any(|a| {
                a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test")
            });
            if !test_only {
                syn::visit::visit_item_mod(self, m);
            }
        }

        fn visit_expr_method_call(&mut self, m: &'ast syn::ExprMethodCall) {
            if m.method == "route" && m.args.len() == 2 {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(path),
                    ..
                }) = &m.args[0]
                {
                    let mut found = Vec::new();
                    methods(&m.args[1], &mut found);
                    assert!(!found.is_empty(), "route {} has no method", path.value());
                    for method in found {
                        self.0
                            .insert((method.to_uppercase(), normalize(&path.value())));
                    }
                }
            }
            syn::visit::visit_expr_method_call(self, m);
        }
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/service/api");
    let mut routes = Routes(Default::default());
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let file = syn::parse_file(&std::fs::read_to_string(&path).unwrap()).unwrap();
            routes.visit_file(&file);
        }
    }
    routes.0
}

/// `/v2/x/{org_id}/y` and `/v2/x/{orgId}/y` -> `/v2/x/{}/y`.
fn normalize(path: &str) -> String {
    path.split('/')
        .map(|seg| if seg.starts_with('{') { "{}" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

/// The OpenAPI document and the router agree: every routed operation is documented and every
/// documented operation is routed (the document is what API clients and the fuzzing test
/// trust).
#[test]
fn the_openapi_document_lists_exactly_the_routes_the_router_serves() {
    let routed = routed_operations();
    assert!(
        routed.len() > 30 && routed.contains(&("GET".into(), "/v2/slots".into())),
        "the route reader found too little: {routed:?}"
    );
    let doc = calops::service::api::openapi::document();
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), normalize(path)))
        })
        .collect();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routed but not in /openapi.json: {undocumented:?}\ndocumented but not routed: {unrouted:?}"
    );
}

/// `/health` is unauthenticated: one round of checks serves every caller for a second, the
/// Redis connection is kept, and only trusted callers (the bootstrap admin token, the private
/// listener) see raw dependency errors. `/metrics` is on the private listener only, unless
/// `CALOPS_METRICS_PUBLIC=on`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_cached_and_quiet_and_metrics_are_private() {
    let test = "health_is_cached_and_quiet_and_metrics_are_private";
    if !have_pg(test) {
        return;
    }
    let Some(redis) = calops_testkit::TestRedis::start(test) else {
        return;
    };
    let config = calops::service::config::Config {
        // Object storage that cannot work: its error names the directory.
        object_storage_url: Some("file:///nonexistent-calops-dir/objects".into()),
        ..redis.app_config(
            &fresh_database().await.unwrap(),
            calops::service::ratelimit::policy::Limits::OFF,
        )
    };
    let app = TestApp::spawn_with(config).await.unwrap();
    let c = Client::new(&app);
    let mut info = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let connections = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap()
    };
    let before = connections(
        redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut info)
            .await
            .unwrap(),
    );

    // Anonymous callers: statuses only.
    let (s, v) = c.call(Method::GET, "/health", None, None).await;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("degraded")),
        "{v}"
    );
    assert_eq!(v["checks"]["redis"]["status"], "up");
    assert_eq!(v["checks"]["objectStorage"]["status"], "down");
    let text = v.to_string();
    assert!(
        !text.contains("nonexistent-calops-dir") && !text.contains("latencyMs"),
        "an anonymous caller sees no dependency errors: {text}"
    );
    // The operator (bootstrap token) and the private listener see them.
    let (_, v) = c
        .call(Method::GET, "/health", Some(BOOTSTRAP_TOKEN), None)
        .await;
    assert!(
        v["checks"]["objectStorage"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("nonexistent-calops-dir")),
        "{v}"
    );
    let private = Client::at(&app.private_base);
    let (_, v) = private.call(Method::GET, "/health", None, None).await;
    assert!(v["checks"]["database"]["latencyMs"].is_number(), "{v}");
    assert!(v["checks"]["objectStorage"]["error"].is_string(), "{v}");
    // A wrong token is just anonymous.
    let (s, v) = c
        .call(Method::GET, "/health", Some("not-the-token"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["checks"]["objectStorage"]["error"].is_null(), "{v}");

    // A crowd of callers within a second costs one round of checks.
    let rounds = app.running.state.health.rounds();
    let crowd: Vec<_> = (0..40)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.call(Method::GET, "/health", None, None).await.0 })
        })
        .collect();
    for r in crowd {
        assert_eq!(r.await.unwrap(), StatusCode::OK);
    }
    assert!(
        app.running.state.health.rounds() - rounds <= 1,
        "{} rounds of checks for 40 callers within a second",
        app.running.state.health.rounds() - rounds
    );
    // After the cache ages out a new round runs, over the Redis connection it already has.
    tokio::time::sleep(calops::service::health::CACHE_FOR + Duration::from_millis(100)).await;
    let rounds = app.running.state.health.rounds();
    let (s, _) = c.call(Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.running.state.health.rounds(), rounds + 1);
    let after = connections(
        redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut info)
            .await
            .unwrap(),
    );
    assert_eq!(
        after - before,
        1,
        "every round of checks reuses one Redis connection"
    );

    // /metrics: private by default.
    let (s, v) = c.call(Method::GET, "/metrics", None, None).await;
    assert_eq!((s, code(&v)), (StatusCode::NOT_FOUND, "metrics_not_public"));
    assert!(c.metrics().await.contains("calops_uptime_seconds"));
    app.running.shutdown().await.unwrap();

    // CALOPS_METRICS_PUBLIC=on serves it on the public listener too.
    let config = calops::service::config::Config {
        metrics_public: true,
        ..calops_testkit::app_config(
            &fresh_database().await.unwrap(),
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    };
    let app = TestApp::spawn_with(config).await.unwrap();
    let (s, v) = Client::at(&app.base)
        .call(Method::GET, "/metrics", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.running.shutdown().await.unwrap();
}

/// Poll `check` every 20 ms until it holds, failing after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = std::time::Instant::now();
    while !check().await {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Another replica of `app`: a service of its own on the same database.
async fn replica_of(app: &TestApp) -> TestApp {
    TestApp::spawn_with(calops_testkit::app_config(
        &app.database_url,
        None,
        calops::service::ratelimit::policy::Limits::OFF,
    ))
    .await
    .unwrap()
}

/// A verified key is cached for 30 s, yet a revoked key stops working at once (the database
/// notifies every replica) and a key that expires while cached stops at its expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_expired_key_stops_working_at_once() {
    if !have_pg("a_revoked_or_expired_key_stops_working_at_once") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    // A second replica on the same database: its cache must follow the first one's changes.
    let other = replica_of(&app).await;
    let c = Client::new(&app);
    let co = Client::new(&other);
    let t = tenant(&c, "Keys", "UTC", basic_type()).await;
    let db = crate::support::db(&app.database_url).await;
    let key = |days: Option<u32>| {
        let (c, org) = (c.clone(), t.org_id);
        let admin = t.key.clone();
        async move {
            let mut body = json!({"scopes": ["read"]});
            if let Some(d) = days {
                body["daysValid"] = json!(d);
            }
            let k = c
                .create(&format!("/v2/organizations/{org}/api-keys"), &admin, body)
                .await;
            (
                k["id"].as_i64().unwrap(),
                k["apiKey"].as_str().unwrap().to_string(),
            )
        }
    };
    let status = |c: &Client, k: &str| {
        let (c, k) = (c.clone(), k.to_string());
        async move { c.get("/v2/schedules", &k).await.0 }
    };
    // Both replicas have verified (and cached) the key.
    let (id, revoked) = key(None).await;
    assert_eq!(status(&c, &revoked).await, StatusCode::OK);
    assert_eq!(status(&co, &revoked).await, StatusCode::OK);
    db.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    for (name, client) in [("this replica", &c), ("the other replica", &co)] {
        within(
            Duration::from_secs(3),
            &format!("revoked on {name}"),
            || {
                let client = client.clone();
                let k = revoked.clone();
                async move { status(&client, &k).await == StatusCode::UNAUTHORIZED }
            },
        )
        .await;
    }

    // A key that expires in two seconds, cached meanwhile, stops at its expiry.
    let (id, expiring) = key(Some(1)).await;
    db.execute(
        "UPDATE api_keys SET expires_at = now() + interval '2 seconds' WHERE id = $1",
        &[&id],
    )
    .await
    .unwrap();
    within(
        Duration::from_secs(2),
        "the key works until it expires",
        || {
            let (c, k) = (c.clone(), expiring.clone());
            async move { status(&c, &k).await == StatusCode::OK }
        },
    )
    .await;
    within(
        Duration::from_secs(6),
        "the key stops at its expiry",
        || {
            let (c, k) = (c.clone(), expiring.clone());
            async move { status(&c, &k).await == StatusCode::UNAUTHORIZED }
        },
    )
    .await;
    // The organization's own key is untouched by all this.
    assert_eq!(status(&c, &t.key).await, StatusCode::OK);
    other.running.shutdown().await.unwrap();
    app.running.shutdown().await.unwrap();
}

/// Inputs that look valid but reach past what the service can represent get a 400 naming the
/// field, never a panic; an organization and its first key are created together or not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_times_and_huge_validities_are_refused_not_panicked() {
    if !have_pg("far_future_times_and_huge_validities_are_refused_not_panicked") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Edges", "UTC", basic_type()).await;
    let far = "9999-12-30T21:00:00Z";
    let attendee = json!({"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"});
    let booked = c
        .create(
            "/v2/bookings",
            &t.key,
            json!({"start": "2031-03-03T09:00:00Z", "eventTypeId": t.event_type_id, "attendee": attendee}),
        )
        .await;
    let uid = booked["uid"].as_str().unwrap();
    let hook = c
        .create(
            "/v2/webhooks",
            &t.key,
            json!({"subscriberUrl": "https://hooks.example.com/x", "triggers": ["BOOKING_CREATED"]}),
        )
        .await;
    let cases: Vec<(Method, String, Option<Value>, &str)> = vec![
        (
            Method::POST,
            "/v2/bookings".into(),
            Some(json!({"start": far, "eventTypeId": t.event_type_id, "attendee": attendee})),
            "start",
        ),
        (
            Method::POST,
            "/v2/slots/reservations".into(),
            Some(json!({"slotStart": far, "eventTypeId": t.event_type_id})),
            "slotStart",
        ),
        (
            Method::POST,
            format!("/v2/bookings/{uid}/reschedule"),
            Some(json!({"start": far})),
            "start",
        ),
        (
            Method::POST,
            "/v2/bookings/composite".into(),
            Some(
                json!({"segments": [{"eventTypeId": t.event_type_id, "start": far}], "attendee": attendee}),
            ),
            "segments[0].start",
        ),
        (
            Method::GET,
            format!(
                "/v2/slots?eventTypeId={}&start=9999-12-30&end=9999-12-31",
                t.event_type_id
            ),
            None,
            "start",
        ),
        (
            Method::GET,
            "/v2/bookings?afterStart=9999-12-31T23:59:00Z".into(),
            None,
            "afterStart",
        ),
        (
            Method::POST,
            format!("/v2/webhooks/{}/replay", hook["id"]),
            Some(json!({"from": "2031-01-01T00:00:00Z", "to": far})),
            "to",
        ),
        (
            Method::POST,
            format!("/v2/organizations/{}/api-keys", t.org_id),
            Some(json!({"scopes": ["read"], "daysValid": 3_000_000})),
            "daysValid",
        ),
        (
            Method::POST,
            "/v2/organizations".into(),
            Some(json!({"name": "Forever", "apiKeyDaysValid": 3_000_000})),
            "apiKeyDaysValid",
        ),
    ];
    for (method, path, body, field) in cases {
        let token = if path == "/v2/organizations" {
            BOOTSTRAP_TOKEN
        } else {
            &t.key
        };
        let (s, v) = c.call(method.clone(), &path, Some(token), body).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::BAD_REQUEST, "validation_error"),
            "{method} {path}: {v}"
        );
        let fields: Vec<&str> = v["error"]["details"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{method} {path}: {v}");
    }
    // Nothing was half-made: the refused organization's slug is free.
    c.create(
        "/v2/organizations",
        BOOTSTRAP_TOKEN,
        json!({"name": "Forever", "apiKeyDaysValid": 36_500}),
    )
    .await;

    // When the key cannot be stored, the organization is not stored either.
    let db = crate::support::db(&app.database_url).await;
    db.batch_execute(
        "CREATE FUNCTION refuse_keys() RETURNS trigger LANGUAGE plpgsql AS $f$
         BEGIN RAISE EXCEPTION 'refused by the test'; END $f$;
         CREATE TRIGGER refuse_keys BEFORE INSERT ON api_keys
           FOR EACH ROW EXECUTE FUNCTION refuse_keys();",
    )
    .await
    .unwrap();
    let (s, v) = c
        .call(
            Method::POST,
            "/v2/organizations",
            Some(BOOTSTRAP_TOKEN),
            Some(json!({"name": "Half", "slug": "half"})),
        )
        .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM organizations WHERE slug = 'half'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "an organization without its key was left behind");
    db.batch_execute("DROP TRIGGER refuse_keys ON api_keys")
        .await
        .unwrap();
    c.create(
        "/v2/organizations",
        BOOTSTRAP_TOKEN,
        json!({"name": "Half", "slug": "half"}),
    )
    .await;
    // And the service kept serving throughout.
    let (s, _) = c.call(Method::GET, "/health", None, None).await;
    assert_eq!(s, StatusCode::OK);
    app.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_when_replicas_start_together() {
    if !have_pg("migrations_run_once_when_replicas_start_together") {
        return;
    }
    let url = fresh_database().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = calops::service::store::Store::new(&url, 2).unwrap();
            store.migrate().await.map_err(|e| e.to_string())
        }));
    }
    let mut applied = Vec::new();
    for t in tasks {
        applied.push(t.await.unwrap().unwrap());
    }
    assert_eq!(
        applied.iter().filter(|a| !a.is_empty()).count(),
        1,
        "{applied:?}"
    );
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let n: i64 = client
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        n as usize,
        calops::service::store::migrations::MIGRATIONS.len()
    );
    let ext: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'btree_gist'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        ext, 1,
        "btree_gist is available on this machine and must be created"
    );
}

/// The real binary: configuration problems all at once; SO_REUSEPORT lets two instances share
/// a port; SIGTERM drains and exits 0; e-mail addresses never reach the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calops_serve_process_lifecycle() {
    if !have_pg("calops_serve_process_lifecycle") {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_calops");
    let out = std::process::Command::new(bin)
        .args([
            "serve",
            "--listen",
            "nonsense",
            "--redis-url",
            "http://x",
            "--admin-token-ref",
            "plain-token-value",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "4 problems",
        "--listen",
        "DATABASE_URL",
        "REDIS_URL",
        "CALOPS_ADMIN_TOKEN_REF",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert!(!err.contains("plain-token-value"), "{err}");

    let db = fresh_database().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spawn = || {
        std::process::Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--reuse-port",
                "--admin-token-ref",
                "env:BOOT_TOKEN",
            ])
            .env("DATABASE_URL", &db)
            .env("BOOT_TOKEN", BOOTSTRAP_TOKEN)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Both start together (migrations under the advisory lock) on one port.
    let mut children = Vec::new();
    for _ in 0..2 {
        let mut child = spawn();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        children.push((child, log, reader));
    }
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{port}/health");
    let mut up = false;
    for _ in 0..400 {
        let both_listening = children
            .iter()
            .all(|(_, log, _)| log.lock().unwrap().contains("\"message\":\"listening\""));
        let healthy = http
            .get(&health)
            .send()
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false);
        if both_listening && healthy {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "calops serve did not become healthy");
    let r = http
        .post(format!("http://127.0.0.1:{port}/v2/organizations"))
        .bearer_auth(BOOTSTRAP_TOKEN)
        .json(&json!({"name": "Proc", "metadata": {"owner": "ana.maria@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let _ = http
        .get(format!(
            "http://127.0.0.1:{port}/v2/slots?email=bob.smith@example.org&phone=%2B4917012345678"
        ))
        .send()
        .await
        .unwrap();
    for (mut child, log, reader) in children {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within 15 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(status.code(), Some(0));
        reader.join().unwrap();
        let log = log.lock().unwrap().clone();
        assert!(log.contains("SIGTERM: draining"), "{log}");
        assert!(
            !log.contains("bob.smith") && !log.contains("example.org"),
            "unmasked e-mail: {log}"
        );
        assert!(!log.contains("12345678"), "unmasked phone: {log}");
        assert!(!log.contains(BOOTSTRAP_TOKEN));
    }
    assert!(
        http.get(&health).send().await.is_err(),
        "still answering after SIGTERM"
    );
}

/// The harness as the local deploy target uses it: a persistent directory that survives a
/// stop and a start (same password file, same data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_harness_persists_across_restarts() {
    if !have_pg("postgres_harness_persists_across_restarts") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("calops-pgh-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let path = dir.path().join("pg");
    let p2 = path.clone();
    let url = tokio::task::spawn_blocking(move || {
        let mut c = calops::pg::Cluster::init_or_open(&p2, calops::pg::Options::default()).unwrap();
        calops_testkit::pg::remove_when_process_exits(&c, std::process::id()).unwrap();
        c.start().unwrap();
        c.url("postgres")
    })
    .await
    .unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path.join("superuser.password"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let p3 = path.clone();
    let url = tokio::task::spawn_blocking(move || {
        let mut c = calops::pg::Cluster::init_or_open(&p3, calops::pg::Options::default()).unwrap();
        // Adopts the running server, then stops and restarts it.
        c.start().unwrap();
        c.stop().unwrap();
        assert!(c.running_pid().is_none());
        c.start().unwrap();
        c.url("postgres")
    })
    .await
    .unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let v: i32 = client
        .query_one("SELECT v FROM kept", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 7);
    let bad = url
        .replace(":5432", ":1")
        .replacen("calops:", "calops:wrong", 1);
    assert!(
        tokio_postgres::connect(&bad, tokio_postgres::NoTls)
            .await
            .is_err(),
        "password is required"
    );
    let p4 = path.clone();
    tokio::task::spawn_blocking(move || {
        let c = calops::pg::Cluster::init_or_open(&p4, calops::pg::Options::default()).unwrap();
        let data = c.data_dir();
        if nix::unistd::Uid::effective().is_root() {
            // The temporary directory is mode 0700: the server's user cannot reach it, so the
            // data lives under /var/lib/calops-pg with a link here.
            assert!(
                data.starts_with(calops::pg::RELOCATED_ROOT),
                "{}",
                data.display()
            );
            assert!(std::fs::symlink_metadata(p4.join("data"))
                .unwrap()
                .file_type()
                .is_symlink());
        }
        c.remove().unwrap();
        assert!(!data.exists() && !p4.exists());
    })
    .await
    .unwrap();
}

/// One counter or gauge from /metrics.
async fn metric(c: &Client, name: &str) -> u64 {
    let text = c.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// Poll `check` every 20 ms for up to 5 s; how long it took to hold.
async fn eventually<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = std::time::Instant::now();
    while !check().await {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what}: not within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

/// Slot queries are served from memory, and every change reaches the cache: at once when this
/// replica made it, through PostgreSQL's notifications when another replica (or plain SQL) did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_cache_follows_every_replicas_writes() {
    if !have_pg("slot_cache_follows_every_replicas_writes") {
        return;
    }
    let a = TestApp::spawn().await.unwrap();
    let b = replica_of(&a).await;
    let (ca, cb) = (Client::new(&a), Client::new(&b));
    eventually("replica A's cache is listening", || async {
        metric(&ca, "calops_slot_cache_active").await == 1
    })
    .await;
    let t = tenant(&ca, "Cache", "Europe/Berlin", basic_type()).await;
    let q = format!(
        "/v2/slots?eventTypeId={}&start=2031-03-03&end=2031-03-03&timeZone=Europe/Berlin",
        t.event_type_id
    );
    let at = |hm: &str| format!("2031-03-03T{hm}:00.000+01:00");
    let all: Vec<String> = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
        .iter()
        .map(|s| at(s))
        .collect();
    let slots = |c: &Client| {
        let (c, q, key) = (c.clone(), q.clone(), t.key.clone());
        async move {
            let (s, v) = c.get(&q, &key).await;
            assert_eq!(s, 200, "{v}");
            slot_starts(&v)
        }
    };
    assert_eq!(slots(&ca).await, all);
    // The tenant's set-up notifications may still be on their way (under load they arrive
    // after the first query and drop what it cached): the same query is answered from memory
    // once they are in, and from then on without a miss.
    eventually("the same query again is answered from memory", || async {
        let hits = metric(&ca, "calops_slot_cache_hits_total").await;
        assert_eq!(slots(&ca).await, all);
        metric(&ca, "calops_slot_cache_hits_total").await == hits + 1
    })
    .await;
    let (hits, misses) = (
        metric(&ca, "calops_slot_cache_hits_total").await,
        metric(&ca, "calops_slot_cache_misses_total").await,
    );
    assert_eq!(slots(&ca).await, all);
    assert_eq!(
        metric(&ca, "calops_slot_cache_hits_total").await,
        hits + 1,
        "the same query again is answered from memory"
    );
    assert_eq!(metric(&ca, "calops_slot_cache_misses_total").await, misses);

    // Booked through replica B: A learns of it from the notification.
    let book = |c: &Client, start: &str| {
        let (c, key, et) = (c.clone(), t.key.clone(), t.event_type_id);
        let start = start.to_string();
        async move {
            c.create(
                "/v2/bookings",
                &key,
                json!({"start": start, "eventTypeId": et,
                       "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}}),
            )
            .await
        }
    };
    let booked = book(&cb, "2031-03-03T08:00:00Z").await;
    let took = eventually("replica A drops 09:00 booked on replica B", || async {
        !slots(&ca).await.contains(&at("09:00"))
    })
    .await;
    println!("another replica's booking reached this replica's cache in {took:?}");
    assert_eq!(slots(&ca).await, all[1..]);

    // Cancelled with plain SQL: the trigger's notification brings 09:00 back.
    let (db, conn) = tokio_postgres::connect(&a.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let uid: uuid::Uuid = booked["uid"].as_str().unwrap().parse().unwrap();
    db.execute(
        "UPDATE bookings SET status = 'cancelled' WHERE uid = $1",
        &[&uid],
    )
    .await
    .unwrap();
    eventually(
        "replica A shows 09:00 again after a cancel in SQL",
        || async { slots(&ca).await.contains(&at("09:00")) },
    )
    .await;

    // Hours changed through replica B: A's cached event type and schedule are dropped.
    let (s, v) = cb
        .call(
            Method::PATCH,
            &format!("/v2/schedules/{}", t.schedule_id),
            Some(&t.key),
            Some(json!({"availability": [{"days": ["Monday"], "startTime": "10:00", "endTime": "12:00"}]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    eventually("replica A uses the new hours", || async {
        slots(&ca).await == all[2..]
    })
    .await;

    // This replica's own writes show at once, with no wait for the notification.
    for _ in 0..5 {
        assert_eq!(slots(&ca).await, all[2..], "warm the cache");
        let held = ca
            .create(
                "/v2/slots/reservations",
                &t.key,
                json!({"eventTypeId": t.event_type_id, "slotStart": "2031-03-03T09:00:00Z"}),
            )
            .await;
        assert!(
            !slots(&ca).await.contains(&at("10:00")),
            "a hold made here shows at once"
        );
        let (s, _) = ca
            .call(
                Method::DELETE,
                &format!(
                    "/v2/slots/reservations/{}",
                    held["reservationUid"].as_str().unwrap()
                ),
                Some(&t.key),
                None,
            )
            .await;
        assert!(s.is_success());
        assert!(
            slots(&ca).await.contains(&at("10:00")),
            "a hold released here shows at once"
        );
    }
    let booked = book(&ca, "2031-03-03T10:00:00Z").await;
    assert!(!slots(&ca).await.contains(&at("11:00")));
    let (s, v) = ca
        .post(
            &format!("/v2/bookings/{}/cancel", booked["uid"].as_str().unwrap()),
            &t.key,
            json!({}),
        )
        .await;
    assert!(s.is_success(), "{v}");
    assert!(slots(&ca).await.contains(&at("11:00")));

    // A store's own writes drop what they change from its cache, notifications or not: this
    // store has its cache switched on by hand and no LISTEN connection at all.
    use calops::service::store::{
        bookings::BookOutcome, bookings::NewBooking, SchedulePatch, Store,
    };
    let store = Store::new(&a.database_url, 2).unwrap();
    store.cache().set_active(true);
    let ts = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let (from, to) = (ts("2031-03-03T00:00:00Z"), ts("2031-03-04T00:00:00Z"));
    let context = || async {
        store
            .slot_context(t.org_id, t.event_type_id, from, to)
            .await
            .unwrap()
            .unwrap()
    };
    let busy = || async { context().await.busy.len() };
    assert_eq!(busy().await, 0);
    let hits = store.cache().stats().hits;
    assert_eq!(busy().await, 0);
    assert_eq!(store.cache().stats().hits, hits + 1, "served from memory");
    let (start, end) = (ts("2031-03-03T10:00:00Z"), ts("2031-03-03T10:30:00Z"));
    let hold = store
        .create_reservation(t.org_id, t.event_type_id, start, end, 300, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(busy().await, 1, "a hold");
    assert!(store.delete_reservation(t.org_id, hold.uid).await.unwrap());
    assert_eq!(busy().await, 0, "a released hold");
    let nb = NewBooking {
        org_id: t.org_id,
        event_type_id: t.event_type_id,
        start,
        end,
        attendee: json!({"name": "Bo", "email": "bo@example.com", "timeZone": "UTC"}),
        guests: json!([]),
        metadata: json!({}),
        reservation_uid: None,
        location: None,
        booking_fields_responses: json!({}),
    };
    let BookOutcome::Created(booked) = store
        .create_booking(&nb, None, |_| json!({}))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    assert_eq!(busy().await, 1, "a booking");
    let moved = store
        .reschedule_booking(
            t.org_id,
            booked.uid,
            &calops::service::store::bookings::Reschedule {
                start: ts("2031-03-03T10:30:00Z"),
                end: ts("2031-03-03T11:00:00Z"),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        context().await.busy[0].start,
        moved.start,
        "a rescheduled booking"
    );
    store
        .cancel_booking(t.org_id, moved.uid, None)
        .await
        .unwrap();
    assert_eq!(busy().await, 0, "a cancelled booking");
    let tz = || async { context().await.schedule.unwrap().time_zone };
    assert_eq!(tz().await, "Europe/Berlin");
    store
        .update_schedule(
            t.org_id,
            t.schedule_id,
            &SchedulePatch {
                name: None,
                time_zone: Some("Asia/Tokyo".into()),
                availability: None,
                overrides: None,
                is_default: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(tz().await, "Asia/Tokyo", "changed hours");
    let berlin = SchedulePatch {
        time_zone: Some("Europe/Berlin".into()),
        ..Default::default()
    };
    store
        .update_schedule(t.org_id, t.schedule_id, &berlin)
        .await
        .unwrap();
    assert_eq!(tz().await, "Europe/Berlin");

    // Off, the service reads the database every time and says so.
    let off = TestApp::spawn_with(calops::service::config::Config {
        slot_cache: false,
        ..calops_testkit::app_config(
            &a.database_url,
            None,
            calops::service::ratelimit::policy::Limits::OFF,
        )
    })
    .await
    .unwrap();
    let co = Client::new(&off);
    assert_eq!(slots(&co).await, all[2..]);
    assert_eq!(slots(&co).await, all[2..]);
    assert_eq!(metric(&co, "calops_slot_cache_active").await, 0);
    assert_eq!(metric(&co, "calops_slot_cache_hits_total").await, 0);
    for app in [a, b, off] {
        app.running.shutdown().await.unwrap();
    }
}
