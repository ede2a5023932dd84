//! The booking pages over real HTTP against a real PostgreSQL (a database per test): book,
//! view, cancel and reschedule through the signed links, and every kind of bad input
//! (unknown slugs, tampered and expired tokens, a taken slot, a double submit, oversized and
//! hostile fields, another organization's uid), branding, embedding, languages and the
//! per-IP rate limit. The browser tests (`browser.rs`) drive the same pages in chromium.

use crate::support::api::Client;
use crate::support::db;
use calops::service::web::token;
use calops_testkit::{have_pg, TestApp, BOOTSTRAP_TOKEN, PAGE_KEY};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;

/// An organization with a host (UTC, 09:00-17:00 every day) and a 30-minute event type.
pub struct Tenant {
    pub org_id: i64,
    pub org_slug: String,
    pub key: String,
    pub user_slug: String,
}

impl Tenant {
    pub fn booker(&self) -> String {
        format!("/{}/{}/call", self.org_slug, self.user_slug)
    }
}

pub async fn tenant(c: &Client, name: &str, host_tz: &str) -> Tenant {
    let org = c
        .create("/v2/organizations", BOOTSTRAP_TOKEN, json!({"name": name}))
        .await;
    tenant_in(c, &org, host_tz).await
}

/// A host and event type in an organization answer (`POST /v2/organizations...`).
pub async fn tenant_in(c: &Client, org: &Value, host_tz: &str) -> Tenant {
    let key = org["apiKey"].as_str().unwrap().to_string();
    let org_id = org["id"].as_i64().unwrap();
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &key,
            json!({"name": "Ada Host", "email": format!("ada@{}.example.com", org["slug"].as_str().unwrap()), "timeZone": host_tz}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.create(
        "/v2/schedules",
        &key,
        json!({"userId": user_id, "name": "Work", "timeZone": host_tz,
               "availability": [{"days": ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday","Sunday"],
                                 "startTime": "09:00", "endTime": "17:00"}]}),
    )
    .await;
    c.create(
        "/v2/event-types",
        &key,
        json!({"title": "Call", "slug": "call", "lengthInMinutes": 30, "userId": user_id,
                   "description": "A short call"}),
    )
    .await;
    Tenant {
        org_id,
        org_slug: org["slug"].as_str().unwrap().to_string(),
        key,
        user_slug: user["username"].as_str().unwrap().to_string(),
    }
}

/// A browser-like client: no redirects followed, forms posted as a browser does.
pub struct Web {
    pub http: reqwest::Client,
    pub base: String,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub html: String,
}

impl Page {
    /// The first `href` containing `needle`, unescaped.
    pub fn link(&self, needle: &str) -> Option<String> {
        self.html
            .split("href=\"")
            .skip(1)
            .map(|s| unescape(s.split('"').next().unwrap_or("")))
            .find(|h| h.contains(needle))
    }

    /// The hidden fields of the page's POST form, and its action.
    pub fn form(&self) -> (String, HashMap<String, String>) {
        let form = self
            .html
            .split("<form method=\"post\" action=\"")
            .nth(1)
            .expect("a POST form");
        let action = unescape(form.split('"').next().unwrap());
        let body = form.split("</form>").next().unwrap();
        let re =
            regex::Regex::new(r#"<input type="hidden" name="([^"]+)" value="([^"]*)">"#).unwrap();
        let fields = re
            .captures_iter(body)
            .map(|c| (unescape(&c[1]), unescape(&c[2])))
            .collect();
        (action, fields)
    }

    pub fn csp(&self) -> String {
        self.headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// HTML entities minijinja writes in attributes and text.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Web {
    pub fn new(app: &TestApp) -> Web {
        Web {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut rq = self.http.get(format!("{}{}", self.base, path));
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let r = rq.send().await.unwrap();
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            html: r.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        self.get_with(path, &[]).await
    }

    pub async fn post(&self, path: &str, fields: &HashMap<String, String>) -> Page {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("origin", self.base.clone())
            .form(fields)
            .send()
            .await
            .unwrap();
        Page {
            status: r.status(),
            headers: r.headers().clone(),
            html: r.text().await.unwrap(),
        }
    }
}

fn location(p: &Page) -> String {
    p.headers
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no Location ({}): {}", p.status, p.html))
}

/// The booker of next month (always in the future), its first free day's first slot chosen.
async fn choose_slot(w: &Web, booker: &str, extra: &str) -> (Page, String) {
    let next = jiff::Zoned::now()
        .date()
        .first_of_month()
        .checked_add(jiff::Span::new().months(1))
        .unwrap();
    let month = format!("{:04}-{:02}", next.year(), next.month());
    let page = w.get(&format!("{booker}?month={month}{extra}")).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let slot = page
        .link("slot=")
        .expect("a free slot on the first free day");
    let form = w.get(&slot).await;
    assert_eq!(form.status, 200, "{}", form.html);
    (form, slot)
}

fn uid_of(location: &str) -> uuid::Uuid {
    location
        .trim_start_matches("/booking/")
        .split(['?', '/'])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn param(url: &str, name: &str) -> Option<String> {
    let q = url.split('#').next()?.split_once('?')?.1;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn booking_row(url: &str, uid: uuid::Uuid) -> (String, Value, jiff::Timestamp, Value) {
    let d = db(url).await;
    let r = d
        .query_one(
            "SELECT status, attendee, start_at, metadata FROM bookings WHERE uid = $1",
            &[&uid],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3))
}

#[tokio::test]
async fn an_invitee_books_views_cancels_and_a_double_submit_books_once() {
    if !have_pg("an_invitee_books_views_cancels_and_a_double_submit_books_once") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Pages Org", "UTC").await;
    let w = Web::new(&app);

    let profile = w.get(&format!("/{}/{}", t.org_slug, t.user_slug)).await;
    assert_eq!(profile.status, 200, "{}", profile.html);
    assert!(
        profile.html.contains("Book a time with Ada Host"),
        "{}",
        profile.html
    );
    assert!(profile.link("/call").is_some());

    let (form_page, slot) = choose_slot(&w, &t.booker(), "&tz=America/New_York").await;
    assert!(
        form_page.csp().contains("script-src 'sha256-"),
        "{}",
        form_page.csp()
    );
    let (action, mut fields) = form_page.form();
    assert_eq!(action, format!("{}/book", t.booker()));
    assert_eq!(fields["tz"], "America/New_York");
    assert!(fields.contains_key("csrf") && fields.contains_key("idem"));
    fields.insert("name".into(), "Ann <b>Lee</b>".into());
    fields.insert("email".into(), "ann@example.com".into());
    fields.insert("notes".into(), "About the <script>plan</script>".into());
    fields.insert("guests".into(), "bob@example.com, cy@example.com".into());

    let first = w.post(&action, &fields).await;
    assert_eq!(first.status, 303, "{}", first.html);
    let loc = location(&first);
    let uid = uid_of(&loc);
    // The same form sent again (a double click, a reload): the same booking.
    let again = w.post(&action, &fields).await;
    assert_eq!(again.status, 303, "{}", again.html);
    assert_eq!(uid_of(&location(&again)), uid);
    let d = db(&app.database_url).await;
    let n: i64 = d
        .query_one("SELECT count(*) FROM bookings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "one booking for two submits");

    let (status, attendee, start, metadata) = booking_row(&app.database_url, uid).await;
    assert_eq!(status, "accepted");
    assert_eq!(attendee["timeZone"], "America/New_York");
    assert_eq!(attendee["name"], "Ann <b>Lee</b>");
    assert_eq!(metadata["notes"], "About the <script>plan</script>");
    assert_eq!(start.to_string(), param(&slot, "slot").unwrap());

    // The confirmation: in the invitee's zone, names escaped, the self-service links.
    let view = w.get(&loc).await;
    assert_eq!(view.status, 200, "{}", view.html);
    assert!(view.html.contains("Your booking is confirmed"));
    assert!(
        view.html.contains("Ann &lt;b&gt;Lee&lt;&#x2f;b&gt;"),
        "{}",
        view.html
    );
    assert!(!view.html.contains("<b>Lee"));
    assert!(unescape(&view.html).contains("(America/New_York)"));
    let ny = start.to_zoned(jiff::tz::TimeZone::get("America/New_York").unwrap());
    let hour12 = match ny.hour() % 12 {
        0 => 12,
        h => h,
    };
    assert!(
        view.html.contains(&format!(
            "{hour12}:{:02} {}",
            ny.minute(),
            if ny.hour() < 12 { "AM" } else { "PM" }
        )),
        "the time in New York: {}",
        view.html
    );
    let ics = w.get(&view.link("/ics").unwrap()).await;
    assert_eq!(ics.status, 200);
    assert!(ics.html.starts_with("BEGIN:VCALENDAR"), "{}", ics.html);
    assert!(ics.html.contains(&uid.to_string()));

    // Cancel with a reason through the link.
    let cancel = w.get(&view.link("/cancel").unwrap()).await;
    assert_eq!(cancel.status, 200, "{}", cancel.html);
    let (action, mut f) = cancel.form();
    f.insert("reason".into(), "Conflict at work".into());
    let done = w.post(&action, &f).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert!(done.html.contains("This booking is cancelled"));
    let r = d
        .query_one(
            "SELECT status, cancellation_reason FROM bookings WHERE uid = $1",
            &[&uid],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "cancelled");
    assert_eq!(
        r.get::<_, Option<String>>(1).as_deref(),
        Some("Conflict at work")
    );
    // The link still shows the booking, now cancelled, without actions.
    let view = w.get(&loc).await;
    assert!(
        view.html.contains("This booking is cancelled"),
        "{}",
        view.html
    );
    assert!(view.link("/cancel").is_none());
    // Cancelling twice: no longer active.
    assert_eq!(w.post(&action, &f).await.status, 409);
}

#[tokio::test]
async fn reschedule_through_the_link_moves_the_booking_atomically() {
    if !have_pg("reschedule_through_the_link_moves_the_booking_atomically") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Move Org", "UTC").await;
    let w = Web::new(&app);
    let (form_page, _) = choose_slot(&w, &t.booker(), "&tz=UTC").await;
    let (action, mut f) = form_page.form();
    f.insert("name".into(), "Mo".into());
    f.insert("email".into(), "mo@example.com".into());
    let loc = location(&w.post(&action, &f).await);
    let old = uid_of(&loc);
    let view = w.get(&loc).await;
    let page = w.get(&view.link("/reschedule").unwrap()).await;
    assert_eq!(page.status, 200, "{}", page.html);
    assert!(
        page.html.contains("Pick a new time for Call"),
        "{}",
        page.html
    );
    // A later slot of the same day.
    let slots: Vec<String> = page
        .html
        .split("href=\"")
        .skip(1)
        .map(|s| unescape(s.split('"').next().unwrap()))
        .filter(|h| h.contains("slot="))
        .collect();
    assert!(slots.len() > 2, "{slots:?}");
    let chosen = w.get(&slots[2]).await;
    let (action, f) = chosen.form();
    assert_eq!(action, format!("/booking/{old}/reschedule"));
    assert!(f.contains_key("t"), "the link token travels in the form");
    let moved = w.post(&action, &f).await;
    assert_eq!(moved.status, 303, "{}", moved.html);
    let new = uid_of(&location(&moved));
    assert_ne!(new, old);
    let d = db(&app.database_url).await;
    let r = d
        .query_one(
            "SELECT o.status, o.rescheduled_to_uid, n.status, n.start_at FROM bookings o, bookings n
             WHERE o.uid = $1 AND n.uid = $2",
            &[&old, &new],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, String>(0), "cancelled");
    assert_eq!(r.get::<_, Option<uuid::Uuid>>(1), Some(new));
    assert_eq!(r.get::<_, String>(2), "accepted");
    assert_eq!(
        r.get::<_, jiff::Timestamp>(3).to_string(),
        param(&slots[2], "slot").unwrap()
    );
    // The old link says where the booking went.
    let old_view = w.get(&loc).await;
    assert!(
        old_view.html.contains("This booking was moved"),
        "{}",
        old_view.html
    );
    assert!(old_view.link(&format!("/booking/{new}")).is_some());
}

#[tokio::test]
async fn bad_input_gets_a_page_not_an_error() {
    if !have_pg("bad_input_gets_a_page_not_an_error") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Bad Org", "UTC").await;
    let other = tenant(&c, "Other Org", "UTC").await;
    let w = Web::new(&app);

    // Unknown slugs: a 404 page, also for slugs that are no slugs.
    for path in [
        format!("/{}/nobody", t.org_slug),
        format!("/no-such-org/{}", t.user_slug),
        format!("/{}/{}/nothing", t.org_slug, t.user_slug),
        format!("/{}/{}/call", other.org_slug, "nobody"),
        "/ACME/%3Cscript%3E".to_string(),
        format!("/{}.x/{}", t.org_slug, t.user_slug),
    ] {
        let p = w.get(&path).await;
        assert_eq!(p.status, 404, "{path}");
        assert!(
            p.html.contains("<h1>Page not found</h1>"),
            "{path}: {}",
            p.html
        );
        assert!(p.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // Under /v2 the API answers, in JSON, and no organization can take its path.
    let p = w.get("/v2/nothing/here").await;
    assert_eq!(p.status, 404);
    assert!(p.html.contains("route_not_found"), "{}", p.html);
    for slug in ["v2", "booking"] {
        let (s, v) = c
            .call(
                Method::POST,
                "/v2/organizations",
                Some(BOOTSTRAP_TOKEN),
                Some(json!({"name": "Taken", "slug": slug})),
            )
            .await;
        assert_eq!(s, 400, "{slug}: {v}");
    }
    // A host of one organization is not reachable under another's slug.
    let p = w.get(&format!("/{}/{}", other.org_slug, t.user_slug)).await;
    assert_eq!(
        p.status,
        if t.user_slug == other.user_slug {
            200
        } else {
            404
        }
    );

    // Book one slot, keep its form.
    let (form_page, _) = choose_slot(&w, &t.booker(), "&tz=UTC").await;
    let (action, mut f) = form_page.form();
    f.insert("name".into(), "Ann".into());
    f.insert("email".into(), "ann@example.com".into());

    // Oversized and invalid fields: the form again, with the problems, nothing booked.
    let mut big = f.clone();
    big.insert("name".into(), "x".repeat(201));
    big.insert("email".into(), "not-an-address".into());
    big.insert("guests".into(), "a@b.example, nope".into());
    let p = w.post(&action, &big).await;
    assert_eq!(p.status, 422, "{}", p.html);
    assert!(p.html.contains("At most 200 characters."));
    assert!(p.html.contains("Enter an e-mail address"));
    assert!(p.html.contains("aria-invalid=\"true\""));
    // Addresses mail cannot be sent to, though they have an @ and a dot after it: the form
    // again, each field marked (the API refuses them the same way).
    let mut unmailable = f.clone();
    unmailable.insert("email".into(), "ann..lee@example.com".into());
    unmailable.insert("guests".into(), "bob@example.com, carl@-example.com".into());
    let p = w.post(&action, &unmailable).await;
    // The form again (422) with both address fields marked.
    let both_marked = |p: &Page| {
        assert_eq!(p.status, 422, "{}", p.html);
        for field in ["email", "guests"] {
            assert!(
                p.html.contains(&format!(
                    "aria-invalid=\"true\" aria-describedby=\"{field}-err\""
                )),
                "{field}: {}",
                p.html
            );
        }
    };
    both_marked(&p);
    assert!(p.html.contains("Enter an e-mail address such as"));
    // A local part with letters outside ASCII (mail cannot carry it): each field marked, with
    // what to do; an internationalized domain alone is fine (no mark on guests' other address).
    let mut non_ascii = f.clone();
    non_ascii.insert("email".into(), "jürgen@bücher.example".into());
    non_ascii.insert(
        "guests".into(),
        "bob@bücher.example, zoë@example.com".into(),
    );
    let p = w.post(&action, &non_ascii).await;
    both_marked(&p);
    assert!(
        p.html.contains("non-ASCII letters before the @"),
        "{}",
        p.html
    );
    assert!(p.html.contains("zoë@example.com: it has"), "{}", p.html);
    let mut huge = f.clone();
    huge.insert("notes".into(), "n".repeat(40_000));
    assert_eq!(w.post(&action, &huge).await.status, 413);
    // A form without its CSRF token, with a forged one, or posted from another site.
    let mut no_csrf = f.clone();
    no_csrf.remove("csrf");
    assert_eq!(w.post(&action, &no_csrf).await.status, 403);
    let mut forged = f.clone();
    forged.insert(
        "csrf".into(),
        token::sign_form(b"not the key, but long enough......", &action, i64::MAX / 2),
    );
    assert_eq!(w.post(&action, &forged).await.status, 403);
    let cross = w
        .http
        .post(format!("{}{action}", w.base))
        .header("origin", "https://evil.example")
        .form(&f)
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    // A form token of one event type's form does not work for another's.
    let other_action = format!("{}/book", other.booker());
    assert_eq!(w.post(&other_action, &f).await.status, 403);
    let d = db(&app.database_url).await;
    let count = || async {
        d.query_one("SELECT count(*) FROM bookings", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count().await, 0, "nothing was booked by bad forms");

    let first = w.post(&action, &f).await;
    assert_eq!(first.status, 303, "{}", first.html);
    let loc = location(&first);
    let uid = uid_of(&loc);

    // A slot taken between page load and submit: the nearest free times, not an error page.
    let mut late = f.clone();
    late.insert("idem".into(), uuid::Uuid::new_v4().to_string());
    late.insert("email".into(), "late@example.com".into());
    let p = w.post(&action, &late).await;
    assert_eq!(p.status, 409, "{}", p.html);
    assert!(p.html.contains("That time was just taken"), "{}", p.html);
    let offered = p
        .html
        .split("id=\"taken\"")
        .nth(1)
        .unwrap()
        .split("</div>")
        .next()
        .unwrap();
    assert!(offered.matches("slot=").count() >= 3, "{offered}");
    assert_eq!(count().await, 1);

    // Tokens: tampered, for another booking, expired, another organization's booking.
    let tok = param(&loc, "t").unwrap();
    let view = |uid: uuid::Uuid, t: &str| format!("/booking/{uid}?t={t}");
    assert_eq!(w.get(&view(uid, &tok)).await.status, 200);
    let mut tampered = tok.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        view(uid, &tampered),
        view(uid, ""),
        format!("/booking/{uid}"),
        view(uuid::Uuid::new_v4(), &tok),
        view(
            uid,
            &tok.replacen(&t.org_id.to_string(), &other.org_id.to_string(), 1),
        ),
        format!("/booking/not-a-uuid?t={tok}"),
        format!("/booking/{uid}/cancel?t={tampered}"),
        format!("/booking/{uid}/ics?t={tampered}"),
    ] {
        let p = w.get(&bad).await;
        assert_eq!(p.status, 404, "{bad}");
        assert!(
            p.html.contains("This link is not valid"),
            "{bad}: {}",
            p.html
        );
    }
    let expired = token::sign_link(
        PAGE_KEY.as_bytes(),
        uid,
        t.org_id,
        jiff::Timestamp::now().as_second() - 1,
    );
    assert_eq!(w.get(&view(uid, &expired)).await.status, 404);
    // A valid token of organization A, naming a booking of organization B.
    let (fp, _) = choose_slot(&w, &other.booker(), "&tz=UTC").await;
    let (a2, mut f2) = fp.form();
    f2.insert("name".into(), "Bo".into());
    f2.insert("email".into(), "bo@example.com".into());
    let other_uid = uid_of(&location(&w.post(&a2, &f2).await));
    let far = jiff::Timestamp::now().as_second() + 86_400 * 90;
    let cross_org = token::sign_link(PAGE_KEY.as_bytes(), other_uid, t.org_id, far);
    let p = w.get(&view(other_uid, &cross_org)).await;
    assert_eq!(
        p.status, 404,
        "a token for org A does not open org B's booking"
    );
    // A cancel POST with a token of another booking changes nothing.
    let cancel = w.get(&format!("/booking/{uid}/cancel?t={tok}")).await;
    let (_, mut cf) = cancel.form();
    cf.insert("t".into(), cross_org.clone());
    let p = w.post(&format!("/booking/{other_uid}/cancel"), &cf).await;
    assert_eq!(p.status, 404);
    let (status, ..) = booking_row(&app.database_url, other_uid).await;
    assert_eq!(status, "accepted");
    // No page leaks a server error.
    assert!(!p.html.contains("panicked"));
}

#[tokio::test]
async fn branding_is_inherited_embedding_is_allow_listed_and_languages_switch() {
    if !have_pg("branding_is_inherited_embedding_is_allow_listed_and_languages_switch") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let parent = c
        .create(
            "/v2/organizations",
            BOOTSTRAP_TOKEN,
            json!({"name": "Brand Parent"}),
        )
        .await;
    let pid = parent["id"].as_i64().unwrap();
    let pkey = parent["apiKey"].as_str().unwrap().to_string();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v2/organizations/{pid}"),
            Some(&pkey),
            Some(json!({"brandColor": "#ffee00", "logoUrl": "https://cdn.example.com/l.png",
                        "hideBranding": true, "embedAllowedOrigins": ["https://www.Example.com", "http://127.0.0.1:9"]})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["data"]["embedAllowedOrigins"],
        json!(["https://www.example.com", "http://127.0.0.1:9"])
    );
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v2/organizations/{pid}"),
            Some(&pkey),
            Some(json!({"embedAllowedOrigins": ["https://x.example/path"]})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let child = c
        .create(
            &format!("/v2/organizations/{pid}/organizations"),
            &pkey,
            json!({"name": "Brand Child", "slug": "child"}),
        )
        .await;
    let t = tenant_in(&c, &child, "Europe/Berlin").await;
    let w = Web::new(&app);
    let path = format!(
        "/{}.child/{}/call",
        parent["slug"].as_str().unwrap(),
        t.user_slug
    );

    let p = w.get(&path).await;
    assert_eq!(p.status, 200, "{}", p.html);
    // Inherited: the logo, hidden branding, and the pale yellow made readable.
    assert!(
        p.html
            .contains("https:&#x2f;&#x2f;cdn.example.com&#x2f;l.png"),
        "{}",
        p.html
    );
    assert!(!p.html.contains("Scheduling by calops"));
    assert!(
        !p.html.contains("--accent:#ffee00"),
        "too pale for text on white"
    );
    assert!(p.html.contains("--accent:#"));
    assert!(p.csp().contains("frame-ancestors 'none'"), "{}", p.csp());
    // Embedded: no chrome, framing by the allowed origins only.
    let e = w.get(&format!("{path}?embed=1")).await;
    assert_eq!(e.status, 200);
    assert!(
        e.csp()
            .ends_with("frame-ancestors https://www.example.com http://127.0.0.1:9"),
        "{}",
        e.csp()
    );
    assert!(!e.html.contains("<header"));
    assert!(e.html.contains("data-embed=\"1\""));
    assert!(
        e.link("slot=").is_none_or(|l| l.contains("embed=1")),
        "links stay embedded"
    );
    // The child sets its own: an empty allow-list and its own colour win.
    let (s, _) = c
        .call(
            Method::PATCH,
            &format!("/v2/organizations/{}", t.org_id),
            Some(&t.key),
            Some(json!({"embedAllowedOrigins": [], "brandColor": "#123456"})),
        )
        .await;
    assert_eq!(s, 200);
    let e = w.get(&format!("{path}?embed=1")).await;
    assert!(e.csp().ends_with("frame-ancestors 'none'"), "{}", e.csp());
    assert!(e.html.contains("--accent:#123456"));

    // Languages: Accept-Language, then ?lang= wins; 24-hour clock in German.
    let de = w
        .get_with(&path, &[("accept-language", "de-DE,de;q=0.9,en;q=0.5")])
        .await;
    assert!(de.html.contains("<html lang=\"de\""), "{}", de.html);
    assert!(de.html.contains("Datum wählen"));
    assert!(
        de.html.contains("März")
            || de.html.contains("Januar")
            || de.html.contains("ber ")
            || de.html.contains("i "),
        "a German month"
    );
    assert!(!de.html.contains(" PM<"), "German shows a 24-hour clock");
    let en = w
        .get_with(&format!("{path}?lang=en"), &[("accept-language", "de")])
        .await;
    assert!(en.html.contains("<html lang=\"en\""));
    assert!(en.html.contains("Select a date"));
}

#[tokio::test]
async fn pages_are_rate_limited_per_client_ip() {
    if !have_pg("pages_are_rate_limited_per_client_ip") {
        return;
    }
    use calops::service::ratelimit::policy::{Limit, Limits};
    let limits = Limits {
        availability: Some(Limit {
            requests: 3,
            period: std::time::Duration::from_secs(60),
        }),
        bookings: None,
    };
    let db_url = calops_testkit::fresh_database().await.unwrap();
    let app = TestApp::spawn_with(calops_testkit::app_config(&db_url, None, limits))
        .await
        .unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Limit Org", "UTC").await;
    let w = Web::new(&app);
    let page = format!("/{}/{}", t.org_slug, t.user_slug);
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    for _ in 0..3 {
        assert_eq!(w.get_with(&page, &from("198.51.100.1")).await.status, 200);
    }
    let p = w.get_with(&page, &from("198.51.100.1")).await;
    assert_eq!(p.status, 429, "{}", p.html);
    assert!(p.html.contains("Too many requests"));
    assert!(p.headers.contains_key("retry-after"));
    assert_eq!(
        w.get_with(&page, &from("198.51.100.2")).await.status,
        200,
        "another client is not limited"
    );
}

/// The booker reads its host and event type through the slot cache: what changes shows on
/// the next page load, whoever wrote it. A slot booked through the page is gone when the page
/// is loaded again; an event type renamed through the API shows at once; an organization
/// renamed by another writer (here SQL, as another replica would) shows as soon as its
/// notification arrives (migration 12's trigger).
#[tokio::test]
async fn the_booker_shows_a_booking_and_renames_on_the_next_load() {
    if !have_pg("the_booker_shows_a_booking_and_renames_on_the_next_load") {
        return;
    }
    let app = TestApp::spawn().await.unwrap();
    let c = Client::new(&app);
    let t = tenant(&c, "Fresh Org", "UTC").await;
    let w = Web::new(&app);
    let (form_page, slot) = choose_slot(&w, &t.booker(), "&tz=UTC").await;
    let booked = param(&slot, "slot").unwrap();
    let day = format!(
        "{}?month={}&date={}&tz=UTC",
        t.booker(),
        param(&slot, "month").unwrap_or_else(|| booked[..7].to_string()),
        param(&slot, "date").unwrap()
    );
    let slots_of = |p: &Page| -> Vec<String> {
        p.html
            .split("href=\"")
            .skip(1)
            .map(|s| unescape(s.split('"').next().unwrap_or("")))
            .filter_map(|h| param(&h, "slot"))
            .collect()
    };
    let before = w.get(&day).await;
    assert_eq!(before.status, 200, "{}", before.html);
    assert!(slots_of(&before).contains(&booked), "{}", before.html);

    let (action, mut fields) = form_page.form();
    fields.insert("name".into(), "Ann Lee".into());
    fields.insert("email".into(), "ann@example.com".into());
    let r = w.post(&action, &fields).await;
    assert_eq!(r.status, 303, "{}", r.html);
    let after = w.get(&day).await;
    assert_eq!(after.status, 200, "{}", after.html);
    let left = slots_of(&after);
    assert!(
        !left.is_empty(),
        "other slots of the day stay: {}",
        after.html
    );
    assert!(!left.contains(&booked), "the booked slot is gone: {left:?}");

    // Renamed through the API: the next load shows it.
    let d = db(&app.database_url).await;
    let et_id: i64 = d
        .query_one(
            "SELECT id FROM event_types WHERE org_id = $1 AND slug = 'call'",
            &[&t.org_id],
        )
        .await
        .unwrap()
        .get(0);
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v2/event-types/{et_id}"),
            Some(&t.key),
            Some(json!({"title": "Renamed Call"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let p = w.get(&day).await;
    assert!(p.html.contains("<h1>Renamed Call</h1>"), "{}", p.html);

    // Renamed by another writer: shown once the notification arrives (well under 10 s).
    d.execute(
        "UPDATE organizations SET name = 'Renamed Org' WHERE id = $1",
        &[&t.org_id],
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let p = w.get(&day).await;
        if p.html.contains("Renamed Org") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the organization's new name never showed: {}",
            p.html
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
