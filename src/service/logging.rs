//! JSON logs on stderr, one object per line, with e-mail addresses and phone numbers masked in
//! every line whatever field they appear in.

use regex::Regex;
use std::io::Write;
use std::sync::OnceLock;

fn email_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*(@|%40)([A-Za-z0-9\-]+\.)+[A-Za-z]{2,}")
            .expect("valid regex")
    })
}

fn phone_re() -> &'static Regex {
    // International numbers (a leading + or its URL encoding %2B), 7 to 15 digits with the
    // usual separators. Plain digit runs (timestamps, ids, latencies) are left alone.
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(\+|%2B)\d[\d\s().\-]{5,18}\d").expect("valid regex"))
}

fn token_re() -> &'static Regex {
    // The booking pages' self-service links carry their token in `?t=` (`service::web`): a
    // bearer credential, so its value never reaches a log line.
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#"([?&"]t=)[^&"\s]+"#).expect("valid regex"))
}

/// Mask e-mail addresses (`a***@***`), phone numbers (`+***12`) and booking-page link tokens
/// (`?t=***`) in `text`.
pub fn mask(text: &str) -> String {
    let step = token_re().replace_all(text, "${1}***");
    let step = email_re().replace_all(&step, "$1***@***");
    let step = phone_re().replace_all(&step, |c: &regex::Captures| {
        let digits: String = c[0].chars().filter(char::is_ascii_digit).collect();
        format!("+***{}", &digits[digits.len().saturating_sub(2)..])
    });
    step.into_owned()
}

/// A writer that masks each line before it reaches stderr.
#[derive(Clone, Copy, Default)]
pub struct MaskingStderr;

pub struct MaskingWriter {
    buf: Vec<u8>,
}

impl Write for MaskingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskingWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let _ = std::io::stderr().lock().write_all(mask(&text).as_bytes());
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MaskingStderr {
    type Writer = MaskingWriter;
    fn make_writer(&'a self) -> MaskingWriter {
        MaskingWriter {
            buf: Vec::with_capacity(256),
        }
    }
}

/// Install the JSON subscriber (level from `RUST_LOG`, default `info`). Safe to call twice.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(MaskingStderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_phones_are_masked_and_other_numbers_are_not() {
        let line = r#"{"path":"/v2/x?email=ana.maria@example.co.uk&phone=%2B49 170 1234567","ts":"2026-06-01T09:00:00Z","latency_ms":12.5,"id":1234567890}"#;
        let m = mask(line);
        assert!(!m.contains("ana.maria"), "{m}");
        assert!(!m.contains("example.co.uk"), "{m}");
        assert!(!m.contains("1234567&") && !m.contains("170 1234567"), "{m}");
        assert!(m.contains("a***@***"), "{m}");
        assert!(m.contains("+***67"), "{m}");
        assert!(m.contains("2026-06-01T09:00:00Z"));
        assert!(m.contains("1234567890"));
        assert_eq!(mask("call +1 (212) 555-0199 now"), "call +***99 now");
        assert_eq!(mask("bob%40example.com"), "b***@***");
        assert_eq!(
            mask(
                r#"{"query":"lang=de&t=12.1767225600.AbC-_x9","path":"/b/x?t=9.9.zz","q":"t=1.2.y"}"#
            ),
            r#"{"query":"lang=de&t=***","path":"/b/x?t=***","q":"t=***"}"#
        );
    }
}
