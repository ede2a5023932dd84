//! Bookings and slot holds against a real PostgreSQL cluster (one per test run, a database per
//! test) over real HTTP on 127.0.0.1: every endpoint's happy path and bad input, idempotency,
//! atomic reschedule, reservations, and concurrent clients racing for one slot.

use crate::support::api::{code, Client};
use crate::support::{db, ALL_DAYS};
use calops_testkit::{have_pg, TestApp, BOOTSTRAP_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

struct Tenant {
    org_id: i64,
    key: String,
    user_id: i64,
    event_type_id: i64,
}

/// An organization with a host working 09:00-12:00 UTC every day and one event type.
async fn tenant(c: &Client, name: &str, start: &str, end: &str, event_type: Value) -> Tenant {
    let org = c
        .create("/v2/organizations", BOOTSTRAP_TOKEN, json!({"name": name}))
        .await;
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &key,
            json!({"name": "Host", "email": format!("host@{}.example.com", org["slug"].as_str().unwrap()), "timeZone": "UTC"}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.create(
        "/v2/schedules",
        &key,
        json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
               "availability": [{"days": ALL_DAYS, "startTime": start, "endTime": end}]}),
    )
    .await;
    let event_type_id = event_type_of(c, &key, user_id, event_type).await;
    Tenant {
        org_id,
        key,
        user_id,
        event_type_id,
    }
}

async fn event_type_of(c: &Client, key: &str, user_id: i64, mut et: Value) -> i64 {
    et["userId"] = json!(user_id);
    c.create("/v2/event-types", key, et).await["id"]
        .as_i64()
        .unwrap()
}

fn call_type() -> Value {
    json!({"title": "Call", "slug": "call", "lengthInMinutes": 30})
}

fn booking(et: i64, start: &str) -> Value {
    json!({"start": start, "eventTypeId": et,
           "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin"}})
}

async fn slot_starts(c: &Client, t: &Tenant, et: i64, day: &str) -> Vec<String> {
    let (s, v) = c
        .get(
            &format!("/v2/slots?eventTypeId={et}&start={day}&end={day}"),
            &t.key,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v["data"][day]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["start"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Pairs of accepted bookings of one host whose ranges (with their buffers) overlap.
async fn overlapping_pairs(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.host_user_id = b.host_user_id
           AND a.id < b.id
           AND tstzrange(a.start_at - a.before_buffer_minutes * interval '1 minute',
                         a.end_at + a.after_buffer_minutes * interval '1 minute')
            && tstzrange(b.start_at - b.before_buffer_minutes * interval '1 minute',
                         b.end_at + b.after_buffer_minutes * interval '1 minute')
         WHERE a.status = 'accepted' AND b.status = 'accepted'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_endpoints_happy_paths_and_bad_input() {
    if !have_pg("bookings_endpoints_happy_paths_and_bad_input") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Acme", "09:00", "12:00", call_type()).await;
    let other = tenant(&c, "Other", "09:00", "12:00", call_type()).await;
    let day = "2031-03-03";
    assert!(slot_starts(&c, &t, t.event_type_id, day)
        .await
        .contains(&"2031-03-03T09:00:00.000Z".to_string()));

    // Create: Cal.com v2 shape, and the slot leaves /v2/slots.
    let mut body = booking(t.event_type_id, "2031-03-03T10:00:00+01:00");
    body["guests"] = json!(["bob@example.com"]);
    body["lengthInMinutes"] = json!(30);
    body["metadata"] = json!({"crmId": "42"});
    let b = c.create("/v2/bookings", &t.key, body).await;
    let uid = b["uid"].as_str().unwrap().to_string();
    assert_eq!(b["status"], "accepted");
    assert_eq!(b["start"], "2031-03-03T09:00:00.000Z");
    assert_eq!(b["end"], "2031-03-03T09:30:00.000Z");
    assert_eq!(b["duration"], 30);
    assert_eq!(b["eventTypeId"], t.event_type_id);
    assert_eq!(b["eventType"]["slug"], "call");
    assert_eq!(b["hosts"][0]["id"], t.user_id);
    assert_eq!(b["attendees"][0]["email"], "ann@example.com");
    assert_eq!(b["attendees"][0]["timeZone"], "Europe/Berlin");
    assert_eq!(b["guests"], json!(["bob@example.com"]));
    assert_eq!(b["metadata"]["crmId"], "42");
    let starts = slot_starts(&c, &t, t.event_type_id, day).await;
    assert!(!starts.contains(&"2031-03-03T09:00:00.000Z".to_string()));
    assert!(starts.contains(&"2031-03-03T09:30:00.000Z".to_string()));

    // The same slot again: 409; not a slot at all: 422.
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T09:00:00Z"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_conflict"),
        "{v}"
    );
    for start in [
        "2031-03-03T13:00:00Z",
        "2031-03-03T09:10:00Z",
        "2020-01-06T09:00:00Z",
    ] {
        let (s, v) = c
            .post("/v2/bookings", &t.key, booking(t.event_type_id, start))
            .await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable"),
            "{start}: {v}"
        );
    }

    // Bad input.
    let (s, v) = c.post("/v2/bookings", &t.key, json!({})).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    let (s, v) = c
        .post("/v2/bookings", &t.key, json!({"start": "2031-03-03T09:30:00Z", "eventTypeId": t.event_type_id,
            "attendee": {"name": "", "email": "x", "timeZone": "Nowhere/City"}, "guests": ["nope"]}))
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    assert_eq!(
        v["error"]["details"]["fields"].as_array().unwrap().len(),
        4,
        "{v}"
    );
    let res = c
        .http
        .post(format!("{}/v2/bookings", c.base))
        .bearer_auth(&t.key)
        .header("content-type", "application/json")
        .body("{\"start\":")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(code(&v), "invalid_json");
    let mut wrong_len = booking(t.event_type_id, "2031-03-03T09:30:00Z");
    wrong_len["lengthInMinutes"] = json!(45);
    let (s, v) = c.post("/v2/bookings", &t.key, wrong_len).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "validation_error"),
        "{v}"
    );
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(999_999, "2031-03-03T09:30:00Z"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "event_type_not_found")
    );
    // Another organization's event type is just as unknown.
    let (s, _) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(other.event_type_id, "2031-03-03T09:30:00Z"),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Scopes: a read-only key may read but not book, cancel or reschedule.
    let ro = c
        .create(
            &format!("/v2/organizations/{}/api-keys", t.org_id),
            &t.key,
            json!({"scopes": ["read"]}),
        )
        .await["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, v) = c
        .post(
            "/v2/bookings",
            &ro,
            booking(t.event_type_id, "2031-03-03T09:30:00Z"),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "insufficient_scope"));
    for action in ["cancel", "reschedule"] {
        let (s, _) = c
            .post(
                &format!("/v2/bookings/{uid}/{action}"),
                &ro,
                json!({"start": "2031-03-03T11:00:00Z"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{action}");
    }
    let (s, v) = c.get(&format!("/v2/bookings/{uid}"), &ro).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"]["uid"], uid.as_str());

    // Cross-organization access is 404, as are unknown and malformed uids.
    for path in [
        format!("/v2/bookings/{uid}"),
        format!("/v2/bookings/{}", uuid::Uuid::new_v4()),
        "/v2/bookings/not-a-uid".to_string(),
    ] {
        let (s, v) = c.get(&path, &other.key).await;
        assert_eq!(
            (s, code(&v)),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    let (s, _) = c
        .post(&format!("/v2/bookings/{uid}/cancel"), &other.key, json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = c
        .post(
            &format!("/v2/bookings/{uid}/reschedule"),
            &other.key,
            json!({"start": "2031-03-03T11:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = c.get("/v2/bookings", &other.key).await;
    assert_eq!(s, 200);
    assert_eq!(v["data"], json!([]));

    // More bookings for the list.
    let b2 = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-04T09:00:00Z"),
        )
        .await;
    let b3 = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-05T09:00:00Z"),
        )
        .await;

    // Cancel: the slot comes back; a second cancel is 409.
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{}/cancel", b2["uid"].as_str().unwrap()),
            &t.key,
            json!({"cancellationReason": "conflict"}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["data"]["status"], "cancelled");
    assert_eq!(v["data"]["cancellationReason"], "conflict");
    assert!(slot_starts(&c, &t, t.event_type_id, "2031-03-04")
        .await
        .contains(&"2031-03-04T09:00:00.000Z".to_string()));
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{}/cancel", b2["uid"].as_str().unwrap()),
            &t.key,
            json!({}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "booking_not_active"));
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{}/cancel", b3["uid"].as_str().unwrap()),
            &t.key,
            json!({"cancellationReason": 5}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));

    // List: filters and pages.
    let (s, v) = c.get("/v2/bookings", &t.key).await;
    assert_eq!(s, 200);
    assert_eq!(v["pagination"]["totalItems"], 3);
    let (_, v) = c.get("/v2/bookings?status=cancelled", &t.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["uid"], b2["uid"]);
    let (_, v) = c.get("/v2/bookings?status=accepted&take=1", &t.key).await;
    assert_eq!(v["data"][0]["uid"], uid.as_str());
    assert_eq!(v["pagination"]["hasNextPage"], true);
    let (_, v) = c
        .get("/v2/bookings?status=accepted&take=1&skip=1", &t.key)
        .await;
    assert_eq!(v["data"][0]["uid"], b3["uid"]);
    assert_eq!(v["pagination"]["hasNextPage"], false);
    let (_, v) = c
        .get(
            "/v2/bookings?afterStart=2031-03-04T00:00:00Z&beforeEnd=2031-03-05T00:00:00Z",
            &t.key,
        )
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["data"][0]["uid"], b2["uid"]);
    let (s, v) = c.get("/v2/bookings?status=pending&take=0", &t.key).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    assert_eq!(v["error"]["details"]["fields"].as_array().unwrap().len(), 2);
    // Cal.com's upcoming and past: active bookings by their end; cancelled ones are neither.
    let (s, v) = c.get("/v2/bookings?status=upcoming", &t.key).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["pagination"]["totalItems"], 2);
    let old = app
        .running
        .state
        .store
        .insert_accepted_booking(
            t.org_id,
            t.event_type_id,
            "2020-01-06T09:00:00Z".parse().unwrap(),
            "2020-01-06T09:30:00Z".parse().unwrap(),
            &json!({"name": "Old", "email": "old@example.com", "timeZone": "UTC"}),
        )
        .await
        .unwrap();
    let (_, v) = c.get("/v2/bookings?status=past", &t.key).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["data"][0]["uid"], old.to_string().as_str());
    let (_, v) = c.get("/v2/bookings?status=upcoming", &t.key).await;
    assert_eq!(v["pagination"]["totalItems"], 2);
    let (_, v) = c.get("/v2/bookings?status=past,cancelled", &t.key).await;
    assert_eq!(v["pagination"]["totalItems"], 2);
    // Cal.com's `recurring`: calops has no recurring bookings, so none.
    let (s, v) = c.get("/v2/bookings?status=recurring", &t.key).await;
    assert_eq!(
        (s, &v["pagination"]["totalItems"]),
        (StatusCode::OK, &json!(0)),
        "{v}"
    );
    let (s, v) = c.get("/v2/bookings?status=someday", &t.key).await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("upcoming"),
        "{v}"
    );

    // Reschedule: a new uid linked both ways; the old one is cancelled; the new time may
    // overlap the old one's.
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{uid}/reschedule"),
            &t.key,
            json!({"start": "2031-03-03T09:30:00Z", "reschedulingReason": "later"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let moved = v["data"].clone();
    assert_ne!(moved["uid"], uid.as_str());
    assert_eq!(moved["rescheduledFromUid"], uid.as_str());
    assert_eq!(moved["start"], "2031-03-03T09:30:00.000Z");
    assert_eq!(moved["attendees"][0]["email"], "ann@example.com");
    assert_eq!(moved["metadata"]["crmId"], "42");
    let (_, old) = c.get(&format!("/v2/bookings/{uid}"), &t.key).await;
    assert_eq!(old["data"]["status"], "cancelled");
    assert_eq!(old["data"]["rescheduledToUid"], moved["uid"]);
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{uid}/reschedule"),
            &t.key,
            json!({"start": "2031-03-03T10:00:00Z"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "booking_not_active"));

    // Reschedule onto a taken time: 409 and nothing changes (one transaction).
    let taken = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T11:00:00Z"),
        )
        .await;
    let db = db(&app.database_url).await;
    let before: Vec<(String, String)> = db
        .query("SELECT uid::text, status FROM bookings ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let moved_uid = moved["uid"].as_str().unwrap();
    let (s, v) = c
        .post(
            &format!("/v2/bookings/{moved_uid}/reschedule"),
            &t.key,
            json!({"start": "2031-03-03T11:00:00Z"}),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_conflict"),
        "{v}"
    );
    let after: Vec<(String, String)> = db
        .query("SELECT uid::text, status FROM bookings ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(before, after);
    let (_, v) = c.get(&format!("/v2/bookings/{moved_uid}"), &t.key).await;
    assert_eq!(v["data"]["status"], "accepted");
    assert_eq!(v["data"]["rescheduledToUid"], Value::Null);
    // Not a slot, and bad input.
    for (body, want) in [
        (
            json!({"start": "2031-03-03T15:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"start": "soon"}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
    ] {
        let (s, v) = c
            .post(
                &format!("/v2/bookings/{moved_uid}/reschedule"),
                &t.key,
                body.clone(),
            )
            .await;
        assert_eq!(s, want, "{body}: {v}");
    }
    assert_eq!(overlapping_pairs(&db).await, 0);
    assert_eq!(taken["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_return_the_first_result() {
    if !have_pg("idempotency_keys_return_the_first_result") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Idem", "09:00", "12:00", call_type()).await;
    let other = tenant(&c, "Idem Two", "09:00", "12:00", call_type()).await;
    let body = booking(t.event_type_id, "2031-03-03T09:00:00Z");
    let (s1, v1, h1) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(body.clone()),
            Some("k-1"),
        )
        .await;
    assert_eq!(s1, StatusCode::CREATED, "{v1}");
    assert!(h1.get("idempotent-replayed").is_none());
    let (s2, v2, h2) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(body.clone()),
            Some("k-1"),
        )
        .await;
    assert_eq!(s2, StatusCode::CREATED, "{v2}");
    assert_eq!(v1, v2);
    assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
    // The same key with another request is refused.
    let (s, v, _) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, "2031-03-03T10:00:00Z")),
            Some("k-1"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
    );
    // Keys are per organization.
    let (s, v, _) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &other.key,
            Some(booking(other.event_type_id, "2031-03-03T09:00:00Z")),
            Some("k-1"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_ne!(v["data"]["uid"], v1["data"]["uid"]);
    // Concurrent retries with one key: one booking, every answer the same.
    let body = booking(t.event_type_id, "2031-03-03T11:00:00Z");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, key, body) = (c.clone(), t.key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            c.send(Method::POST, "/v2/bookings", &key, Some(body), Some("k-2"))
                .await
        }));
    }
    let mut uids = std::collections::BTreeSet::new();
    for task in tasks {
        let (s, v, _) = task.await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
        uids.insert(v["data"]["uid"].as_str().unwrap().to_string());
    }
    assert_eq!(uids.len(), 1);
    let db = db(&app.database_url).await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE start_at = '2031-03-03T11:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // A failed attempt stores nothing: the key can be used again.
    let (s, _, _) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, "2031-03-03T11:00:00Z")),
            Some("k-3"),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _, _) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(booking(t.event_type_id, "2031-03-03T11:30:00Z")),
            Some("k-3"),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let long = "x".repeat(300);
    let (s, v, _) = c
        .send(
            Method::POST,
            "/v2/bookings",
            &t.key,
            Some(body),
            Some(&long),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_hold_slots_in_the_database() {
    if !have_pg("reservations_hold_slots_in_the_database") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Hold", "09:00", "12:00", call_type()).await;
    let other = tenant(&c, "Hold Two", "09:00", "12:00", call_type()).await;
    let day = "2031-03-03";
    let hold = |start: &str| json!({"eventTypeId": t.event_type_id, "slotStart": start});

    let r = c
        .create(
            "/v2/slots/reservations",
            &t.key,
            hold("2031-03-03T09:00:00Z"),
        )
        .await;
    let ruid = r["reservationUid"].as_str().unwrap().to_string();
    assert_eq!(r["slotEnd"], "2031-03-03T09:30:00.000Z");
    assert_eq!(r["reservationDuration"], 5);
    let until: jiff::Timestamp = r["reservationUntil"].as_str().unwrap().parse().unwrap();
    let left = until.as_second() - jiff::Timestamp::now().as_second();
    assert!((240..=301).contains(&left), "{left}");
    assert!(!slot_starts(&c, &t, t.event_type_id, day)
        .await
        .contains(&"2031-03-03T09:00:00.000Z".to_string()));

    // Nobody else gets it: another hold is 422, a booking without the hold is 409.
    let (s, v) = c
        .post(
            "/v2/slots/reservations",
            &t.key,
            hold("2031-03-03T09:00:00Z"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable")
    );
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-03-03T09:00:00Z"),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::CONFLICT, "booking_conflict"));
    // The database refuses it too, whatever path the insert takes.
    let store = &app.running.state.store;
    let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
    let err = store
        .insert_accepted_booking(
            t.org_id,
            t.event_type_id,
            at("2031-03-03T09:15:00Z"),
            at("2031-03-03T09:45:00Z"),
            &json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, calops::service::store::StoreError::BookingConflict(_)),
        "{err}"
    );
    // A hold of another slot does not let one book this one.
    let r2 = c
        .create(
            "/v2/slots/reservations",
            &t.key,
            hold("2031-03-03T10:00:00Z"),
        )
        .await;
    let mut wrong = booking(t.event_type_id, "2031-03-03T09:00:00Z");
    wrong["reservationUid"] = r2["reservationUid"].clone();
    let (s, v) = c.post("/v2/bookings", &t.key, wrong).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // Other organizations cannot use or release it.
    let (s, _, _) = c
        .send(
            Method::DELETE,
            &format!("/v2/slots/reservations/{ruid}"),
            &other.key,
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The booking that presents the hold gets it, and the hold is used up.
    let mut mine = booking(t.event_type_id, "2031-03-03T09:00:00Z");
    mine["reservationUid"] = json!(ruid);
    let b = c.create("/v2/bookings", &t.key, mine.clone()).await;
    assert_eq!(b["start"], "2031-03-03T09:00:00.000Z");
    let (s, v) = c.post("/v2/bookings", &t.key, mine).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    // A booked slot cannot be held.
    let (s, _) = c
        .post(
            "/v2/slots/reservations",
            &t.key,
            hold("2031-03-03T09:00:00Z"),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // An expired hold holds nothing.
    let db = db(&app.database_url).await;
    db.execute(
        "UPDATE slot_reservations SET expires_at = now() - interval '1 second' WHERE uid = $1",
        &[&uuid::Uuid::parse_str(r2["reservationUid"].as_str().unwrap()).unwrap()],
    )
    .await
    .unwrap();
    assert!(slot_starts(&c, &t, t.event_type_id, day)
        .await
        .contains(&"2031-03-03T10:00:00.000Z".to_string()));
    c.create(
        "/v2/bookings",
        &t.key,
        booking(t.event_type_id, "2031-03-03T10:00:00Z"),
    )
    .await;

    // Release early.
    let r3 = c
        .create(
            "/v2/slots/reservations",
            &t.key,
            json!({"eventTypeId": t.event_type_id,
            "slotStart": "2031-03-03T11:00:00Z", "reservationDuration": 10, "slotDuration": 30}),
        )
        .await;
    assert_eq!(r3["reservationDuration"], 10);
    let path = format!(
        "/v2/slots/reservations/{}",
        r3["reservationUid"].as_str().unwrap()
    );
    let (s, _, _) = c.send(Method::DELETE, &path, &t.key, None, None).await;
    assert_eq!(s, 200);
    let (s, _, _) = c.send(Method::DELETE, &path, &t.key, None, None).await;
    assert_eq!(s, 404);
    c.create(
        "/v2/bookings",
        &t.key,
        booking(t.event_type_id, "2031-03-03T11:00:00Z"),
    )
    .await;

    // Bad input.
    for (body, want) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (
            json!({"eventTypeId": t.event_type_id, "slotStart": "2031-03-03T11:30:00Z", "reservationDuration": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"eventTypeId": t.event_type_id, "slotStart": "noon"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"eventTypeId": t.event_type_id, "slotStart": "2031-03-03T11:30:00Z", "slotDuration": 60}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"eventTypeId": 999_999, "slotStart": "2031-03-03T11:30:00Z"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"eventTypeId": other.event_type_id, "slotStart": "2031-03-03T11:30:00Z"}),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({"eventTypeId": t.event_type_id, "slotStart": "2031-03-03T15:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (s, v) = c.post("/v2/slots/reservations", &t.key, body.clone()).await;
        assert_eq!(s, want, "{body}: {v}");
    }
    let mut unknown = booking(t.event_type_id, "2031-03-03T11:30:00Z");
    unknown["reservationUid"] = json!(uuid::Uuid::new_v4());
    let (s, v) = c.post("/v2/bookings", &t.key, unknown).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "reservation_invalid")
    );
    assert_eq!(overlapping_pairs(&db).await, 0);
}

/// `count` half-hour starts from `first` on, 47 a day (hours 00:00-23:59 end at midnight and hold
/// 48; the last half hour of each day is left unused).
fn starts(first: &str, count: usize) -> Vec<String> {
    let t0: jiff::Timestamp = first.parse().unwrap();
    (0..count as i64)
        .map(|i| {
            let m = (i / 47) * 24 * 60 + (i % 47) * 30;
            (t0 + jiff::SignedDuration::from_mins(m)).to_string()
        })
        .collect()
}

/// Rounds of the race (default 200; `CALOPS_RACE_ROUNDS` changes it).
fn race_rounds() -> usize {
    std::env::var("CALOPS_RACE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_race_for_one_slot_and_exactly_one_wins() {
    if !have_pg("sixty_four_clients_race_for_one_slot_and_exactly_one_wins") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    // Hours round the clock minus a minute, 30-minute meetings: 47 slots a day.
    let t = tenant(&c, "Race", "00:00", "23:59", call_type()).await;
    let rounds = race_rounds();
    let slots = starts("2031-03-03T00:00:00Z", rounds);
    let key = Arc::new(t.key.clone());
    let started = Instant::now();
    for (round, start) in slots.iter().enumerate() {
        let mut tasks = Vec::with_capacity(64);
        for i in 0..64 {
            let (c, key) = (c.clone(), key.clone());
            let mut body = booking(t.event_type_id, start);
            body["attendee"]["name"] = json!(format!("Client {i}"));
            tasks.push(tokio::spawn(async move {
                c.post("/v2/bookings", &key, body).await
            }));
        }
        let (mut created, mut conflicts) = (0, 0);
        for task in tasks {
            let (s, v) = task.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(code(&v), "booking_conflict");
                    conflicts += 1
                }
                other => panic!("round {round}: unexpected {other}: {v}"),
            }
        }
        assert_eq!((created, conflicts), (1, 63), "round {round} at {start}");
    }
    eprintln!(
        "race: {rounds} rounds x 64 clients in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let db = db(&app.database_url).await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE status = 'accepted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, rounds as i64);
    assert_eq!(overlapping_pairs(&db).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_bookings_of_different_lengths_and_buffers_never_coexist() {
    if !have_pg("overlapping_bookings_of_different_lengths_and_buffers_never_coexist") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(
        &c,
        "Mixed",
        "08:00",
        "18:00",
        json!({"title": "Short", "slug": "short", "lengthInMinutes": 15, "beforeEventBuffer": 5, "afterEventBuffer": 10}),
    )
    .await;
    let long = event_type_of(
        &c,
        &t.key,
        t.user_id,
        json!({"title": "Long", "slug": "long", "lengthInMinutes": 60, "afterEventBuffer": 15}),
    )
    .await;
    let mid = event_type_of(
        &c,
        &t.key,
        t.user_id,
        json!({"title": "Mid", "slug": "mid", "lengthInMinutes": 30, "beforeEventBuffer": 20}),
    )
    .await;
    let types = [(t.event_type_id, 15), (long, 60), (mid, 30)];
    let key = Arc::new(t.key.clone());
    let db = db(&app.database_url).await;
    let mut total_created = 0i64;
    for day in 0..8 {
        // 64 clients, each a type and a start in one busy hour of that day.
        let base: jiff::Timestamp = "2031-03-03T10:00:00Z".parse().unwrap();
        let base = base + jiff::SignedDuration::from_hours(24 * day);
        let mut tasks = Vec::new();
        for i in 0..64usize {
            let (et, len) = types[i % 3];
            let offset = (i as i64 * 7) % 4 * len; // four grid starts per type
            let start = (base + jiff::SignedDuration::from_mins(offset)).to_string();
            let (c, key) = (c.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                c.post("/v2/bookings", &key, booking(et, &start)).await
            }));
        }
        let mut created = 0;
        for task in tasks {
            let (s, v) = task.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => assert_eq!(code(&v), "booking_conflict"),
                other => panic!("day {day}: unexpected {other}: {v}"),
            }
        }
        assert!(created >= 1, "day {day}: nobody got a booking");
        total_created += created;
        assert_eq!(overlapping_pairs(&db).await, 0, "day {day}");
    }
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE status = 'accepted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, total_created);
}

/// Migration 2 on a database that already has part 1's bookings: their occupied ranges are
/// filled in and they hold their time; overlapping old data stops it with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_two_keeps_existing_bookings_and_refuses_overlapping_ones() {
    if !have_pg("migration_two_keeps_existing_bookings_and_refuses_overlapping_ones") {
        return;
    }
    use calops::service::store::{migrations::MIGRATIONS, Store};
    let v1 = |url: String| async move {
        let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c.batch_execute(MIGRATIONS[0].2).await.unwrap();
        c.batch_execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_migrations (version, name) VALUES (1, 'initial schema');
             INSERT INTO organizations (name, slug) VALUES ('Old', 'old');
             INSERT INTO users (org_id, name, email, time_zone) VALUES (1, 'H', 'h@example.com', 'UTC');
             INSERT INTO event_types (org_id, user_id, title, slug, length_minutes, before_event_buffer, after_event_buffer)
               VALUES (1, 1, 'Call', 'call', 30, 10, 5);
             INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at,
               before_buffer_minutes, after_buffer_minutes)
               VALUES (gen_random_uuid(), 1, 1, 1, '2031-03-03T09:00Z', '2031-03-03T09:30Z', 10, 5),
                      (gen_random_uuid(), 1, 1, 1, '2031-03-03T10:00Z', '2031-03-03T10:30Z', 10, 5);",
        )
        .await
        .unwrap();
        c
    };
    let url = calops_testkit::fresh_database().await.unwrap();
    let c = v1(url.clone()).await;
    let store = Store::new(&url, 2).unwrap();
    // 2 and every later migration (their numbers may have gaps).
    let later: Vec<i32> = MIGRATIONS[1..].iter().map(|m| m.0).collect();
    assert_eq!(store.migrate().await.unwrap(), later);
    let row = c
        .query_one(
            "SELECT count(*), min(lower(occupied))::text FROM bookings b
             JOIN occupancy o ON o.booking_id = b.id",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 2);
    assert_eq!(row.get::<_, String>(1), "2031-03-03 08:50:00+00");
    // The old bookings hold their time: 10:30 + 5 after > 10:25 - 10 before.
    let err = store
        .insert_accepted_booking(
            1,
            1,
            "2031-03-03T10:35:00Z".parse().unwrap(),
            "2031-03-03T11:05:00Z".parse().unwrap(),
            &json!({}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, calops::service::store::StoreError::BookingConflict(_)),
        "{err}"
    );

    // Overlapping old bookings: the migration names them and changes nothing.
    let url = calops_testkit::fresh_database().await.unwrap();
    let c = v1(url.clone()).await;
    c.batch_execute(
        "INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at)
           VALUES ('00000000-0000-0000-0000-00000000000a', 1, 1, 1, '2031-03-03T09:15Z', '2031-03-03T09:45Z')",
    )
    .await
    .unwrap();
    let store = Store::new(&url, 2).unwrap();
    let err = format!("{:?}", store.migrate().await.unwrap_err());
    assert!(err.contains("overlap"), "{err}");
    assert!(
        err.contains("00000000-0000-0000-0000-00000000000a"),
        "{err}"
    );
    let v: Vec<i32> = c
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(v, [1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bookings_never_exceed_the_per_day_limit_of_the_hosts_local_date() {
    if !have_pg("concurrent_bookings_never_exceed_the_per_day_limit_of_the_hosts_local_date") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Limited", "00:00", "23:59", call_type()).await;
    // Hours in Berlin, so that a local date straddles two UTC dates (UTC+2 in June).
    let berlin = c
        .create(
            "/v2/schedules",
            &t.key,
            json!({"userId": t.user_id, "name": "Berlin", "timeZone": "Europe/Berlin",
                   "availability": [{"days": ALL_DAYS, "startTime": "00:00", "endTime": "23:59"}]}),
        )
        .await;
    let et = event_type_of(
        &c,
        &t.key,
        t.user_id,
        json!({"title": "Limited", "slug": "limited", "lengthInMinutes": 30,
               "scheduleId": berlin["id"], "bookingLimitsCount": {"day": 2}}),
    )
    .await;
    let key = Arc::new(t.key.clone());
    let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    let days = ["2031-06-02", "2031-06-03", "2031-06-04", "2031-06-05"];
    for day in days {
        // 16 distinct slots from 00:00 to 07:30 Berlin time: the first four are on the
        // previous UTC date.
        let d: jiff::civil::Date = day.parse().unwrap();
        let mut tasks = Vec::new();
        for i in 0..16i64 {
            let start = d.at(0, 0, 0, 0).to_zoned(tz.clone()).unwrap().timestamp()
                + jiff::SignedDuration::from_mins(30 * i);
            let (c, key) = (c.clone(), key.clone());
            let body = booking(et, &start.to_string());
            tasks.push(tokio::spawn(async move {
                c.post("/v2/bookings", &key, body).await
            }));
        }
        let (mut created, mut conflicts) = (0, 0);
        for task in tasks {
            let (s, v) = task.await.unwrap();
            match s {
                StatusCode::CREATED => created += 1,
                StatusCode::CONFLICT => {
                    assert_eq!(code(&v), "booking_conflict", "{v}");
                    conflicts += 1
                }
                other => panic!("{day}: unexpected {other}: {v}"),
            }
        }
        assert_eq!((created, conflicts), (2, 14), "{day}");
    }
    let db = db(&app.database_url).await;
    let rows = db
        .query(
            "SELECT (start_at AT TIME ZONE 'Europe/Berlin')::date::text, count(*) FROM bookings
             WHERE status = 'accepted' AND event_type_id = $1 GROUP BY 1 ORDER BY 1",
            &[&et],
        )
        .await
        .unwrap();
    let per_day: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        per_day,
        days.iter().map(|d| (d.to_string(), 2)).collect::<Vec<_>>()
    );
    // The limit reached, the date offers no more slots; the next date still does.
    assert!(slot_starts(&c, &t, et, "2031-06-02").await.is_empty());
    assert!(!slot_starts(&c, &t, et, "2031-06-06").await.is_empty());
}

/// `calops_bookings_created_total{path="..."}` from /metrics.
async fn booked(c: &Client, path: &str) -> u64 {
    counter(
        c,
        &format!("calops_bookings_created_total{{path=\"{path}\"}}"),
    )
    .await
}

/// Where busy time can only take a slot away by overlapping it, a booking is one statement:
/// what it answers is what was stored (id and times made ahead of the insert), its webhook event
/// and calendar are written with it, an expired hold in the way is cleared, and a taken slot is
/// a 409; an idempotency key is recorded with it. Everything else (holds, grids that busy time
/// can move) takes the general path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_bookings_store_what_they_answer() {
    if !have_pg("direct_bookings_store_what_they_answer") {
        return;
    }
    // Its webhook receiver (127.0.0.1:9) never answers: deliveries wait in the outbox.
    let app = crate::support::app_with_loopback_webhooks().await;
    let c = Client::new(&app);
    let t = tenant(&c, "Direct", "09:00", "17:00", call_type()).await;
    let db = db(&app.database_url).await;
    c.create(
        "/v2/webhooks",
        &t.key,
        json!({"subscriberUrl": "http://127.0.0.1:9/hook", "triggers": ["BOOKING_CREATED"]}),
    )
    .await;

    let made = c
        .create(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-05-05T09:00:00Z"),
        )
        .await;
    assert_eq!(booked(&c, "direct").await, 1);
    assert_eq!(booked(&c, "general").await, 0);
    let uid = made["uid"].as_str().unwrap().to_string();
    let (s, stored) = c.get(&format!("/v2/bookings/{uid}"), &t.key).await;
    assert_eq!(s, 200);
    assert_eq!(stored["data"], made, "the answer is what was stored");
    let row = db
        .query_one(
            "SELECT b.id, b.ical_uid = b.uid, b.occupied = tstzrange(b.start_at, b.end_at),
                    (SELECT count(*) FROM occupancy o WHERE o.booking_id = b.id),
                    (SELECT count(*) FROM ics_pending p WHERE p.ical_uid = b.uid)
                      + (SELECT count(*) FROM webhook_deliveries d WHERE d.booking_uid = b.uid
                           AND d.body::jsonb -> 'payload' ->> 'bookingId' = b.id::text)
             FROM bookings b WHERE b.uid = $1::text::uuid",
            &[&uid],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), made["id"].as_i64().unwrap());
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(2));
    assert_eq!(row.get::<_, i64>(3), 1, "the booking holds its time");
    // The calendar write may already be done (the row gone); the webhook event must be there.
    assert!(
        row.get::<_, i64>(4) >= 1,
        "the webhook event carries the stored id"
    );
    let m = c.metrics().await;
    assert!(
        m.contains("\ncalops_webhook_deliveries_pending 1\n"),
        "the subscriber is unreachable: one delivery waits\n{m}"
    );

    // Taken: 409.
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-05-05T09:00:00Z"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::CONFLICT, "booking_conflict"),
        "{v}"
    );
    // Not on the hours: 422 without touching the database's constraint.
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(t.event_type_id, "2031-05-05T08:00:00Z"),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable"),
        "{v}"
    );

    // A hold that ran out is cleared for the booking.
    db.execute(
        "INSERT INTO slot_reservations (uid, org_id, event_type_id, host_user_id, start_at, end_at,
           occupied, expires_at)
         VALUES (gen_random_uuid(), $1, $2, $3, '2031-05-05T10:00:00Z', '2031-05-05T10:30:00Z',
           tstzrange('2031-05-05T10:00:00Z', '2031-05-05T10:30:00Z'), now() - interval '1 minute')",
        &[&t.org_id, &t.event_type_id, &t.user_id],
    )
    .await
    .unwrap();
    c.create(
        "/v2/bookings",
        &t.key,
        booking(t.event_type_id, "2031-05-05T10:00:00Z"),
    )
    .await;
    assert_eq!(booked(&c, "direct").await, 2);
    let holds: i64 = db
        .query_one("SELECT count(*) FROM slot_reservations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(holds, 0);

    // An Idempotency-Key is recorded by the same statement: the same key again (at once, or
    // while the first is in flight) gets the first result; with another request, a 422.
    let with_key = |start: &str| {
        let (c, key, et) = (c.clone(), t.key.clone(), t.event_type_id);
        let start = start.to_string();
        async move {
            c.send(
                Method::POST,
                "/v2/bookings",
                &key,
                Some(booking(et, &start)),
                Some("direct-test-1"),
            )
            .await
        }
    };
    let (first, again) = tokio::join!(
        with_key("2031-05-05T11:00:00Z"),
        with_key("2031-05-05T11:00:00Z")
    );
    assert_eq!(
        (first.0, again.0),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first.1, again.1, "one booking, one answer");
    let (s, v, _) = with_key("2031-05-05T11:00:00Z").await;
    assert_eq!((s, &v), (StatusCode::CREATED, &first.1));
    let (s, v, _) = with_key("2031-05-05T13:00:00Z").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(booked(&c, "direct").await, 3);
    let keyed: i64 = db
        .query_one(
            "SELECT count(*) FROM bookings WHERE start_at = '2031-05-05T11:00:00Z'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keyed, 1);

    // The general path: a 45-minute type (busy time can move its quarter-hour grid).
    let long = event_type_of(
        &c,
        &t.key,
        t.user_id,
        json!({"title": "Long", "slug": "long", "lengthInMinutes": 45}),
    )
    .await;
    // The 11:00-11:30 booking restarts the grid at 11:30: 12:00 is no slot now, 12:15 is.
    let (s, v) = c
        .post(
            "/v2/bookings",
            &t.key,
            booking(long, "2031-05-05T12:00:00Z"),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    c.create(
        "/v2/bookings",
        &t.key,
        booking(long, "2031-05-05T12:15:00Z"),
    )
    .await;
    assert_eq!(booked(&c, "general").await, 1);
    assert_eq!(booked(&c, "direct").await, 3);
    assert_eq!(overlapping_pairs(&db).await, 0);
}

/// A counter from /metrics.
async fn counter(c: &Client, name: &str) -> u64 {
    let text = c.metrics().await;
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
}

/// Direct bookings that arrive together are written in batches (one statement each): every
/// 201 is stored with its webhook event and its time held, and a booking the batch cannot take
/// (it overlaps another of the batch, or a booking committed before, which fails the whole
/// statement) is booked alone and answered exactly, without costing the others their slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_direct_bookings_are_batched_and_answered_exactly() {
    if !have_pg("concurrent_direct_bookings_are_batched_and_answered_exactly") {
        return;
    }
    // Its webhook receiver (127.0.0.1:9) never answers: deliveries wait in the outbox.
    let app = crate::support::app_with_loopback_webhooks().await;
    let c = Client::new(&app);
    let t = tenant(&c, "Batch", "00:00", "23:59", call_type()).await;
    let db = db(&app.database_url).await;
    c.create(
        "/v2/webhooks",
        &t.key,
        json!({"subscriberUrl": "http://127.0.0.1:9/hook", "triggers": ["BOOKING_CREATED"]}),
    )
    .await;
    let slots = starts("2031-07-07T00:00:00Z", 49);
    // Taken before the crowd arrives.
    c.create("/v2/bookings", &t.key, booking(t.event_type_id, &slots[40]))
        .await;
    let batches_before = counter(&c, "calops_booking_batches_total").await;

    // 40 free slots, 4 more requests for the first of them, 4 for the taken one.
    let mut wanted: Vec<String> = slots[..40].to_vec();
    wanted.extend(std::iter::repeat_n(slots[0].clone(), 4));
    wanted.extend(std::iter::repeat_n(slots[40].clone(), 4));
    let key = Arc::new(t.key.clone());
    let tasks: Vec<_> = wanted
        .iter()
        .enumerate()
        .map(|(i, start)| {
            let (c, key) = (c.clone(), key.clone());
            let mut body = booking(t.event_type_id, start);
            body["attendee"]["name"] = json!(format!("Client {i}"));
            tokio::spawn(async move { c.post("/v2/bookings", &key, body).await })
        })
        .collect();
    let mut made = Vec::new();
    let mut conflicts = 0;
    for (task, start) in tasks.into_iter().zip(&wanted) {
        let (s, v) = task.await.unwrap();
        match s {
            StatusCode::CREATED => made.push((start.clone(), v["data"].clone())),
            StatusCode::CONFLICT => {
                assert_eq!(code(&v), "booking_conflict", "{v}");
                conflicts += 1;
            }
            other => panic!("{start}: unexpected {other}: {v}"),
        }
    }
    assert_eq!((made.len(), conflicts), (40, 8));
    let mut won: Vec<&str> = made.iter().map(|(s, _)| s.as_str()).collect();
    won.sort();
    let mut free: Vec<&str> = slots[..40].iter().map(String::as_str).collect();
    free.sort();
    assert_eq!(won, free, "each free slot once, the taken one never");

    for (_, answer) in &made {
        let uid = answer["uid"].as_str().unwrap();
        let (s, stored) = c.get(&format!("/v2/bookings/{uid}"), &t.key).await;
        assert_eq!(s, 200);
        assert_eq!(&stored["data"], answer, "the answer is what was stored");
    }
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM bookings WHERE status = 'accepted'),
                    (SELECT count(*) FROM occupancy o JOIN bookings b ON b.id = o.booking_id),
                    (SELECT count(DISTINCT booking_uid) FROM webhook_deliveries)",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        counts,
        (41, 41, 41),
        "(bookings, held times, webhook events)"
    );
    assert_eq!(overlapping_pairs(&db).await, 0);

    // Batches were written, and every loser was handed back to book alone (the four extra
    // requests for the first slot, left out of or failing their batch; the four for the
    // taken slot, whose batch statement failed).
    let batches = counter(&c, "calops_booking_batches_total").await - batches_before;
    let batched = counter(&c, "calops_booking_batched_total").await;
    let handed_back = counter(&c, "calops_booking_batch_handed_back_total").await;
    assert!(
        batches >= 1 && batched >= 1,
        "{batches} batches stored {batched}"
    );
    assert!(handed_back >= 8, "{handed_back} handed back");
    assert_eq!(booked(&c, "direct").await, 41);

    // With idempotency keys: eight keys for eight slots, the first key twice more at once.
    // Every request gets the first result of its key; each key books once.
    let keyed: Vec<(String, String)> = (0..10)
        .map(|i| {
            let k = if i < 8 { i } else { 0 };
            (format!("batch-key-{k}"), slots[41 + k].clone())
        })
        .collect();
    let tasks: Vec<_> = keyed
        .iter()
        .map(|(k, start)| {
            let (c, key, k) = (c.clone(), key.clone(), k.clone());
            let body = booking(t.event_type_id, start);
            tokio::spawn(async move {
                let (s, v, _) = c
                    .raw(
                        Method::POST,
                        "/v2/bookings",
                        Some(&key),
                        Some(body),
                        Some(&k),
                    )
                    .await;
                (s, v)
            })
        })
        .collect();
    let mut first_key_uids = Vec::new();
    for (task, (k, start)) in tasks.into_iter().zip(&keyed) {
        let (s, v) = task.await.unwrap();
        assert_eq!(s, StatusCode::CREATED, "{k}: {v}");
        let answered: jiff::Timestamp = v["data"]["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(answered, start.parse::<jiff::Timestamp>().unwrap(), "{v}");
        if k == "batch-key-0" {
            first_key_uids.push(v["data"]["uid"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(first_key_uids.len(), 3);
    assert!(
        first_key_uids.iter().all(|u| *u == first_key_uids[0]),
        "{first_key_uids:?}"
    );
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM bookings WHERE status = 'accepted'),
                    (SELECT count(*) FROM idempotency_keys WHERE key LIKE 'batch-key-%')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (49, 8));

    // A booking's held time goes with it, row by row or all at once (a trigger since
    // migration 6, no longer a foreign key).
    let uid = made[0].1["uid"].as_str().unwrap();
    db.execute("DELETE FROM bookings WHERE uid = $1::text::uuid", &[&uid])
        .await
        .unwrap();
    assert_eq!(held(&db).await, 48);
    db.batch_execute("TRUNCATE bookings").await.unwrap();
    assert_eq!(held(&db).await, 0);
}

/// Occupancy rows of bookings (not holds).
async fn held(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM occupancy WHERE booking_id IS NOT NULL",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// A batch gives up on a lock it cannot get within its `lock_timeout` and its bookings book
/// alone: a booking whose hour another transaction holds waits for it, but bookings queued
/// with it or behind it do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_booking_does_not_hold_up_the_batch_queue() {
    if !have_pg("a_blocked_booking_does_not_hold_up_the_batch_queue") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Blocked", "00:00", "23:59", call_type()).await;
    let mut db = db(&app.database_url).await;
    // Another writer holds 10:00-11:00 of the host (as a long transaction would).
    let tx = db.transaction().await.unwrap();
    tx.execute(
        "SELECT calops_lock_time($1, tstzrange('2031-08-08T10:00:00Z', '2031-08-08T10:30:00Z'))",
        &[&t.user_id],
    )
    .await
    .unwrap();
    let key = Arc::new(t.key.clone());
    let book = |start: &'static str| {
        let (c, key) = (c.clone(), key.clone());
        let body = booking(t.event_type_id, start);
        tokio::spawn(async move { c.post("/v2/bookings", &key, body).await })
    };
    let blocked = book("2031-08-08T10:00:00Z");
    let free: Vec<_> = [
        "2031-08-08T12:00:00Z",
        "2031-08-08T14:00:00Z",
        "2031-08-08T16:00:00Z",
    ]
    .into_iter()
    .map(book)
    .collect();
    for f in free {
        let (s, v) = tokio::time::timeout(std::time::Duration::from_secs(10), f)
            .await
            .expect("a free slot waited for the held hour")
            .unwrap();
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    assert!(
        !blocked.is_finished(),
        "the held hour was booked past its lock"
    );
    tx.commit().await.unwrap();
    let (s, v) = blocked.await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(overlapping_pairs(&db).await, 0);
}
