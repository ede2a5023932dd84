//! The public pages: `/` (points to the demo page), `/{org}/{host}` (a host's event types),
//! `/{org}/{host}/{eventType}` (the booker: month calendar, the day's slots in the invitee's
//! zone, the form) and its `POST .../book`.
//!
//! `{org}` is an organization's slug path: a top-level organization's slug, then a
//! sub-account's slug per level, joined by dots (`acme.dental`). Slugs never hold dots.

use super::brand;
use super::i18n::{self, Lang};
use super::links::{booking_path, self_service_urls};
use super::month;
use super::request::{
    self, internal, not_found, page, pairs, rate_limit, see_other, ClientIp, Field, Prefs,
};
use super::token;
use super::view;
use crate::service::api::bookings::{self as api_bookings, Attendee, Booked, CreateBooking};
use crate::service::ratelimit::policy::Class;
use crate::service::state::AppState;
use crate::service::store::bookings::IdempotencyKey;
use crate::service::store::{EventType, Org, User};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

/// Most guests one booking form may name.
pub const MAX_GUESTS: usize = 10;
pub const MAX_NAME: usize = 200;
pub const MAX_EMAIL: usize = 254;
pub const MAX_NOTES: usize = 2000;
/// How many free times are offered when the chosen one was taken.
pub const NEAREST: usize = 6;

fn prefs_of(query: Option<String>, headers: &HeaderMap) -> Prefs {
    Prefs::new(pairs(query.as_deref().unwrap_or("")), headers)
}

fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The slug path of `chain` (nearest first): `top.child.grandchild`.
pub fn org_path(chain: &[Org]) -> String {
    let mut slugs: Vec<&str> = chain.iter().map(|o| o.slug.as_str()).collect();
    slugs.reverse();
    slugs.join(".")
}

/// A host's page context: the organization chain (nearest first) and the host.
pub struct Host {
    pub chain: Vec<Org>,
    pub user: User,
}

impl Host {
    pub fn org_id(&self) -> i64 {
        self.chain[0].id
    }
}

/// `/v2/...` belongs to the API: a path there that the API does not have gets the API's
/// JSON 404, not a page.
async fn api_path(org: &str) -> Option<Response> {
    if org == "v2" {
        use axum::response::IntoResponse;
        return Some(crate::service::api::not_found().await.into_response());
    }
    None
}

/// The organization at `org` and its host `user`; `None` when either does not exist (or a
/// slug is not a slug, which never reaches the database).
async fn host(state: &AppState, org: &str, user: &str) -> Result<Option<Host>, Response> {
    if let Some(r) = api_path(org).await {
        return Err(r);
    }
    let path: Vec<String> = org.split('.').map(str::to_string).collect();
    if !path.iter().all(|s| slug_ok(s)) || !slug_ok(user) {
        return Ok(None);
    }
    let prefs = Prefs::new(HashMap::new(), &HeaderMap::new());
    let chain = state
        .store
        .org_chain_by_path(&path)
        .await
        .map_err(|e| internal(&prefs, "reading an organization", e))?;
    let Some(first) = chain.first() else {
        return Ok(None);
    };
    let user = state
        .store
        .user_by_slug(first.id, user)
        .await
        .map_err(|e| internal(&prefs, "reading a host", e))?;
    Ok(user.map(|user| Host { chain, user }))
}

#[derive(Serialize)]
struct EventTypeLink {
    href: String,
    title: String,
    length: i32,
    description: Option<String>,
}

/// `GET /`: where the demo booking page is.
pub async fn home(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    let prefs = prefs_of(q, &headers);
    let demo = async {
        let Some(org) = state.store.demo_org().await? else {
            return Ok(None);
        };
        let chain = state.store.org_chain(org.id).await?;
        Ok::<_, crate::service::store::StoreError>(
            state
                .store
                .first_user(org.id)
                .await?
                .map(|u| format!("/{}/{}", org_path(&chain), u.slug)),
        )
    };
    let demo_href = match demo.await {
        Ok(d) => d,
        Err(e) => return internal(&prefs, "finding the demo page", e),
    };
    let frame = prefs.frame(brand::effective(&[]), "/", &[]);
    page(
        StatusCode::OK,
        "home.html",
        &frame,
        json!({ "demo_href": demo_href }),
    )
}

/// `GET /{org}/{host}`: the host's event types.
pub async fn profile(
    State(state): State<AppState>,
    Path((org, user)): Path<(String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let prefs = prefs_of(q, &headers);
    if let Err(r) = rate_limit(&state, Class::Availability, &ip, &prefs).await {
        return r;
    }
    let h = match host(&state, &org, &user).await {
        Ok(Some(h)) => h,
        Ok(None) => return not_found(&prefs),
        Err(r) => return r,
    };
    let types = match state.store.user_event_types(h.org_id(), h.user.id).await {
        Ok(t) => t,
        Err(e) => return internal(&prefs, "listing event types", e),
    };
    let base = format!("/{}/{}", org_path(&h.chain), h.user.slug);
    let event_types: Vec<EventTypeLink> = types
        .into_iter()
        .map(|e| EventTypeLink {
            href: prefs.href(&format!("{base}/{}", e.slug), &[]),
            title: e.title,
            length: e.length_minutes,
            description: e.description,
        })
        .collect();
    let frame = prefs.frame(brand::effective(&h.chain), &base, &[]);
    page(
        StatusCode::OK,
        "profile.html",
        &frame,
        json!({ "host": h.user.name, "event_types": event_types }),
    )
}

/// The booking form's values and problems.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FormState {
    pub name: String,
    pub email: String,
    pub notes: String,
    pub guests: String,
    pub idem: String,
    pub errors: HashMap<&'static str, String>,
    /// A problem with the whole form.
    pub error: Option<String>,
}

/// What the booker shows besides the event type: rescheduling an existing booking, the slot
/// chosen, the form's state, and a slot that was just taken.
pub struct Booker<'a> {
    pub prefs: &'a Prefs,
    pub chain: &'a [Org],
    pub event_type: &'a EventType,
    pub host_name: &'a str,
    pub host_tz: &'a str,
    /// The booker's own path (its links) and where its form posts.
    pub self_path: String,
    pub action: String,
    /// Parameters every link and form of the page keeps (the reschedule link token).
    pub keep: Vec<(&'static str, String)>,
    /// The booking being moved (its start).
    pub rescheduling: Option<Timestamp>,
    pub chosen: Option<i64>,
    pub form: FormState,
    pub taken: Option<i64>,
    pub status: StatusCode,
}

#[derive(Serialize)]
struct SlotLink {
    href: String,
    label: String,
    selected: bool,
}

#[derive(Serialize)]
struct DayCell {
    #[serde(flatten)]
    cell: month::Cell,
    href: Option<String>,
    label: String,
}

#[derive(Serialize)]
struct Weekday {
    short: &'static str,
    long: &'static str,
}

#[derive(Serialize)]
struct Chosen {
    iso: String,
    label: String,
    back: String,
}

#[derive(Serialize)]
struct FormView {
    action: String,
    csrf: String,
    hidden: Vec<Field>,
    name: String,
    email: String,
    notes: String,
    guests: String,
    errors: HashMap<&'static str, String>,
    error: Option<String>,
}

fn iso(t: i64) -> String {
    Timestamp::from_second(t)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// `YYYY-MM` in the years a booker can show (others: none, so the current month is shown).
fn month_of(text: &str) -> Option<(i16, i8)> {
    let (y, m) = text.split_once('-')?;
    let (y, m): (i16, i8) = (y.parse().ok()?, m.parse().ok()?);
    if !(2000..=2200).contains(&y) {
        return None;
    }
    Date::new(y, m, 1).ok().map(|_| (y, m))
}

/// The start of local date `d` in `tz` (Unix seconds).
fn day_start(d: Date, tz: &TimeZone) -> i64 {
    tz.to_zoned(d.to_datetime(jiff::civil::Time::midnight()))
        .map(|z| z.timestamp().as_second())
        .unwrap_or(0)
}

/// Render the booker (for booking, or for moving a booking).
pub async fn render_booker(state: &AppState, b: Booker<'_>) -> Response {
    let prefs = b.prefs;
    let (tz_name, tz) = match &prefs.tz {
        Some((n, z)) => (n.clone(), z.clone()),
        None => (
            b.host_tz.to_string(),
            TimeZone::get(b.host_tz).unwrap_or(TimeZone::UTC),
        ),
    };
    let now = Timestamp::now();
    let today = now.to_zoned(tz.clone()).date();
    let focus = b.taken.or(b.chosen);
    let focus_date = focus.map(|t| view::local(t, &tz, prefs.hour12).0);
    let asked_date = prefs
        .get("date")
        .and_then(|d| d.parse::<Date>().ok())
        .filter(|d| (2000..=2200).contains(&d.year()));
    let (year, mon) = focus_date
        .map(|d| (d.year(), d.month()))
        .or_else(|| prefs.get("month").and_then(month_of))
        .or_else(|| asked_date.map(|d| (d.year(), d.month())))
        // Moving a booking starts at its month (when that is still to come).
        .or_else(|| {
            b.rescheduling
                .filter(|t| *t > now)
                .map(|t| t.to_zoned(tz.clone()).date())
                .map(|d| (d.year(), d.month()))
        })
        .unwrap_or((today.year(), today.month()));
    let first = Date::new(year, mon, 1).unwrap_or(today.first_of_month());
    let next_first = first.checked_add(1.month()).unwrap_or(first);
    let org = b.chain.first().map_or(0, |o| o.id);
    let found = crate::service::api::slots::find(
        state,
        org,
        b.event_type.id,
        day_start(first, &tz),
        day_start(next_first, &tz),
        None,
    )
    .await;
    let slots = match found {
        Ok(Some((s, _))) => s,
        Ok(None) => return not_found(prefs),
        Err(e) => return internal(prefs, "finding slots", e.message),
    };
    let by_date = view::by_local_date(&slots, &tz);
    let free: BTreeSet<Date> = by_date.keys().copied().collect();
    let selected = focus_date
        .or(asked_date.filter(|d| d.year() == year && d.month() == mon))
        .or_else(|| free.iter().next().copied());
    let keep = &b.keep;
    let with = |extra: &[(&'static str, String)]| {
        let mut e = keep.clone();
        e.extend_from_slice(extra);
        prefs.href(&b.self_path, &e)
    };
    let month_param = format!("{year:04}-{mon:02}");
    // A chosen slot must still be free; otherwise it counts as taken.
    let mut taken = b.taken;
    let chosen = match b.chosen {
        Some(t) if slots.contains(&t) => Some(t),
        Some(t) => {
            taken = Some(t);
            None
        }
        None => None,
    };
    let nearest = match taken {
        None => Vec::new(),
        Some(t) => {
            let around = crate::service::api::slots::find(
                state,
                org,
                b.event_type.id,
                t - 3 * 86_400,
                t + 4 * 86_400,
                None,
            )
            .await;
            let pool = match around {
                Ok(Some((s, _))) => s,
                _ => Vec::new(),
            };
            view::nearest(&pool, t, NEAREST)
                .into_iter()
                .map(|s| {
                    let (d, time) = view::local(s, &tz, prefs.hour12);
                    SlotLink {
                        href: with(&[("date", d.to_string()), ("slot", iso(s))]) + "#form",
                        label: format!("{}, {time}", i18n::long_date(prefs.lang, d)),
                        selected: false,
                    }
                })
                .collect()
        }
    };
    let weeks: Vec<Vec<DayCell>> =
        month::weeks(year, mon, prefs.lang.week_start(), &free, selected, today)
            .into_iter()
            .map(|w| {
                w.into_iter()
                    .map(|c| {
                        let d: Option<Date> = c.date.parse().ok();
                        DayCell {
                            href: (c.free).then(|| {
                                with(&[("month", month_param.clone()), ("date", c.date.clone())])
                            }),
                            label: d
                                .map(|d| i18n::long_date(prefs.lang, d))
                                .unwrap_or_default(),
                            cell: c,
                        }
                    })
                    .collect()
            })
            .collect();
    let day_slots: Vec<SlotLink> = selected
        .and_then(|d| by_date.get(&d))
        .map(|v| {
            v.iter()
                .map(|&s| {
                    let (d, label) = view::local(s, &tz, prefs.hour12);
                    SlotLink {
                        href: with(&[("date", d.to_string()), ("slot", iso(s))]) + "#form",
                        label,
                        selected: chosen == Some(s),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let ((py, pm), (ny, nm)) = month::neighbours(year, mon);
    let mut start_of_week = prefs.lang.week_start();
    let weekdays: Vec<Weekday> = (0..7)
        .map(|_| {
            let w = Weekday {
                short: i18n::weekday_short(prefs.lang, start_of_week),
                long: i18n::weekday_name(prefs.lang, start_of_week),
            };
            start_of_week = start_of_week.wrapping_add(1);
            w
        })
        .collect();
    let key = state.page_key.bytes();
    let form = chosen.map(|_| {
        let mut hidden = prefs.hidden();
        hidden.push(Field {
            name: "tz".into(),
            value: tz_name.clone(),
        });
        for (k, v) in keep {
            hidden.push(Field {
                name: (*k).into(),
                value: v.clone(),
            });
        }
        let idem = if b.form.idem.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            b.form.idem.clone()
        };
        hidden.push(Field {
            name: "idem".into(),
            value: idem,
        });
        FormView {
            action: b.action.clone(),
            csrf: token::sign_form(key, &b.action, now.as_second() + token::FORM_TTL_SECS),
            hidden,
            name: b.form.name.clone(),
            email: b.form.email.clone(),
            notes: b.form.notes.clone(),
            guests: b.form.guests.clone(),
            errors: b.form.errors.clone(),
            error: b.form.error.clone(),
        }
    });
    let chosen_view = chosen.map(|t| {
        let (d, _) = view::local(t, &tz, prefs.hour12);
        Chosen {
            iso: iso(t),
            label: view::long_moment(
                prefs.lang,
                Timestamp::from_second(t).unwrap_or(now),
                &tz,
                prefs.hour12,
            ),
            back: with(&[("month", month_param.clone()), ("date", d.to_string())]),
        }
    });
    // The zone select: the zones of the time-zone database, and the current one if missing.
    let zone_options = match view::zone_options(&tz_name) {
        Ok(z) => z,
        Err(e) => return internal(prefs, "rendering the zone select", e),
    };
    let mut keep_fields: Vec<Field> = prefs.hidden();
    for (k, v) in keep.iter().chain(
        [
            ("month", month_param.clone()),
            ("date", selected.map(|d| d.to_string()).unwrap_or_default()),
        ]
        .iter(),
    ) {
        if !v.is_empty() {
            keep_fields.push(Field {
                name: (*k).into(),
                value: v.clone(),
            });
        }
    }
    let heading = match b.rescheduling {
        Some(_) => prefs.t_with("reschedule-title", &[("title", b.event_type.title.clone())]),
        None => b.event_type.title.clone(),
    };
    let ctx = minijinja::context! {
        heading => heading,
        host => b.host_name,
        length => b.event_type.length_minutes,
        description => b.event_type.description,
        reschedule => b.rescheduling.is_some(),
        current => b.rescheduling.map(|t| view::long_moment(prefs.lang, t, &tz, prefs.hour12)),
        taken => taken.is_some(),
        nearest => nearest,
        self_path => b.self_path,
        keep => keep_fields,
        tz => tz_name,
        zone_options => minijinja::Value::from_safe_string(zone_options),
        hour12 => prefs.hour12,
        h12_href => with(&[("h", "12".into()), ("month", month_param.clone())]),
        h24_href => with(&[("h", "24".into()), ("month", month_param.clone())]),
        prev_href => with(&[("month", format!("{py:04}-{pm:02}"))]),
        next_href => with(&[("month", format!("{ny:04}-{nm:02}"))]),
        month_title => i18n::month_title(prefs.lang, year, mon),
        weekdays => weekdays,
        weeks => weeks,
        any_free => !free.is_empty(),
        day_label => selected.map(|d| i18n::long_date(prefs.lang, d)),
        slots => day_slots,
        chosen => chosen_view,
        form => form,
    };
    let mut lang_keep = b.keep.clone();
    lang_keep.push(("month", month_param));
    if let Some(d) = selected {
        lang_keep.push(("date", d.to_string()));
    }
    let frame = prefs.frame(brand::effective(b.chain), &b.self_path, &lang_keep);
    let status = if taken.is_some() && b.status == StatusCode::OK {
        StatusCode::CONFLICT
    } else {
        b.status
    };
    page(status, "booker.html", &frame, ctx)
}

/// The host and event type of a booker path; a response when there is none. Read through
/// the slot cache (`Store::booker`), so a booker whose slots are cached reads nothing from
/// the database.
async fn event_type_of(
    state: &AppState,
    prefs: &Prefs,
    org: &str,
    user: &str,
    et: &str,
) -> Result<(Host, EventType), Response> {
    if let Some(r) = api_path(org).await {
        return Err(r);
    }
    let path: Vec<String> = org.split('.').map(str::to_string).collect();
    if !path.iter().all(|s| slug_ok(s)) || !slug_ok(user) || !slug_ok(et) {
        return Err(not_found(prefs));
    }
    match state.store.booker(&path, user, et).await {
        Ok(Some(b)) => Ok((
            Host {
                chain: b.chain.clone(),
                user: b.user.clone(),
            },
            b.event_type.clone(),
        )),
        Ok(None) => Err(not_found(prefs)),
        Err(e) => Err(internal(prefs, "reading a booking page's host", e)),
    }
}

/// `GET /{org}/{host}/{eventType}`: the booker.
pub async fn booker(
    State(state): State<AppState>,
    Path((org, user, et)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    ip: ClientIp,
) -> Response {
    let prefs = prefs_of(q, &headers);
    if let Err(r) = rate_limit(&state, Class::Availability, &ip, &prefs).await {
        return r;
    }
    let (h, event_type) = match event_type_of(&state, &prefs, &org, &user, &et).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let self_path = format!(
        "/{}/{}/{}",
        org_path(&h.chain),
        h.user.slug,
        event_type.slug
    );
    let chosen = prefs
        .get("slot")
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map(|t| t.as_second());
    render_booker(
        &state,
        Booker {
            prefs: &prefs,
            chain: &h.chain,
            event_type: &event_type,
            host_name: &h.user.name,
            host_tz: &h.user.time_zone,
            action: format!("{self_path}/book"),
            self_path,
            keep: Vec::new(),
            rescheduling: None,
            chosen,
            form: FormState::default(),
            taken: None,
            status: StatusCode::OK,
        },
    )
    .await
}

fn valid_email(s: &str) -> bool {
    s.len() <= MAX_EMAIL && crate::service::api::input::valid_email(s)
}

/// An address whose only fault is a local part with letters outside ASCII (`domain::address`).
fn non_ascii_local_part(s: &str) -> bool {
    s.len() <= MAX_EMAIL
        && crate::service::domain::address::check(s)
            == Err(crate::service::domain::address::Refusal::NonAsciiLocalPart)
}

/// Check the booking form; the values as typed and a message per field in trouble.
pub fn check_form(f: &HashMap<String, String>, lang: Lang) -> (FormState, Vec<String>) {
    let get = |k: &str| f.get(k).map(|s| s.trim().to_string()).unwrap_or_default();
    let mut st = FormState {
        name: get("name"),
        email: get("email"),
        notes: get("notes"),
        guests: get("guests"),
        idem: get("idem"),
        ..FormState::default()
    };
    let t = |id: &str, args: &[(&str, String)]| i18n::message(lang, id, args);
    let too_long = |n: usize| t("err-too-long", &[("n", n.to_string())]);
    if st.name.is_empty() {
        st.errors.insert("name", t("err-required", &[]));
    } else if st.name.chars().count() > MAX_NAME {
        st.errors.insert("name", too_long(MAX_NAME));
    }
    if st.email.is_empty() {
        st.errors.insert("email", t("err-required", &[]));
    } else if non_ascii_local_part(&st.email) {
        st.errors.insert("email", t("err-email-ascii", &[]));
    } else if !valid_email(&st.email) {
        st.errors.insert("email", t("err-email", &[]));
    }
    if st.notes.chars().count() > MAX_NOTES {
        st.errors.insert("notes", too_long(MAX_NOTES));
    }
    let guests: Vec<String> = st
        .guests
        .split([',', ';', ' ', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(g) = guests.iter().find(|g| non_ascii_local_part(g)) {
        st.errors
            .insert("guests", t("err-guests-ascii", &[("address", g.clone())]));
    } else if guests.len() > MAX_GUESTS || !guests.iter().all(|g| valid_email(g)) {
        st.errors
            .insert("guests", t("err-guests", &[("n", MAX_GUESTS.to_string())]));
    }
    // Nothing but letters of an idempotency key (a UUID) is kept.
    if st.idem.len() > 64
        || !st
            .idem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        st.idem.clear();
    }
    if !st.errors.is_empty() {
        st.error = Some(t("fix-fields", &[]));
    }
    (st, guests)
}

/// `POST /{org}/{host}/{eventType}/book`: book the chosen slot; on success, 303 to the
/// booking's page. A slot taken meanwhile re-renders the booker with the nearest free times.
pub async fn book(
    State(state): State<AppState>,
    Path((org, user, et)): Path<(String, String, String)>,
    headers: HeaderMap,
    ip: ClientIp,
    body: Bytes,
) -> Response {
    let f = pairs(&String::from_utf8_lossy(&body));
    let prefs = Prefs::new(f.clone(), &headers);
    if let Err(r) = rate_limit(&state, Class::Bookings, &ip, &prefs).await {
        return r;
    }
    if body.len() > request::MAX_FORM_BYTES {
        return request::message(
            StatusCode::PAYLOAD_TOO_LARGE,
            &prefs,
            brand::effective(&[]),
            &prefs.t("error-title"),
            &[prefs.t("too-large")],
            None,
        );
    }
    let (h, event_type) = match event_type_of(&state, &prefs, &org, &user, &et).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let self_path = format!(
        "/{}/{}/{}",
        org_path(&h.chain),
        h.user.slug,
        event_type.slug
    );
    let action = format!("{self_path}/book");
    let start = f
        .get("start")
        .and_then(|s| s.trim().parse::<Timestamp>().ok());
    let (mut form, guests) = check_form(&f, prefs.lang);
    let now = Timestamp::now().as_second();
    let csrf = f.get("csrf").map(String::as_str).unwrap_or("");
    let forged = !request::same_origin(&headers)
        || token::verify_form(state.page_key.bytes(), &action, csrf, now).is_err();
    let booker = |form: FormState, chosen: Option<i64>, taken: Option<i64>, status| Booker {
        prefs: &prefs,
        chain: &h.chain,
        event_type: &event_type,
        host_name: &h.user.name,
        host_tz: &h.user.time_zone,
        self_path: self_path.clone(),
        action: action.clone(),
        keep: Vec::new(),
        rescheduling: None,
        chosen,
        form,
        taken,
        status,
    };
    let Some(start) = start else {
        // No slot in the form: back to the calendar.
        return render_booker(&state, booker(form, None, None, StatusCode::BAD_REQUEST)).await;
    };
    let start_s = start.as_second();
    if forged {
        form.error = Some(prefs.t("form-expired"));
        return render_booker(
            &state,
            booker(form, Some(start_s), None, StatusCode::FORBIDDEN),
        )
        .await;
    }
    if !form.errors.is_empty() {
        return render_booker(
            &state,
            booker(form, Some(start_s), None, StatusCode::UNPROCESSABLE_ENTITY),
        )
        .await;
    }
    let tz_name = prefs
        .tz
        .as_ref()
        .map_or(h.user.time_zone.clone(), |(n, _)| n.clone());
    let req = CreateBooking {
        start: start.to_string(),
        event_type_id: event_type.id,
        attendee: Attendee {
            name: form.name.clone(),
            email: form.email.clone(),
            time_zone: tz_name.clone(),
            language: Some(prefs.lang.code().to_string()),
        },
        guests,
        length_in_minutes: None,
        metadata: Some(json!({"source": "booking-page", "notes": form.notes})),
        reservation_uid: None,
    };
    let start = match api_bookings::validate_create(&req) {
        Ok(s) => s,
        Err(e) => {
            form.error = Some(prefs.t("fix-fields"));
            tracing::info!(error = %e.message, "booking page: the API refused the form");
            return render_booker(
                &state,
                booker(form, Some(start_s), None, StatusCode::UNPROCESSABLE_ENTITY),
            )
            .await;
        }
    };
    // A second submit of the same form (same key, same fields) books once.
    let idem = (!form.idem.is_empty()).then(|| {
        let mut hasher = Sha256::new();
        for part in [
            start.to_string(),
            req.attendee.name.clone(),
            req.attendee.email.clone(),
            tz_name.clone(),
            form.notes.clone(),
            req.guests.join(","),
        ] {
            hasher.update((part.len() as u32).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        IdempotencyKey {
            key: format!("page:{}:{}", event_type.id, form.idem),
            request_hash: hasher.finalize().to_vec(),
        }
    });
    let uid_end = match api_bookings::book(&state, h.org_id(), &req, start, idem).await {
        Ok(Booked::Created(b)) => Some((b.uid, b.end)),
        Ok(Booked::Replayed(r)) => {
            let uid = r.body["uid"].as_str().and_then(|u| u.parse().ok());
            let end = r.body["end"].as_str().and_then(|e| e.parse().ok());
            uid.zip(end)
        }
        Err(e) if matches!(e.code, "booking_conflict" | "slot_unavailable") => {
            return render_booker(
                &state,
                booker(form, None, Some(start_s), StatusCode::CONFLICT),
            )
            .await;
        }
        Err(e) if e.status.is_client_error() => {
            tracing::info!(code = e.code, error = %e.message, "booking page: booking refused");
            form.error = Some(prefs.t("error-body"));
            return render_booker(&state, booker(form, Some(start_s), None, e.status)).await;
        }
        Err(e) => return internal(&prefs, "booking", e.message),
    };
    let Some((uid, end)) = uid_end else {
        return internal(&prefs, "booking", "a replayed booking has no uid");
    };
    let urls = self_service_urls("", state.page_key.bytes(), uid, h.org_id(), end);
    let t = urls.view.split("?t=").nth(1).unwrap_or("").to_string();
    see_other(&prefs.href(
        &booking_path(uid, ""),
        &[("t", t), ("tz", tz_name), ("new", "1".into())],
    ))
}
