//! Languages of the booking pages (pure): English and German messages in Fluent
//! (`locales/*.ftl`, embedded), the language a request gets (`?lang=`, then
//! `Accept-Language`), and dates and times written the locale's way.
//!
//! Dates use a small table of month and weekday names per language rather than ICU data: two
//! languages need a few dozen words, where ICU4X's data and crates would add megabytes to the
//! binary and minutes to the build.

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use jiff::civil::{Date, Weekday};
use std::sync::LazyLock;

/// A language of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

pub const LANGS: [Lang; 2] = [Lang::En, Lang::De];

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The language's own name (for the switch).
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::De => "Deutsch",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "de" => Some(Lang::De),
            _ => None,
        }
    }

    /// The language of a request: a supported `?lang=`, else the first supported language of
    /// `Accept-Language` by preference (`q`), else English.
    pub fn negotiate(query: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(l) = query.and_then(Lang::from_code) {
            return l;
        }
        let mut prefs: Vec<(f32, usize, Lang)> = accept_language
            .unwrap_or("")
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut it = part.split(';');
                let lang = Lang::from_code(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (q > 0.0).then_some((q, i, lang))
            })
            .collect();
        prefs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        prefs.first().map_or(Lang::En, |p| p.2)
    }

    /// Whether times are shown on a 12-hour clock unless the invitee chooses.
    pub fn default_hour12(self) -> bool {
        self == Lang::En
    }

    /// The first day of a calendar week.
    pub fn week_start(self) -> Weekday {
        match self {
            Lang::En => Weekday::Sunday,
            Lang::De => Weekday::Monday,
        }
    }

    fn ftl(self) -> &'static str {
        match self {
            Lang::En => include_str!("locales/en.ftl"),
            Lang::De => include_str!("locales/de.ftl"),
        }
    }
}

struct Bundles {
    en: FluentBundle<FluentResource>,
    de: FluentBundle<FluentResource>,
}

fn bundle(lang: Lang) -> FluentBundle<FluentResource> {
    let id: unic_langid::LanguageIdentifier = lang.code().parse().expect("a language id");
    let mut b = FluentBundle::new_concurrent(vec![id]);
    // No Unicode isolation marks around arguments: the pages are HTML, not bidi text.
    b.set_use_isolating(false);
    let res = FluentResource::try_new(lang.ftl().to_string()).expect("the embedded .ftl parses");
    b.add_resource(res).expect("no message is defined twice");
    b
}

static BUNDLES: LazyLock<Bundles> = LazyLock::new(|| Bundles {
    en: bundle(Lang::En),
    de: bundle(Lang::De),
});

/// The message `id` in `lang` with `args`; the id itself when there is no such message (a
/// unit test keeps every id the templates use defined).
pub fn message(lang: Lang, id: &str, args: &[(&str, String)]) -> String {
    let b = match lang {
        Lang::En => &BUNDLES.en,
        Lang::De => &BUNDLES.de,
    };
    let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
        return id.to_string();
    };
    let mut fa = FluentArgs::new();
    for (k, v) in args {
        fa.set(*k, FluentValue::from(v.as_str()));
    }
    let mut errors = Vec::new();
    b.format_pattern(pattern, Some(&fa), &mut errors)
        .into_owned()
}

/// The ids of every message of `lang` (for tests).
pub fn message_ids(lang: Lang) -> Vec<String> {
    lang.ftl()
        .lines()
        .filter_map(|l| l.split_once(" = ").map(|(id, _)| id.trim().to_string()))
        .filter(|id| !id.starts_with('#') && !id.is_empty())
        .collect()
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_DE: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
/// Monday first.
const DAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const DAYS_DE: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];
const DAYS_SHORT_EN: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAYS_SHORT_DE: [&str; 7] = ["Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"];

fn month_name(lang: Lang, month: i8) -> &'static str {
    let i = (month.clamp(1, 12) - 1) as usize;
    match lang {
        Lang::En => MONTHS_EN[i],
        Lang::De => MONTHS_DE[i],
    }
}

/// The weekday's full name.
pub fn weekday_name(lang: Lang, d: Weekday) -> &'static str {
    let i = d.to_monday_zero_offset() as usize;
    match lang {
        Lang::En => DAYS_EN[i],
        Lang::De => DAYS_DE[i],
    }
}

/// The weekday's short name (calendar headers).
pub fn weekday_short(lang: Lang, d: Weekday) -> &'static str {
    let i = d.to_monday_zero_offset() as usize;
    match lang {
        Lang::En => DAYS_SHORT_EN[i],
        Lang::De => DAYS_SHORT_DE[i],
    }
}

/// "March 2026" / "März 2026".
pub fn month_title(lang: Lang, year: i16, month: i8) -> String {
    format!("{} {year}", month_name(lang, month))
}

/// "Tuesday, March 10, 2026" / "Dienstag, 10. März 2026".
pub fn long_date(lang: Lang, d: Date) -> String {
    let wd = weekday_name(lang, d.weekday());
    let m = month_name(lang, d.month());
    match lang {
        Lang::En => format!("{wd}, {m} {}, {}", d.day(), d.year()),
        Lang::De => format!("{wd}, {}. {m} {}", d.day(), d.year()),
    }
}

/// A time of day: "2:30 PM" on a 12-hour clock, "14:30" on a 24-hour one.
pub fn time_of_day(hour: i8, minute: i8, hour12: bool) -> String {
    if hour12 {
        let h = match hour % 12 {
            0 => 12,
            h => h,
        };
        let ampm = if hour < 12 { "AM" } else { "PM" };
        format!("{h}:{minute:02} {ampm}")
    } else {
        format!("{hour:02}:{minute:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_language_comes_from_the_query_then_accept_language() {
        assert_eq!(Lang::negotiate(Some("de"), Some("en-US")), Lang::De);
        assert_eq!(
            Lang::negotiate(Some("fr"), Some("de-CH, en;q=0.5")),
            Lang::De
        );
        assert_eq!(
            Lang::negotiate(None, Some("fr-FR, en;q=0.4, de;q=0.8")),
            Lang::De
        );
        assert_eq!(Lang::negotiate(None, Some("de;q=0, en")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some("fr, es")), Lang::En);
        assert_eq!(Lang::negotiate(None, Some(";;;q=x,,")), Lang::En);
        assert_eq!(Lang::negotiate(None, None), Lang::En);
    }

    #[test]
    fn dates_and_times_are_written_for_the_locale() {
        let d = date(2026, 3, 10);
        assert_eq!(long_date(Lang::En, d), "Tuesday, March 10, 2026");
        assert_eq!(long_date(Lang::De, d), "Dienstag, 10. März 2026");
        assert_eq!(month_title(Lang::De, 2026, 3), "März 2026");
        assert_eq!(time_of_day(0, 5, true), "12:05 AM");
        assert_eq!(time_of_day(12, 0, true), "12:00 PM");
        assert_eq!(time_of_day(14, 30, true), "2:30 PM");
        assert_eq!(time_of_day(9, 0, false), "09:00");
        assert_eq!(weekday_short(Lang::De, Weekday::Sunday), "So");
    }

    #[test]
    fn both_languages_have_the_same_messages_and_arguments_fill_in() {
        let (en, de) = (message_ids(Lang::En), message_ids(Lang::De));
        assert!(en.len() > 40, "{en:?}");
        assert_eq!(en, de);
        assert_eq!(
            message(Lang::De, "profile-title", &[("host", "Ana".into())]),
            "Einen Termin mit Ana buchen"
        );
        assert_eq!(message(Lang::En, "no-such-message", &[]), "no-such-message");
    }
}
