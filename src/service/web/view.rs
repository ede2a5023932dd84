//! Rendering (pure): the embedded templates (minijinja, every value escaped for HTML unless
//! a template marks it safe, which only the CSS and script constants are, and the time-zone
//! select's options, which `zones.html` escaped when they were rendered), the stylesheet and
//! the script, the Content-Security-Policy that allows exactly those two, and the slot lists
//! of the booker in the invitee's time zone.

use super::brand::Branding;
use super::i18n::{self, Lang};
use base64::Engine;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use minijinja::value::Kwargs;
use minijinja::{Environment, State, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::LazyLock;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("message.html", include_str!("templates/message.html")),
    ("profile.html", include_str!("templates/profile.html")),
    ("booker.html", include_str!("templates/booker.html")),
    ("booking.html", include_str!("templates/booking.html")),
    ("cancel.html", include_str!("templates/cancel.html")),
    ("home.html", include_str!("templates/home.html")),
    ("zones.html", include_str!("templates/zones.html")),
];

pub const CSS: &str = include_str!("static/pages.css");
pub const JS: &str = include_str!("static/pages.js");

/// `t('id', name=value, ...)`: the message in the page's language (`lang`).
fn translate(state: &State, id: &str, kwargs: Kwargs) -> Result<String, minijinja::Error> {
    let lang = state
        .lookup("lang")
        .and_then(|v| v.as_str().and_then(Lang::from_code))
        .unwrap_or(Lang::En);
    let mut args = Vec::new();
    for k in kwargs.args() {
        let v: Value = kwargs.get(k)?;
        args.push((k, v.to_string()));
    }
    Ok(i18n::message(lang, id, &args))
}

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // `.html` templates escape every value for HTML (minijinja's default for that suffix).
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .expect("the embedded templates parse");
    }
    env.add_function("t", translate);
    env
});

static JS_HASH: LazyLock<String> = LazyLock::new(|| sha256_source(JS));

fn sha256_source(s: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
    )
}

/// The common part of every page's context.
#[derive(Debug, Clone, Serialize)]
pub struct Frame {
    pub lang: &'static str,
    pub brand: Branding,
    pub embed: bool,
    pub tz_chosen: bool,
    pub langs: Vec<LangLink>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LangLink {
    pub code: &'static str,
    pub name: &'static str,
    pub href: String,
    pub current: bool,
}

/// A rendered page and the CSP that lets it run.
pub struct Rendered {
    pub html: String,
    pub csp: String,
}

/// The page's stylesheet: the organization's colours, then the static CSS.
pub fn stylesheet(b: &Branding) -> String {
    format!(
        ":root{{--accent:{};--on-accent:{}}}\n{CSS}",
        b.accent, b.on_accent
    )
}

/// The Content-Security-Policy of a page: nothing but its own hashed style and script, images
/// from anywhere (the logo), forms to this origin, and framing only by the organization's
/// allowed origins, on embed pages.
pub fn csp(css: &str, embed_origins: Option<&[String]>) -> String {
    let ancestors = match embed_origins {
        Some(o) if !o.is_empty() => o.join(" "),
        _ => "'none'".into(),
    };
    format!(
        "default-src 'none'; style-src {}; script-src {}; img-src https: http: data:; \
         form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}",
        sha256_source(css),
        *JS_HASH
    )
}

/// Render `template` with the frame and the page's own values (`page`, flattened in; the
/// frame's values win over the page's of the same name).
pub fn render(template: &str, frame: &Frame, page: impl Serialize) -> Result<Rendered, String> {
    let css = stylesheet(&frame.brand);
    // Straight into minijinja's values (no JSON in between): the context is most of what a
    // page costs besides the template itself.
    let ctx = minijinja::value::merge_maps([
        minijinja::context! {
            css => Value::from_safe_string(css.clone()),
            js => Value::from_safe_string(JS.to_string()),
        },
        Value::from_serialize(frame),
        Value::from_serialize(&page),
    ]);
    let html = ENV
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .map_err(|e| format!("rendering {template}: {e:#}"))?;
    let embed = frame.embed.then_some(frame.brand.embed_origins.as_slice());
    Ok(Rendered {
        csp: csp(&css, embed),
        html,
    })
}

/// The zones of the booker's select: canonical IANA names (no legacy aliases), sorted.
pub fn zone_names() -> &'static [String] {
    static ZONES: LazyLock<Vec<String>> = LazyLock::new(|| {
        const LEGACY: &[&str] = &[
            "US/", "Canada/", "Brazil/", "Chile/", "Mexico/", "Etc/", "SystemV/", "posix/",
            "right/",
        ];
        let mut v: Vec<String> = jiff::tz::db()
            .available()
            .map(|n| n.as_str().to_string())
            .filter(|n| n.contains('/') && !LEGACY.iter().any(|p| n.starts_with(p)))
            .collect();
        v.push("UTC".into());
        v.sort();
        v.dedup();
        v
    });
    &ZONES
}

/// The `<option>`s of `zones` with `tz` selected, by the `zones.html` template (escaped).
fn zone_options_by_template(zones: &[&str], tz: &str) -> Result<String, String> {
    ENV.get_template("zones.html")
        .and_then(|t| t.render(minijinja::context! { zones => zones, tz => tz }))
        .map_err(|e| format!("rendering zones.html: {e:#}"))
}

/// Every zone's `<option>`, none selected, rendered once, and where each one starts.
static ZONE_OPTIONS: LazyLock<(String, Vec<usize>)> = LazyLock::new(|| {
    let mut html = String::new();
    let mut starts = Vec::new();
    for z in zone_names() {
        starts.push(html.len());
        html.push_str(&zone_options_by_template(&[z.as_str()], "").unwrap_or_default());
    }
    (html, starts)
});

/// The time-zone select's options (HTML, escaped) with `tz` selected; a zone that is not in
/// [`zone_names`] (an alias such as `US/Eastern`) comes first. The same as rendering
/// `zones.html` with the whole list, without walking 400-odd zones through the template on
/// every page.
pub fn zone_options(tz: &str) -> Result<String, String> {
    let (html, starts) = &*ZONE_OPTIONS;
    let zones = zone_names();
    let mut out = String::with_capacity(html.len() + 64);
    match zones.binary_search_by(|z| z.as_str().cmp(tz)) {
        Ok(i) => {
            let at = starts[i] + "<option".len();
            out.push_str(&html[..at]);
            out.push_str(" selected");
            out.push_str(&html[at..]);
        }
        Err(_) => {
            out.push_str(&zone_options_by_template(&[tz], tz)?);
            out.push_str(html);
        }
    }
    Ok(out)
}

/// A time in the invitee's zone: its local date and its label on the chosen clock.
pub fn local(t: i64, tz: &TimeZone, hour12: bool) -> (Date, String) {
    let z = Timestamp::from_second(t)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone());
    (z.date(), i18n::time_of_day(z.hour(), z.minute(), hour12))
}

/// "Tuesday, March 10, 2026, 2:30 PM": a moment in full, in `tz`.
pub fn long_moment(lang: Lang, t: Timestamp, tz: &TimeZone, hour12: bool) -> String {
    let z = t.to_zoned(tz.clone());
    format!(
        "{}, {}",
        i18n::long_date(lang, z.date()),
        i18n::time_of_day(z.hour(), z.minute(), hour12)
    )
}

/// Slot starts grouped by their local date in `tz`, in order.
pub fn by_local_date(slots: &[i64], tz: &TimeZone) -> BTreeMap<Date, Vec<i64>> {
    let mut out: BTreeMap<Date, Vec<i64>> = BTreeMap::new();
    let offsets = tz.clone();
    for &t in slots {
        let d = Timestamp::from_second(t)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(offsets.clone())
            .date();
        out.entry(d).or_default().push(t);
    }
    out
}

/// The `n` free starts nearest to `wanted` (either side), in time order.
pub fn nearest(slots: &[i64], wanted: i64, n: usize) -> Vec<i64> {
    let mut v: Vec<i64> = slots.iter().copied().filter(|&t| t != wanted).collect();
    v.sort_by_key(|&t| ((t - wanted).abs(), t));
    v.truncate(n);
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::web::brand;

    fn frame() -> Frame {
        Frame {
            lang: "en",
            brand: brand::effective(&[]),
            embed: false,
            tz_chosen: true,
            langs: Vec::new(),
        }
    }

    #[test]
    fn values_are_escaped_and_the_policy_allows_exactly_the_inline_style_and_script() {
        #[derive(Serialize)]
        struct P {
            heading: &'static str,
            paragraphs: Vec<&'static str>,
            link: Option<()>,
        }
        let r = render(
            "message.html",
            &frame(),
            P {
                heading: "<script>alert(1)</script>",
                paragraphs: vec!["\"><img src=x onerror=alert(2)>"],
                link: None,
            },
        )
        .unwrap();
        assert!(!r.html.contains("<script>alert"), "{}", r.html);
        assert!(
            r.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<img src=x"));
        // The policy's hashes are those of the page's one <style> and one <script>.
        let between = |a: &str, b: &str| {
            let s = r.html.split(a).nth(1).unwrap();
            s.split(b).next().unwrap().to_string()
        };
        let style = between("<style>", "</style>");
        let script = between("<script>", "</script>");
        assert!(r.csp.contains(&sha256_source(&style)), "{}", r.csp);
        assert!(r.csp.contains(&sha256_source(&script)), "{}", r.csp);
        assert!(!r.csp.contains("unsafe-inline"));
        assert!(r.csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.html.matches("<script").count(), 1);
    }

    #[test]
    fn embed_pages_may_be_framed_by_the_allowed_origins_only() {
        let css = "x";
        let origins = vec![
            "https://a.example".to_string(),
            "http://127.0.0.1:9".to_string(),
        ];
        assert!(csp(css, Some(&origins))
            .ends_with("frame-ancestors https://a.example http://127.0.0.1:9"));
        assert!(csp(css, Some(&[])).ends_with("frame-ancestors 'none'"));
        assert!(csp(css, None).ends_with("frame-ancestors 'none'"));
    }

    #[test]
    fn slots_are_grouped_by_the_invitees_local_date() {
        // 2026-04-05 is the end of daylight saving time in Sydney (03:00 -> 02:00).
        let syd = TimeZone::get("Australia/Sydney").unwrap();
        let t = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        let slots = [
            t("2026-04-04T12:30:00Z"), // 23:30 AEDT on the 4th
            t("2026-04-04T13:30:00Z"), // 00:30 AEDT on the 5th
            t("2026-04-04T16:30:00Z"), // 02:30 AEST on the 5th (after the change)
        ];
        let g = by_local_date(&slots, &syd);
        assert_eq!(g.len(), 2);
        let fifth = &g[&jiff::civil::date(2026, 4, 5)];
        assert_eq!(fifth.len(), 2);
        assert_eq!(local(fifth[1], &syd, false).1, "02:30");
        assert_eq!(local(slots[0], &syd, true).1, "11:30 PM");
        assert_eq!(nearest(&[10, 20, 30, 40, 50], 30, 3), [10, 20, 40]);
    }

    #[test]
    fn the_zone_options_are_those_the_template_renders_for_every_zone() {
        let all: Vec<&str> = zone_names().iter().map(String::as_str).collect();
        assert!(all.len() > 300 && all.contains(&"Europe/Berlin") && all.contains(&"UTC"));
        for tz in ["Europe/Berlin", "Africa/Abidjan", "UTC", all[all.len() - 1]] {
            let fast = zone_options(tz).unwrap();
            assert_eq!(fast, zone_options_by_template(&all, tz).unwrap(), "{tz}");
            assert_eq!(fast.matches(" selected").count(), 1, "{tz}");
        }
        // A zone not in the list (an alias, or anything else) comes first, escaped.
        for tz in ["US/Eastern", "<b>\"x\"</b>"] {
            let mut with: Vec<&str> = vec![tz];
            with.extend(&all);
            let fast = zone_options(tz).unwrap();
            assert_eq!(fast, zone_options_by_template(&with, tz).unwrap(), "{tz}");
        }
        assert!(zone_options("<b>")
            .unwrap()
            .starts_with("<option selected>&lt;b&gt;</option>"));
    }
}
