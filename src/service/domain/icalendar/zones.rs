//! Which time zone a `TZID` names. In order: an IANA name known to jiff's bundled database;
//! a vendor-prefixed IANA name (`/mozilla.org/20050126_1/Europe/Berlin`,
//! `/freeassociation.sourceforge.net/Tzfile/Europe/Berlin`); a Windows zone name as Outlook and
//! Exchange write them (the common ones, mapped as CLDR's windowsZones does); else the calendar's
//! own `VTIMEZONE` of that `TZID`, its latest `STANDARD` and `DAYLIGHT` rules turned into a POSIX
//! rule (what Exchange and most servers send: a yearly `BYMONTH` + `BYDAY` rule). `None`
//! when none of these works; the caller then uses the host's zone.

use super::Component;
use jiff::tz::TimeZone;

/// Windows zone names -> IANA (CLDR windowsZones, territory "001"), the zones most calendars use.
const WINDOWS: &[(&str, &str)] = &[
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("FLE Standard Time", "Europe/Kiev"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("Eastern Standard Time", "America/New_York"),
    ("Central Standard Time", "America/Chicago"),
    ("Mountain Standard Time", "America/Denver"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("India Standard Time", "Asia/Calcutta"),
    ("China Standard Time", "Asia/Shanghai"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("UTC", "UTC"),
];

fn iana(name: &str) -> Option<TimeZone> {
    jiff::tz::db().get(name).ok()
}

/// The zone `tzid` names, with `vtimezones` (the calendar's `VTIMEZONE` components) as the
/// last resort.
pub fn resolve(tzid: &str, vtimezones: &[&Component]) -> Option<TimeZone> {
    let tzid = tzid.trim();
    if let Some(tz) = iana(tzid) {
        return Some(tz);
    }
    let parts: Vec<&str> = tzid.split('/').filter(|s| !s.is_empty()).collect();
    for n in (1..parts.len().min(4)).rev() {
        if let Some(tz) = iana(&parts[parts.len() - n..].join("/")) {
            return Some(tz);
        }
    }
    if let Some((_, name)) = WINDOWS.iter().find(|(w, _)| w.eq_ignore_ascii_case(tzid)) {
        return iana(name);
    }
    let vtz = vtimezones
        .iter()
        .find(|c| c.prop("TZID").is_some_and(|p| p.value.trim() == tzid))?;
    TimeZone::posix(&posix_rule(vtz)?).ok()
}

/// `+0100` / `-0530` / `+013000` -> seconds east of UTC.
fn offset_secs(v: &str) -> Option<i32> {
    let v = v.trim();
    let (sign, digits) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i32>().ok());
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + n(4..6).unwrap_or(0);
    Some(sign * secs)
}

/// Seconds east of UTC as a POSIX offset (west positive): `-1`, `5:30`.
fn posix_offset(east: i32) -> String {
    let west = -east;
    let (sign, a) = if west < 0 { ("-", -west) } else { ("", west) };
    let (h, m, s) = (a / 3600, a / 60 % 60, a % 60);
    match (m, s) {
        (0, 0) => format!("{sign}{h}"),
        (_, 0) => format!("{sign}{h}:{m:02}"),
        _ => format!("{sign}{h}:{m:02}:{s:02}"),
    }
}

/// A yearly rule's date as POSIX `Mm.w.d` (`BYMONTH=3;BYDAY=-1SU` -> `M3.5.0`) with the
/// observance's local start time (`/2`, `/2:30`).
fn posix_date(obs: &Component) -> Option<String> {
    let rule = obs.prop("RRULE")?.value.to_ascii_uppercase();
    let part = |k: &str| {
        rule.split(';')
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .map(str::to_string)
    };
    if part("FREQ")? != "YEARLY" {
        return None;
    }
    let month: u8 = part("BYMONTH")?.parse().ok()?;
    let byday = part("BYDAY")?;
    let (week, day) = byday.split_at(byday.len().checked_sub(2)?);
    let week: i8 = if week.is_empty() {
        1
    } else {
        week.trim_start_matches('+').parse().ok()?
    };
    let week = match week {
        -1 => 5,
        1..=4 => week,
        _ => return None,
    };
    let day = ["SU", "MO", "TU", "WE", "TH", "FR", "SA"]
        .iter()
        .position(|d| *d == day)?;
    let start = obs.prop("DTSTART")?.value.clone();
    let time = start.split('T').nth(1).unwrap_or("020000");
    let (h, m, s) = (
        time.get(0..2)?.parse::<u32>().ok()?,
        time.get(2..4)?.parse::<u32>().ok()?,
        time.get(4..6)
            .and_then(|x| x.parse::<u32>().ok())
            .unwrap_or(0),
    );
    let at = match (m, s) {
        (0, 0) => format!("{h}"),
        (_, 0) => format!("{h}:{m:02}"),
        _ => format!("{h}:{m:02}:{s:02}"),
    };
    Some(format!("M{month}.{week}.{day}/{at}"))
}

/// The POSIX TZ rule of a `VTIMEZONE` from its latest `STANDARD` and `DAYLIGHT` observances.
pub fn posix_rule(vtz: &Component) -> Option<String> {
    fn latest<'a>(vtz: &'a Component, kind: &'a str) -> Option<&'a Component> {
        vtz.children_named(kind).max_by_key(|c| {
            c.prop("DTSTART")
                .map(|p| p.value.clone())
                .unwrap_or_default()
        })
    }
    let std = latest(vtz, "STANDARD");
    let dst = latest(vtz, "DAYLIGHT");
    let std_off = offset_secs(&std.or(dst)?.prop("TZOFFSETTO")?.value)?;
    let fixed = format!("STD{}", posix_offset(std_off));
    let (Some(std), Some(dst)) = (std, dst) else {
        return Some(fixed);
    };
    let (Some(to_dst), Some(to_std)) = (posix_date(dst), posix_date(std)) else {
        // Observances without a yearly rule: the standard offset alone.
        return Some(fixed);
    };
    let dst_off = offset_secs(&dst.prop("TZOFFSETTO")?.value)?;
    Some(format!(
        "{fixed}DST{},{to_dst},{to_std}",
        posix_offset(dst_off)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const EXCHANGE: &str = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Mitteleuropa\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";

    fn offset_at(tz: &TimeZone, y: i16, m: i8, d: i8, h: i8) -> i32 {
        let ts = date(y, m, d)
            .at(h, 0, 0, 0)
            .to_zoned(TimeZone::UTC)
            .unwrap();
        tz.to_offset(ts.timestamp()).seconds()
    }

    #[test]
    fn names_resolve_through_prefixes_and_windows_names() {
        let berlin = iana("Europe/Berlin").unwrap();
        for name in [
            "Europe/Berlin",
            "/mozilla.org/20050126_1/Europe/Berlin",
            "/freeassociation.sourceforge.net/Tzfile/Europe/Berlin",
            "W. Europe Standard Time",
        ] {
            let tz = resolve(name, &[]).unwrap_or_else(|| panic!("{name}"));
            for (m, h) in [(1, 12), (7, 12)] {
                assert_eq!(
                    offset_at(&tz, 2026, m, 1, h),
                    offset_at(&berlin, 2026, m, 1, h)
                );
            }
        }
        assert!(resolve("Not/A_Zone", &[]).is_none());
    }

    #[test]
    fn a_vtimezone_becomes_a_posix_rule_with_the_same_transitions() {
        let cal = &super::super::parse(EXCHANGE).unwrap()[0];
        let vtz: Vec<&Component> = cal.children_named("VTIMEZONE").collect();
        assert_eq!(posix_rule(vtz[0]).unwrap(), "STD-1DST-2,M3.5.0/2,M10.5.0/3");
        let tz = resolve("Mitteleuropa", &vtz).unwrap();
        let berlin = iana("Europe/Berlin").unwrap();
        // Around the spring and autumn changes of 2026 (29 March, 25 October).
        for (m, d, h) in [
            (3, 29, 0),
            (3, 29, 1),
            (3, 29, 2),
            (10, 25, 0),
            (10, 25, 1),
            (10, 25, 2),
        ] {
            assert_eq!(
                offset_at(&tz, 2026, m, d, h),
                offset_at(&berlin, 2026, m, d, h),
                "{m}-{d} {h}h"
            );
        }
    }
}
