//! An organization's look on its booking pages (pure): the branding it sets, or else the
//! nearest parent's (sub-accounts inherit unless they set their own), and colours adjusted so
//! that text stays readable (WCAG 2 contrast of at least 4.5:1).

use crate::service::store::Org;
use serde::Serialize;

/// The page colours when an organization sets none.
pub const DEFAULT_BRAND: &str = "#292929";
pub const DEFAULT_DARK_BRAND: &str = "#fafafa";
const LIGHT_BG: Rgb = Rgb(255, 255, 255);
const DARK_BG: Rgb = Rgb(17, 17, 17);
/// WCAG AA for normal text.
pub const MIN_CONTRAST: f64 = 4.5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branding {
    pub org_name: String,
    pub dark: bool,
    /// The brand colour as set (`#rrggbb`).
    pub brand: String,
    /// The colour links and buttons use: the brand colour, darkened (light theme) or
    /// lightened (dark theme) until it reaches [`MIN_CONTRAST`] with the page background.
    pub accent: String,
    /// Text on the accent colour: white or black, whichever contrasts more.
    pub on_accent: String,
    pub logo_url: Option<String>,
    pub hide_branding: bool,
    /// Origins that may embed the pages (`frame-ancestors`).
    pub embed_origins: Vec<String>,
}

/// Effective branding of the first organization of `chain` (it, then its ancestors, nearest
/// first). `hideBranding` on any of them hides the calops mention for all below it.
pub fn effective(chain: &[Org]) -> Branding {
    let first = |f: fn(&Org) -> Option<&String>| chain.iter().find_map(f).cloned();
    let theme = first(|o| o.theme.as_ref());
    let dark = theme.as_deref() == Some("dark");
    let brand = if dark {
        first(|o| o.dark_brand_color.as_ref())
            .or_else(|| first(|o| o.brand_color.as_ref()))
            .unwrap_or_else(|| DEFAULT_DARK_BRAND.into())
    } else {
        first(|o| o.brand_color.as_ref()).unwrap_or_else(|| DEFAULT_BRAND.into())
    };
    let bg = if dark { DARK_BG } else { LIGHT_BG };
    let parsed = Rgb::parse(&brand).unwrap_or(if dark {
        Rgb(250, 250, 250)
    } else {
        Rgb(41, 41, 41)
    });
    let accent = readable_against(parsed, bg);
    Branding {
        org_name: chain.first().map(|o| o.name.clone()).unwrap_or_default(),
        dark,
        brand: parsed.hex(),
        accent: accent.hex(),
        on_accent: best_text_on(accent).hex(),
        logo_url: first(|o| o.logo_url.as_ref()),
        hide_branding: chain.iter().any(|o| o.hide_branding),
        embed_origins: chain
            .iter()
            .find_map(|o| o.embed_origins.clone())
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rgb` or `#rrggbb`.
    pub fn parse(s: &str) -> Option<Rgb> {
        let h = s.strip_prefix('#')?;
        let v = |s: &str| u8::from_str_radix(s, 16).ok();
        match h.len() {
            6 => Some(Rgb(v(&h[0..2])?, v(&h[2..4])?, v(&h[4..6])?)),
            3 => {
                let d = |i: usize| v(&h[i..i + 1]).map(|x| x * 17);
                Some(Rgb(d(0)?, d(1)?, d(2)?))
            }
            _ => None,
        }
    }

    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// WCAG 2 relative luminance.
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    fn mix(self, to: Rgb, t: f64) -> Rgb {
        let m = |a: u8, b: u8| (f64::from(a) + (f64::from(b) - f64::from(a)) * t).round() as u8;
        Rgb(m(self.0, to.0), m(self.1, to.1), m(self.2, to.2))
    }
}

/// WCAG 2 contrast ratio (1 to 21).
pub fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (a.luminance(), b.luminance());
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// `c`, moved toward black or white (away from `bg`) just until it reaches [`MIN_CONTRAST`]
/// with `bg`.
pub fn readable_against(c: Rgb, bg: Rgb) -> Rgb {
    let target = if bg.luminance() > 0.5 {
        Rgb(0, 0, 0)
    } else {
        Rgb(255, 255, 255)
    };
    (0..=20)
        .map(|i| c.mix(target, f64::from(i) / 20.0))
        .find(|m| contrast(*m, bg) >= MIN_CONTRAST)
        .unwrap_or(target)
}

/// White or black text on `bg`, whichever contrasts more (always at least 4.58:1, the
/// square root of 21).
pub fn best_text_on(bg: Rgb) -> Rgb {
    let (white, ink) = (Rgb(255, 255, 255), Rgb(0, 0, 0));
    if contrast(white, bg) >= contrast(ink, bg) {
        white
    } else {
        ink
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn org(id: i64, parent: Option<i64>) -> Org {
        Org {
            id,
            parent_id: parent,
            name: format!("org {id}"),
            slug: format!("o{id}"),
            brand_color: None,
            dark_brand_color: None,
            logo_url: None,
            theme: None,
            hide_branding: false,
            metadata: json!({}),
            created_at: jiff::Timestamp::UNIX_EPOCH,
            embed_origins: None,
        }
    }

    #[test]
    fn a_pale_brand_colour_is_darkened_until_text_is_readable() {
        let yellow = Rgb::parse("#ffee00").unwrap();
        assert!(contrast(yellow, LIGHT_BG) < 2.0);
        let a = readable_against(yellow, LIGHT_BG);
        assert!(contrast(a, LIGHT_BG) >= MIN_CONTRAST, "{}", a.hex());
        // Already readable colours stay as they are.
        let navy = Rgb::parse("#123").unwrap();
        assert_eq!(readable_against(navy, LIGHT_BG), navy);
        for c in [
            "#ffee00", "#00ff00", "#000000", "#ffffff", "#777777", "#ff0000",
        ] {
            let c = Rgb::parse(c).unwrap();
            assert!(contrast(best_text_on(c), c) >= MIN_CONTRAST, "{}", c.hex());
            let d = readable_against(c, DARK_BG);
            assert!(contrast(d, DARK_BG) >= MIN_CONTRAST, "{}", d.hex());
        }
        assert!((contrast(Rgb(0, 0, 0), Rgb(255, 255, 255)) - 21.0).abs() < 1e-9);
    }

    #[test]
    fn a_sub_account_inherits_what_it_does_not_set() {
        let mut parent = org(1, None);
        parent.brand_color = Some("#0055aa".into());
        parent.logo_url = Some("https://cdn.example.com/logo.png".into());
        parent.theme = Some("dark".into());
        parent.dark_brand_color = Some("#88ccff".into());
        parent.embed_origins = Some(vec!["https://www.example.com".into()]);
        let mut child = org(2, Some(1));
        let b = effective(&[child.clone(), parent.clone()]);
        assert!(b.dark);
        assert_eq!(b.brand, "#88ccff");
        assert_eq!(b.org_name, "org 2");
        assert_eq!(
            b.logo_url.as_deref(),
            Some("https://cdn.example.com/logo.png")
        );
        assert_eq!(b.embed_origins, ["https://www.example.com"]);
        assert!(!b.hide_branding);
        child.theme = Some("light".into());
        child.brand_color = Some("#ff8800".into());
        child.embed_origins = Some(vec![]);
        parent.hide_branding = true;
        let b = effective(&[child, parent]);
        assert!(!b.dark);
        assert_eq!(b.brand, "#ff8800");
        assert_ne!(b.accent, b.brand, "orange on white is too pale for text");
        assert!(
            b.embed_origins.is_empty(),
            "an empty list is set, not inherited"
        );
        assert!(b.hide_branding);
        let plain = effective(&[org(3, None)]);
        assert_eq!(plain.brand, DEFAULT_BRAND);
    }
}
