//! Clients written for Cal.com's API v2 against calops: the requests and responses Cal.com
//! documents for each version (vendored in `tests/fixtures/calcom/`, each case naming the
//! page or source file it comes from) go through the real server, and every answer must have
//! the documented shape: every documented key, with the documented JSON type (null only
//! where the field is optional), plus the values the case pins.

use calops_testkit::{have_pg, TestApp, BOOTSTRAP_TOKEN};
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::support::api::{code, Client};

/// The fixture files, in the order their cases build on each other.
const FILES: &[&str] = &[
    "schedules.json",
    "event-types.json",
    "slots.json",
    "bookings.json",
    "misc.json",
];

fn fixture(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/calcom")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .as_array()
        .unwrap()
        .clone()
}

/// `{{name}}` in strings: a whole-string placeholder takes the variable's JSON value (a
/// number stays a number), others are replaced by its text.
fn fill(v: &Value, vars: &HashMap<String, Value>) -> Value {
    match v {
        Value::String(s) => fill_str(s, vars),
        Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, vars)).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, x)| (k.clone(), fill(x, vars))).collect())
        }
        other => other.clone(),
    }
}

fn fill_str(s: &str, vars: &HashMap<String, Value>) -> Value {
    if let Some(name) = s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
        if !name.contains("{{") {
            return vars
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("no variable {name}"));
        }
    }
    let mut out = s.to_string();
    while let Some(a) = out.find("{{") {
        let b = out[a..].find("}}").expect("closed placeholder") + a;
        let name = &out[a + 2..b];
        let text = match vars
            .get(name)
            .unwrap_or_else(|| panic!("no variable {name}"))
        {
            Value::String(t) => t.clone(),
            other => other.to_string(),
        };
        out.replace_range(a..b + 2, &text);
    }
    Value::String(out)
}

/// The value at a dotted path (`data.attendees.0.email`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| match v {
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        Value::Object(o) => o.get(k),
        _ => None,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems of `ours` against the documented example `doc` at `path`.
fn shape(
    doc: &Value,
    ours: &Value,
    path: &str,
    optional: &BTreeSet<String>,
    maps: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    if doc.is_null() {
        return;
    }
    if ours.is_null() {
        if !optional.contains(path) {
            out.push(format!("{path}: null, documented as {}", kind(doc)));
        }
        return;
    }
    if kind(doc) != kind(ours) {
        out.push(format!(
            "{path}: {} ({ours}), documented as {} ({doc})",
            kind(ours),
            kind(doc)
        ));
        return;
    }
    match (doc, ours) {
        (Value::Object(d), Value::Object(o)) if maps.contains(path) => {
            // Keys are data (dates): every value has the documented value's shape.
            if let Some(first) = d.values().next() {
                for (k, v) in o {
                    shape(first, v, &format!("{path}.{k}"), optional, maps, out);
                }
            }
        }
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    Some(ov) => shape(dv, ov, &p, optional, maps, out),
                    None => out.push(format!("{p}: missing")),
                }
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(dv), Some(ov)) = (d.first(), o.first()) {
                shape(dv, ov, &format!("{path}.0"), optional, maps, out);
            }
        }
        _ => {}
    }
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// Run one case: send it (with its `cal-api-version`, or none), check status, shape, pinned
/// values, counts and warnings; keep what it saves.
async fn run(c: &Client, key: &str, case: &Value, vars: &mut HashMap<String, Value>) {
    let name = case["name"].as_str().unwrap();
    let path = fill_str(case["path"].as_str().unwrap(), vars);
    let path = path.as_str().unwrap();
    let method: Method = case["method"].as_str().unwrap().parse().unwrap();
    let body = case.get("request").map(|b| fill(b, vars));
    let client = c.version(case["version"].as_str());
    let (status, v) = client.call(method.clone(), path, Some(key), body).await;
    let want = case["status"].as_u64().unwrap() as u16;
    assert_eq!(status.as_u16(), want, "{name}: {method} {path}: {v}");
    let optional: BTreeSet<String> = strings(&case["optional"]);
    let maps: BTreeSet<String> = strings(&case["maps"]);
    let mut problems = Vec::new();
    shape(&case["response"], &v, "", &optional, &maps, &mut problems);
    for (p, expected) in case["equals"].as_object().into_iter().flatten() {
        let p = fill_str(p, vars);
        let p = p.as_str().unwrap();
        let expected = fill(expected, vars);
        let got = at(&v, p);
        if got != Some(&expected) {
            problems.push(format!("{p}: {got:?}, expected {expected}"));
        }
    }
    for (p, n) in case["count"].as_object().into_iter().flatten() {
        let p = fill_str(p, vars);
        let len = at(&v, p.as_str().unwrap())
            .and_then(Value::as_array)
            .map(Vec::len);
        if len != n.as_u64().map(|n| n as usize) {
            problems.push(format!("{p}: {len:?} items, expected {n}"));
        }
    }
    let warned: BTreeSet<String> = v["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["field"].as_str().map(str::to_string))
        .collect();
    let expected_warnings = strings(&case["warnings"]);
    if warned != expected_warnings {
        problems.push(format!(
            "warnings about {warned:?}, expected {expected_warnings:?}"
        ));
    }
    assert!(
        problems.is_empty(),
        "{name} ({}): {method} {path}\n  {}\n  answer: {v}",
        case["source"].as_str().unwrap_or("?"),
        problems.join("\n  ")
    );
    for (var, p) in case["save"].as_object().into_iter().flatten() {
        let got = at(&v, p.as_str().unwrap()).cloned();
        vars.insert(
            var.clone(),
            got.unwrap_or_else(|| panic!("{name}: nothing at {p} to save")),
        );
    }
}

/// A Monday at least two weeks ahead (Europe/Rome), and its week's times.
fn times() -> HashMap<String, Value> {
    let rome = TimeZone::get("Europe/Rome").unwrap();
    let mut d: Date = Timestamp::now().to_zoned(rome.clone()).date() + jiff::Span::new().days(14);
    while d.weekday() != Weekday::Monday {
        d = d.tomorrow().unwrap();
    }
    let at = |day: i64, hour: i8| -> jiff::Zoned {
        (d + jiff::Span::new().days(day))
            .at(hour, 0, 0, 0)
            .to_zoned(rome.clone())
            .unwrap()
    };
    let z = |t: &jiff::Zoned| t.timestamp().to_string();
    let ms = |t: &jiff::Zoned| format!("{:.3}", t.timestamp());
    let local = |t: &jiff::Zoned| t.strftime("%Y-%m-%dT%H:%M:%S.000%:z").to_string();
    let hour = jiff::SignedDuration::from_hours(1);
    let mut v = HashMap::new();
    let mut put = |k: &str, s: String| {
        v.insert(k.to_string(), json!(s));
    };
    put("monday", d.to_string());
    put("mondayRome17", local(&at(0, 17)));
    put("mondayRome18", local(&at(0, 18)));
    put("slotMon17", z(&at(0, 17)));
    put("slotMon17ms", ms(&at(0, 17)));
    put("slotMon18", z(&at(0, 18)));
    put("slotTue17", z(&at(1, 17)));
    put("slotTue17ms", ms(&at(1, 17)));
    put("slotTue18ms", ms(&at(1, 18)));
    put(
        "slotTue18endms",
        format!("{:.3}", at(1, 18).timestamp() + hour),
    );
    put("slotWed16", z(&at(2, 16)));
    put("slotWed17", z(&at(2, 17)));
    put("slotWed17ms", ms(&at(2, 17)));
    put("slotThu16", z(&at(3, 16)));
    put("slotThu16end", (at(3, 16).timestamp() + hour).to_string());
    put("slotThu17ms", ms(&at(3, 17)));
    put(
        "slotThu17endms",
        format!("{:.3}", at(3, 17).timestamp() + hour),
    );
    v
}

/// An organization with the user `jane100` (Europe/Rome) and an API key of that user, as
/// Cal.com's keys are; its variables for the cases.
async fn tenant(c: &Client) -> (String, String, HashMap<String, Value>) {
    let org = c
        .create(
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            json!({"name": "Acme Corp", "slug": "acme-corp"}),
        )
        .await;
    let org_key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &org_key,
            json!({"name": "Jane Doe", "email": "jane100@example.com", "timeZone": "Europe/Rome", "username": "jane100"}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    let key = c
        .create(
            &format!("/v2/organizations/{org_id}/api-keys"),
            &org_key,
            json!({"scopes": ["admin"], "name": "Jane's", "userId": user_id}),
        )
        .await;
    assert_eq!(key["userId"], user_id);
    let mut vars = times();
    vars.insert("username".into(), json!("jane100"));
    vars.insert("userEmail".into(), json!("jane100@example.com"));
    vars.insert("orgSlug".into(), json!("acme-corp"));
    vars.insert("userId".into(), json!(user_id));
    (key["apiKey"].as_str().unwrap().to_string(), org_key, vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cal_com_documented_requests_work_in_every_version() {
    if !have_pg("cal_com_documented_requests_work_in_every_version") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, _, mut vars) = tenant(&c).await;
    let mut versions = BTreeSet::new();
    for file in FILES {
        for case in fixture(file) {
            versions.insert((
                case["method"].as_str().unwrap().to_string(),
                case["path"]
                    .as_str()
                    .unwrap()
                    .split('?')
                    .next()
                    .unwrap()
                    .to_string(),
                case["version"].as_str().map(str::to_string),
            ));
            run(&c, &key, &case, &mut vars).await;
        }
    }
    // Every versioned route is exercised in every shape it has.
    for r in calops::service::api::versions::ROUTES {
        for f in r.families {
            let covered = versions.iter().any(|(m, p, v)| {
                let concrete = fill_str(p, &vars);
                m.eq_ignore_ascii_case(r.method)
                    && calops::service::api::versions::route_of_request(
                        m,
                        concrete.as_str().unwrap(),
                    )
                    .is_some_and(|hit| (hit.method, hit.path) == (r.method, r.path))
                    && v.as_deref()
                        .and_then(calops::service::api::versions::ApiVersion::parse)
                        .is_some_and(|v| f.versions.contains(&v))
            });
            assert!(
                covered,
                "no case for {} {} in {}",
                r.method,
                r.path,
                f.names()
            );
        }
    }
    app.running.shutdown().await.unwrap();
}

/// The same booking read in Cal.com's older and newer shapes says the same: uid, times,
/// status, host and attendee, whichever shape made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_shapes_of_one_booking_agree() {
    if !have_pg("old_and_new_shapes_of_one_booking_agree") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, _, vars) = tenant(&c).await;
    let new = c.version(Some("2024-08-13"));
    let old = c.version(None);
    // Schedules have their own versions (Cal.com serves them in 2024-06-11, not 2024-08-13).
    c.version(Some("2024-06-11")).create("/v2/schedules", &key, json!({"name": "Work", "timeZone": "Europe/Rome", "isDefault": true,
        "availability": [{"days": ["Monday", "Tuesday"], "startTime": "17:00", "endTime": "19:00"}]}))
        .await;
    let et = c
        .version(Some("2024-06-14"))
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 60, "title": "Intro", "slug": "intro"}),
        )
        .await;
    let et = et["id"].as_i64().unwrap();
    let made_new = new
        .create("/v2/bookings", &key, json!({"start": vars["slotMon17"], "eventTypeId": et,
            "attendee": {"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Asia/Tokyo", "language": "de"}}))
        .await;
    let made_old = old
        .create("/v2/bookings", &key, json!({"start": vars["slotMon18"], "eventTypeId": et, "timeZone": "Asia/Tokyo",
            "language": "de", "metadata": {}, "responses": {"name": "Bo Chen", "email": "bo@example.com"}}))
        .await;
    for made in [
        made_new["uid"].as_str().unwrap(),
        made_old["uid"].as_str().unwrap(),
    ] {
        let (_, n) = new.get(&format!("/v2/bookings/{made}"), &key).await;
        let (_, o) = old.get(&format!("/v2/bookings/{made}"), &key).await;
        let (n, o) = (&n["data"], &o["data"]);
        assert_eq!(n["uid"], o["uid"]);
        assert_eq!(n["id"], o["id"]);
        assert_eq!(n["start"], o["startTime"], "{n}\n{o}");
        assert_eq!(n["end"], o["endTime"]);
        assert_eq!(n["status"].as_str().unwrap().to_uppercase(), o["status"]);
        assert_eq!(n["eventTypeId"], o["eventTypeId"]);
        assert_eq!(n["hosts"][0]["id"], o["user"]["id"]);
        assert_eq!(n["hosts"][0]["email"], o["userPrimaryEmail"]);
        for k in ["name", "email", "timeZone"] {
            assert_eq!(n["attendees"][0][k], o["attendees"][0][k], "{k}");
        }
        assert_eq!(n["attendees"][0]["language"], o["attendees"][0]["locale"]);
        assert_eq!(
            n["bookingFieldsResponses"]["email"],
            o["responses"]["email"]
        );
    }
    // The lists agree too: the same bookings in both shapes.
    let (_, n) = new.get("/v2/bookings?status=upcoming", &key).await;
    let (_, o) = old.get("/v2/bookings?filters[status]=upcoming", &key).await;
    let uids = |a: &Value| -> BTreeSet<String> {
        a.as_array()
            .unwrap()
            .iter()
            .map(|b| b["uid"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(uids(&n["data"]), uids(&o["data"]["bookings"]));
    assert_eq!(uids(&n["data"]).len(), 2);
    app.running.shutdown().await.unwrap();
}

/// One field policy on every documented operation (walked from the live `/openapi.json`): an
/// unknown `cal-api-version` is 400 `unsupported_api_version`, a query parameter or body field
/// the operation does not document is 400 `validation_error` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_versions_fields_and_query_parameters_are_refused_on_every_endpoint() {
    if !have_pg("unknown_versions_fields_and_query_parameters_are_refused_on_every_endpoint") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, org_key, vars) = tenant(&c).await;
    let org_id = c.get("/v2/me", &key).await.1["data"]["organizationId"]
        .as_i64()
        .unwrap();
    let (_, doc) = c.call(Method::GET, "/openapi.json", None, None).await;
    let named = |v: &Value, field: &str| {
        v["error"]["details"]["fields"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["field"] == field))
    };
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let m: Method = method.to_uppercase().parse().unwrap();
            let concrete = path
                .replace("{orgId}", &org_id.to_string())
                .replace("{userId}", &vars["userId"].to_string())
                .replace("{scheduleId}", "1")
                .replace("{eventTypeId}", "1")
                .replace("{webhookId}", "1")
                .replace("{uid}", "00000000-0000-4000-8000-000000000000")
                .replace("{deliveryId}", "00000000-0000-4000-8000-000000000000");
            // Organizations are made with the bootstrap token; the rest with the org's key.
            let token = if path == "/v2/organizations" {
                BOOTSTRAP_TOKEN
            } else {
                org_key.as_str()
            };
            let what = format!("{method} {path}");

            let (s, v, _) = c
                .http
                .request(m.clone(), format!("{}{concrete}", c.base))
                .bearer_auth(token)
                .header("cal-api-version", "2023-01-01")
                .send()
                .await
                .map(|r| (r.status(), r))
                .map(|(s, r)| (s, r, ()))
                .unwrap();
            let v: Value = v.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (s, code(&v)),
                (StatusCode::BAD_REQUEST, "unsupported_api_version"),
                "{what}: {v}"
            );

            let sep = if concrete.contains('?') { '&' } else { '?' };
            let (s, v) = c
                .call(
                    m.clone(),
                    &format!("{concrete}{sep}calopsBogusParam=1"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(
                (s, code(&v)),
                (StatusCode::BAD_REQUEST, "validation_error"),
                "{what}: {v}"
            );
            assert!(named(&v, "calopsBogusParam"), "{what}: {v}");

            if op.get("requestBody").is_some() {
                let (s, v) = c
                    .call(
                        m.clone(),
                        &concrete,
                        Some(token),
                        Some(json!({"calopsBogusField": 1})),
                    )
                    .await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{what}: {v}");
                assert!(named(&v, "calopsBogusField"), "{what}: {v}");
                // Every versioned body refuses a field of another version's shape too.
                if let Some(shapes) = op["x-cal-api-versions"].as_array() {
                    for shape in shapes {
                        let version = shape["versions"][0].as_str().unwrap();
                        let (s, v) = c
                            .version(Some(version))
                            .call(
                                m.clone(),
                                &concrete,
                                Some(token),
                                Some(json!({"calopsBogusField": 1})),
                            )
                            .await;
                        assert_eq!(s, StatusCode::BAD_REQUEST, "{what} {version}: {v}");
                        assert!(named(&v, "calopsBogusField"), "{what} {version}: {v}");
                    }
                }
            }
            checked += 1;
        }
    }
    // Every documented operation was walked (the document is not empty or cut short).
    assert_eq!(
        checked,
        calops::service::api::openapi::ENDPOINTS.len(),
        "operations checked"
    );
    app.running.shutdown().await.unwrap();
}

/// Cal.com's `offsetStart` moves the slots, and hours up to 23:59 end at midnight (the
/// hardening issue's item 3), through the real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_start_and_hours_to_23_59_shape_the_slots_as_in_cal_com() {
    if !have_pg("offset_start_and_hours_to_23_59_shape_the_slots_as_in_cal_com") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, _, vars) = tenant(&c).await;
    c.create(
        "/v2/schedules",
        &key,
        json!({"name": "Evenings", "timeZone": "Europe/Rome", "isDefault": true,
        "availability": [{"days": ["Monday"], "startTime": "21:00", "endTime": "23:59"}]}),
    )
    .await;
    let plain = c
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 60, "title": "Plain", "slug": "plain"}),
        )
        .await;
    let offset = c
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 30, "title": "Offset", "slug": "offset", "offsetStart": 10}),
        )
        .await;
    assert_eq!(offset["offsetStart"], 10);
    let monday = vars["monday"].as_str().unwrap();
    let slots = |id: &Value| {
        let c = c.clone();
        let key = key.clone();
        let url =
            format!("/v2/slots?eventTypeId={id}&start={monday}&end={monday}&timeZone=Europe/Rome");
        async move {
            let (s, v) = c.get(&url, &key).await;
            assert_eq!(s, 200, "{v}");
            v["data"][monday]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| s["start"].as_str().unwrap()[11..16].to_string())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    // 21:00 to midnight: the 23:00 hour is a slot only because 23:59 ends the day.
    assert_eq!(slots(&plain["id"]).await, ["21:00", "22:00", "23:00"]);
    assert_eq!(
        slots(&offset["id"]).await,
        ["21:10", "21:40", "22:10", "22:40", "23:10"]
    );
    // A booking is judged by the same slots: 21:00 is not one with the offset, 21:10 is.
    let book = |start: String| {
        let c = c.clone();
        let key = key.clone();
        let id = offset["id"].clone();
        async move {
            c.post(
                "/v2/bookings",
                &key,
                json!({"start": start, "eventTypeId": id,
                "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}}),
            )
            .await
        }
    };
    let rome = TimeZone::get("Europe/Rome").unwrap();
    let at = |h: i8, m: i8| {
        monday
            .parse::<Date>()
            .unwrap()
            .at(h, m, 0, 0)
            .to_zoned(rome.clone())
            .unwrap()
            .timestamp()
            .to_string()
    };
    let (s, v) = book(at(21, 0)).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::UNPROCESSABLE_ENTITY, "slot_unavailable"),
        "{v}"
    );
    let (s, v) = book(at(21, 10)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    app.running.shutdown().await.unwrap();
}

/// A user's API key (as Cal.com's are) acts for its user: `userId` defaults to it, other
/// users' resources are invisible, and `/v2/me` is that user; an organization's key keeps
/// naming users explicitly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_keys_act_for_their_user_and_organization_keys_for_any() {
    if !have_pg("user_keys_act_for_their_user_and_organization_keys_for_any") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, org_key, vars) = tenant(&c).await;
    let me = vars["userId"].as_i64().unwrap();
    let org_id = c.get("/v2/me", &key).await.1["data"]["organizationId"]
        .as_i64()
        .unwrap();
    let other = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &org_key,
            json!({"name": "Other Host", "email": "other@example.com", "timeZone": "UTC"}),
        )
        .await;
    let other_id = other["id"].as_i64().unwrap();
    assert_eq!(other["username"], "other", "from the e-mail address");
    // The organization's key has no user: /v2/me and the default schedule say so.
    let (s, v) = c.get("/v2/me", &org_key).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "user_key_required"));
    let (s, v) = c.get("/v2/schedules/default", &org_key).await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "user_key_required"));
    // Without userId: the key's user (user key), or a clear 400 (organization key).
    let mine = c
        .create(
            "/v2/schedules",
            &key,
            json!({"name": "Mine", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!(mine["ownerId"], me);
    let (s, v) = c
        .post(
            "/v2/schedules",
            &org_key,
            json!({"name": "Whose", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::BAD_REQUEST, "validation_error"));
    assert!(
        v["error"]["details"]["fields"][0]["field"] == "userId",
        "{v}"
    );
    let theirs = c
        .create(
            "/v2/schedules",
            &org_key,
            json!({"userId": other_id, "name": "Theirs", "timeZone": "UTC"}),
        )
        .await;
    // A user's key may not act for another user, nor see their schedule.
    let (s, v) = c
        .post(
            "/v2/schedules",
            &key,
            json!({"userId": other_id, "name": "X", "timeZone": "UTC"}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "other_user"), "{v}");
    let (s, _) = c
        .get(&format!("/v2/schedules/{}", theirs["id"]), &key)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = c.get("/v2/schedules", &key).await;
    let ids: Vec<&Value> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&mine["id"]]);
    let (_, v) = c.get("/v2/schedules", &org_key).await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        2,
        "the organization's key sees both"
    );
    let (_, v) = c.get("/v2/schedules/default", &key).await;
    assert_eq!(v["data"]["id"], mine["id"]);
    // Event types and bookings likewise.
    let et = c
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 30, "title": "Mine", "slug": "mine"}),
        )
        .await;
    assert_eq!(et["ownerId"], me);
    let their_et = c
        .create(
            "/v2/event-types",
            &org_key,
            json!({"userId": other_id, "lengthInMinutes": 30, "title": "Theirs", "slug": "theirs"}),
        )
        .await;
    let (s, _) = c
        .get(&format!("/v2/event-types/{}", their_et["id"]), &key)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Anyone may book anyone's event type (as on Cal.com's booking pages) ...
    let start = vars["slotMon17"].clone();
    let theirs_booked = c
        .create(
            "/v2/bookings",
            &key,
            json!({"start": start, "eventTypeId": their_et["id"],
            "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}}),
        )
        .await;
    // ... but a user's key lists and reads only the bookings it hosts.
    let (_, v) = c.get("/v2/bookings", &key).await;
    assert_eq!(v["pagination"]["totalItems"], 0, "{v}");
    let (s, _) = c
        .get(
            &format!("/v2/bookings/{}", theirs_booked["uid"].as_str().unwrap()),
            &key,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = c.get("/v2/bookings", &org_key).await;
    assert_eq!(v["pagination"]["totalItems"], 1);
    // A user's key makes keys for its own user only.
    let (s, v) = c
        .post(
            &format!("/v2/organizations/{org_id}/api-keys"),
            &key,
            json!({"scopes": ["read"], "userId": other_id}),
        )
        .await;
    assert_eq!((s, code(&v)), (StatusCode::FORBIDDEN, "other_user"), "{v}");
    app.running.shutdown().await.unwrap();
}

/// `GET /v2/bookings` (2024-08-13) filters and sorts as Cal.com's list does: attendee name
/// (exact; values are trimmed, as Cal.com trims them), event type ids, start/end/created bounds at any ISO 8601 instant (not only
/// whole minutes), the three sort keys, take/skip; teams match nothing; the older shape's
/// `filters[eventTypeIds]` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_list_filters_and_sorts_as_cal_com() {
    if !have_pg("booking_list_filters_and_sorts_as_cal_com") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let (key, _, vars) = tenant(&c).await;
    let new = c.version(Some("2024-08-13"));
    c.version(Some("2024-06-11"))
        .create(
            "/v2/schedules",
            &key,
            json!({"name": "Work", "timeZone": "Europe/Rome", "isDefault": true,
                "availability": [{"days": ["Monday", "Tuesday"], "startTime": "17:00", "endTime": "19:00"},
                                 {"days": ["Wednesday", "Thursday"], "startTime": "16:00", "endTime": "20:00"}]}),
        )
        .await;
    let et = c.version(Some("2024-06-14"));
    let a = et
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 60, "title": "A", "slug": "a"}),
        )
        .await["id"]
        .clone();
    let b = et
        .create(
            "/v2/event-types",
            &key,
            json!({"lengthInMinutes": 60, "title": "B", "slug": "b"}),
        )
        .await["id"]
        .clone();
    // Made in another order than their starts: Wed, Mon 17, Mon 18, Thu.
    let mut made = HashMap::new();
    for (name, slot, et, who) in [
        ("wed", "slotWed16", &a, "Ann Lee"),
        ("mon17", "slotMon17", &a, "Ann Lee"),
        ("mon18", "slotMon18", &b, "Bo Chen"),
        ("thu", "slotThu16", &a, "Cy Diaz"),
    ] {
        let v = new
            .create("/v2/bookings", &key, json!({"start": vars[slot], "eventTypeId": et,
                "attendee": {"name": who, "email": format!("{}@example.com", name), "timeZone": "UTC"}}))
            .await;
        made.insert(name, v);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let uid = |n: &str| made[n]["uid"].as_str().unwrap().to_string();
    let list = |q: String| {
        let new = new.clone();
        let key = key.clone();
        async move {
            let (s, v) = new.get(&format!("/v2/bookings?{q}"), &key).await;
            assert_eq!(s, StatusCode::OK, "{q}: {v}");
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["uid"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let ts = |n: &str, k: &str| made[n][k].as_str().unwrap().parse::<Timestamp>().unwrap();
    let ms = jiff::SignedDuration::from_millis(1);
    assert_eq!(
        list("attendeeName=Ann%20Lee".into()).await,
        [uid("mon17"), uid("wed")]
    );
    assert_eq!(
        list("attendeeName=%20Ann%20Lee%20".into()).await,
        [uid("mon17"), uid("wed")],
        "trimmed"
    );
    assert!(
        list("attendeeName=Ann".into()).await.is_empty(),
        "exact, as Cal.com's"
    );
    assert_eq!(list(format!("eventTypeIds={b}")).await, [uid("mon18")]);
    assert_eq!(list(format!("eventTypeId={b}")).await, [uid("mon18")]);
    assert_eq!(list(format!("eventTypeIds={a},{b}")).await.len(), 4);
    // Bounds at any instant: a millisecond after a start leaves that booking out.
    let after = ts("mon17", "start") + ms;
    assert_eq!(
        list(format!(
            "afterStart={after}&beforeEnd={}",
            ts("mon18", "end")
        ))
        .await,
        [uid("mon18")]
    );
    let before = ts("mon18", "end") - ms;
    assert_eq!(list(format!("beforeEnd={before}")).await, [uid("mon17")]);
    let made_after = ts("mon17", "createdAt") + ms;
    assert_eq!(
        list(format!("afterCreatedAt={made_after}&sortCreated=asc")).await,
        [uid("mon18"), uid("thu")]
    );
    assert_eq!(
        list(format!("beforeCreatedAt={made_after}&sortCreated=asc")).await,
        [uid("wed"), uid("mon17")]
    );
    // Sorting: by start (the default, ascending), end, creation.
    let by_start = [uid("mon17"), uid("mon18"), uid("wed"), uid("thu")];
    assert_eq!(list(String::new()).await, by_start);
    let mut desc = by_start.clone();
    desc.reverse();
    assert_eq!(list("sortStart=desc".into()).await, desc);
    assert_eq!(list("sortEnd=asc".into()).await, by_start);
    assert_eq!(
        list("sortCreated=desc".into()).await,
        [uid("thu"), uid("mon18"), uid("mon17"), uid("wed")]
    );
    assert_eq!(
        list("take=2&skip=1".into()).await,
        [uid("mon18"), uid("wed")]
    );
    assert!(
        list("teamsIds=1".into()).await.is_empty(),
        "calops has no teams"
    );
    let (s, v) = new.get("/v2/bookings?afterStart=yesterday", &key).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "validation_error"),
        "{v}"
    );
    assert_eq!(v["error"]["details"]["fields"][0]["field"], "afterStart");
    // The older shape's filters.
    let (s, v) = c
        .version(None)
        .get(&format!("/v2/bookings?filters[eventTypeIds]={b}"), &key)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let uids: Vec<&str> = v["data"]["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["uid"].as_str().unwrap())
        .collect();
    assert_eq!(uids, [uid("mon18")]);
    app.running.shutdown().await.unwrap();
}
