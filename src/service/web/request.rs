//! What every page handler shares: the invitee's preferences from the query (language, clock,
//! time zone, embedding), the client's IP and its rate limit, the form body, and HTML
//! responses with their security headers.

use super::brand::Branding;
use super::i18n::{self, Lang, LANGS};
use super::view::{self, Frame, LangLink};
use crate::service::domain::hours::time_zone;
use crate::service::ratelimit::policy::Class;
use crate::service::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use jiff::tz::TimeZone;
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The largest form the pages accept (bytes); a booking form is well under 8 KiB.
pub const MAX_FORM_BYTES: usize = 32 * 1024;

/// A hidden form field.
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: String,
    pub value: String,
}

/// The invitee's choices, carried from page to page in the query (and in hidden fields).
#[derive(Debug, Clone)]
pub struct Prefs {
    pub lang: Lang,
    lang_chosen: bool,
    pub hour12: bool,
    hour_chosen: bool,
    pub embed: bool,
    /// A valid `tz` the invitee chose (or the browser's, set by the page's script).
    pub tz: Option<(String, TimeZone)>,
    pub params: HashMap<String, String>,
}

/// `application/x-www-form-urlencoded` pairs (a repeated name keeps its first value).
pub fn pairs(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

impl Prefs {
    /// From the query (or a posted form's fields) and the request headers.
    pub fn new(params: HashMap<String, String>, headers: &HeaderMap) -> Prefs {
        let get = |k: &str| params.get(k).map(|s| s.trim()).filter(|s| !s.is_empty());
        let lang_q = get("lang").and_then(Lang::from_code);
        let lang = Lang::negotiate(
            lang_q.map(Lang::code),
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let hour = match get("h") {
            Some("12") => Some(true),
            Some("24") => Some(false),
            _ => None,
        };
        let tz = get("tz").and_then(|n| time_zone(n).map(|z| (n.to_string(), z)));
        Prefs {
            lang,
            lang_chosen: lang_q.is_some(),
            hour12: hour.unwrap_or(lang.default_hour12()),
            hour_chosen: hour.is_some(),
            embed: get("embed") == Some("1"),
            tz,
            params,
        }
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.params
            .get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    /// The preferences to carry on (language and clock only when chosen, embedding, zone).
    fn kept(&self) -> Vec<(&'static str, String)> {
        let mut v = Vec::new();
        if self.lang_chosen {
            v.push(("lang", self.lang.code().to_string()));
        }
        if self.hour_chosen {
            v.push(("h", if self.hour12 { "12" } else { "24" }.to_string()));
        }
        if self.embed {
            v.push(("embed", "1".to_string()));
        }
        if let Some((name, _)) = &self.tz {
            v.push(("tz", name.clone()));
        }
        v
    }

    /// A link to `path` that keeps the preferences, with `extra` parameters (which win).
    pub fn href(&self, path: &str, extra: &[(&str, String)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.kept() {
            if !extra.iter().any(|(e, _)| *e == k) {
                q.append_pair(k, &v);
            }
        }
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        let q = q.finish();
        if q.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{q}")
        }
    }

    /// The preferences as hidden fields (without the zone, which forms carry themselves).
    pub fn hidden(&self) -> Vec<Field> {
        self.kept()
            .into_iter()
            .filter(|(k, _)| *k != "tz")
            .map(|(name, value)| Field {
                name: name.into(),
                value,
            })
            .collect()
    }

    /// The frame of a page at `path` (its language switch keeps `extra`).
    pub fn frame(&self, brand: Branding, path: &str, extra: &[(&str, String)]) -> Frame {
        let langs = LANGS
            .iter()
            .map(|&l| {
                let mut e = extra.to_vec();
                e.push(("lang", l.code().to_string()));
                LangLink {
                    code: l.code(),
                    name: l.name(),
                    href: self.href(path, &e),
                    current: l == self.lang,
                }
            })
            .collect();
        Frame {
            lang: self.lang.code(),
            brand,
            embed: self.embed,
            tz_chosen: self.tz.is_some(),
            langs,
        }
    }

    pub fn t(&self, id: &str) -> String {
        i18n::message(self.lang, id, &[])
    }

    pub fn t_with(&self, id: &str, args: &[(&str, String)]) -> String {
        i18n::message(self.lang, id, args)
    }
}

/// The client's IP: the peer's, or, when the peer is a proxy on a private or loopback
/// address (the load balancer), the last address it appended to `X-Forwarded-For`.
pub fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>) -> String {
    let proxied = peer.is_none_or(|p| match p {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
    });
    if proxied {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    peer.map_or_else(|| "unknown".into(), |p| p.to_string())
}

/// The client's IP as an extractor (never fails).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(client_ip(&parts.headers, peer)))
    }
}

/// Count a request of `class` from `ip`; the 429 page when it is over the limit.
pub async fn rate_limit(
    state: &AppState,
    class: Class,
    ip: &ClientIp,
    prefs: &Prefs,
) -> Result<(), Response> {
    let Some((d, _)) = state
        .rate_limiter
        .check(class, &format!("ip:{}", ip.0))
        .await
    else {
        return Ok(());
    };
    if d.allowed {
        return Ok(());
    }
    state.metrics.rate_limited(class.as_str());
    let mut res = message(
        StatusCode::TOO_MANY_REQUESTS,
        prefs,
        super::brand::effective(&[]),
        &prefs.t("too-many-title"),
        &[prefs.t_with("too-many-body", &[("secs", d.reset_secs.to_string())])],
        None,
    );
    if let Ok(v) = HeaderValue::from_str(&d.reset_secs.max(1).to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Err(res)
}

/// A POST from another site (by its `Origin`) is refused; forms of the pages always post to
/// their own origin, also inside an iframe. A missing or opaque (`null`) origin, which
/// privacy settings and sandboxed frames send, is left to the form token.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
    else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    url::Url::parse(origin)
        .ok()
        .and_then(|u| {
            let h = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

/// An HTML response with the page's CSP and the headers every page sends.
pub fn html(status: StatusCode, r: view::Rendered) -> Response {
    let mut res = (status, r.html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&r.csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Links carry tokens: never in a Referer to another site, never in a shared cache.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    res
}

/// Render `template`; a page that fails to render is logged and answered with a plain 500.
pub fn page(status: StatusCode, template: &str, frame: &Frame, ctx: impl Serialize) -> Response {
    match view::render(template, frame, ctx) {
        Ok(r) => html(status, r),
        Err(e) => {
            tracing::error!(error = %e, "a booking page did not render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

#[derive(Serialize)]
struct Link {
    href: String,
    text: String,
}

/// A page with a heading, paragraphs and an optional link.
pub fn message(
    status: StatusCode,
    prefs: &Prefs,
    brand: Branding,
    heading: &str,
    paragraphs: &[String],
    link: Option<(String, String)>,
) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        heading: &'a str,
        paragraphs: &'a [String],
        link: Option<Link>,
    }
    let frame = prefs.frame(brand, "", &[]);
    page(
        status,
        "message.html",
        &frame,
        Ctx {
            heading,
            paragraphs,
            link: link.map(|(href, text)| Link { href, text }),
        },
    )
}

/// The 404 page.
pub fn not_found(prefs: &Prefs) -> Response {
    message(
        StatusCode::NOT_FOUND,
        prefs,
        super::brand::effective(&[]),
        &prefs.t("not-found-title"),
        &[prefs.t("not-found-body")],
        None,
    )
}

/// The page for a link whose token is missing, altered, expired or for another booking.
pub fn invalid_link(prefs: &Prefs) -> Response {
    message(
        StatusCode::NOT_FOUND,
        prefs,
        super::brand::effective(&[]),
        &prefs.t("link-invalid-title"),
        &[prefs.t("link-invalid-body")],
        None,
    )
}

/// The page for an error of ours (logged, not shown).
pub fn internal(prefs: &Prefs, what: &str, e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "booking pages: {what}");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        prefs,
        super::brand::effective(&[]),
        &prefs.t("error-title"),
        &[prefs.t("error-body")],
        None,
    )
}

/// A 303 to `location` (after a form was handled).
pub fn see_other(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_ip_is_the_peer_unless_the_peer_is_a_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().unwrap(),
        );
        let lb: IpAddr = "10.0.1.5".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(&h, Some(lb)), "198.51.100.7");
        assert_eq!(
            client_ip(&h, Some(outside)),
            "192.0.2.1",
            "a spoofed header from outside"
        );
        assert_eq!(client_ip(&HeaderMap::new(), Some(lb)), "10.0.1.5");
    }

    #[test]
    fn links_keep_the_invitees_choices() {
        let p = Prefs::new(
            pairs("lang=de&h=24&embed=1&tz=Australia%2FSydney&junk=x"),
            &HeaderMap::new(),
        );
        assert_eq!(p.lang, Lang::De);
        assert!(!p.hour12);
        assert_eq!(
            p.href("/a/b", &[("date", "2026-04-05".into())]),
            "/a/b?lang=de&h=24&embed=1&tz=Australia%2FSydney&date=2026-04-05"
        );
        let plain = Prefs::new(pairs("tz=Not%2FAZone"), &HeaderMap::new());
        assert!(plain.tz.is_none());
        assert_eq!(plain.href("/a/b", &[]), "/a/b");
    }

    #[test]
    fn only_same_origin_posts_pass() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "book.example.com".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://book.example.com".parse().unwrap());
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(
            header::ORIGIN,
            "https://book.example.com.evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(same_origin(&h), "opaque: the form token decides");
    }
}
