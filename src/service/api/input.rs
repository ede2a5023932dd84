//! Reading requests, the same way for every endpoint: JSON bodies and query strings are
//! checked against the fields the endpoint (in the request's `cal-api-version`) documents. A
//! field nobody documents is a 400 naming it (`details.fields[].field`, with its path such as
//! `attendee.phone`); a documented field calops accepts but cannot act on is answered with a
//! `warnings` entry next to `data` instead of being dropped silently.

use super::error::ApiError;
use crate::service::domain::FieldError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// A documented request field that has no effect in calops (or is used only partly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl Warning {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Warning {
        Warning {
            field: field.into(),
            message: message.into(),
        }
    }

    /// "accepted, has no effect": the usual message for a documented field calops ignores.
    pub fn no_effect(field: impl Into<String>, why: &str) -> Warning {
        Warning::new(field, format!("accepted but has no effect: {why}"))
    }
}

/// `{"status":"success","data":...}`, with `"warnings":[...]` when there are any.
pub fn reply(status: StatusCode, data: Value, warnings: &[Warning]) -> Response {
    let mut body = json!({ "status": "success", "data": data });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    (status, axum::Json(body)).into_response()
}

/// A request body as JSON (and its bytes, for idempotency fingerprints): an empty body is
/// `{}`; a body sent as anything but JSON is 415, bad JSON is 400.
pub struct JsonBody {
    pub raw: axum::body::Bytes,
    pub value: Value,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        let raw = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text()))?;
        if !raw.iter().all(u8::is_ascii_whitespace) && json_type != Some(true) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let value = json_body(&raw)?;
        Ok(JsonBody { raw, value })
    }
}

/// A JSON body (empty counts as `{}`), with our error shape on failure.
pub fn json_body(bytes: &[u8]) -> Result<Value, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

/// `v` as a `T` whose structs deny unknown fields; a problem names its field's path.
/// `context` ends the message of an unknown field (which version or endpoint takes what).
pub fn typed<T: DeserializeOwned>(v: Value, context: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.inner().to_string();
        ApiError::validation(vec![field_error(&path, &message, context)])
    })
}

/// A JSON body as a `T` ([`json_body`] then [`typed`]).
pub fn body<T: DeserializeOwned>(bytes: &[u8], context: &str) -> Result<T, ApiError> {
    typed(json_body(bytes)?, context)
}

/// One serde problem as a field error: `unknown field `x`, expected ...` becomes field `x`
/// (under `path`), the rest keeps serde's words without the position.
fn field_error(path: &str, message: &str, context: &str) -> FieldError {
    let under = |name: &str| {
        if path.is_empty() {
            name.to_string()
        } else if path.ends_with(name) {
            path.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            let expected = expected.trim_start_matches(", ").trim();
            let expected = if expected.is_empty() {
                String::new()
            } else {
                format!(" ({expected})")
            };
            return FieldError::new(under(name), format!("unknown field{expected}; {context}"));
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        if let Some((name, _)) = rest.split_once('`') {
            return FieldError::new(under(name), "required");
        }
    }
    let message = match message.rsplit_once(" at line ") {
        Some((m, _)) => m.to_string(),
        None => message.to_string(),
    };
    let field = if path.is_empty() {
        "body".into()
    } else {
        path.to_string()
    };
    FieldError::new(field, message)
}

/// A query string, checked for names the endpoint does not take.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Refuse any name not in `allowed` (400 naming each); `context` ends the message.
    pub fn new(
        pairs: Vec<(String, String)>,
        allowed: &[&str],
        context: &str,
    ) -> Result<Params, ApiError> {
        let mut errors = Vec::new();
        for (k, _) in &pairs {
            if !allowed.contains(&k.as_str()) && !errors.iter().any(|e: &FieldError| &e.field == k)
            {
                let expected = if allowed.is_empty() {
                    String::new()
                } else {
                    format!(" (expected one of {})", allowed.join(", "))
                };
                errors.push(FieldError::new(
                    k.clone(),
                    format!("unknown query parameter{expected}; {context}"),
                ));
            }
        }
        if errors.is_empty() {
            Ok(Params { pairs })
        } else {
            Err(ApiError::validation(errors))
        }
    }

    /// The last non-empty value of `name`, trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim())
    }

    /// Every value of `name` and of `name[]`, each split at commas, trimmed, empty ones left out.
    pub fn list(&self, name: &str) -> Vec<&str> {
        let bracketed = format!("{name}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| k == name || *k == bracketed)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// A whole number from `lo` to `hi`; a problem goes to `errors`.
    pub fn int(&self, name: &str, lo: i64, hi: i64, errors: &mut Vec<FieldError>) -> Option<i64> {
        let v = self.get(name)?;
        match v.parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                errors.push(FieldError::new(
                    name,
                    format!("{v:?}: must be a whole number from {lo} to {hi}"),
                ));
                None
            }
        }
    }

    /// Whole numbers (see [`Params::list`]), each at least 1.
    pub fn ids(&self, name: &str, errors: &mut Vec<FieldError>) -> Vec<i64> {
        let mut out = Vec::new();
        for v in self.list(name) {
            match v.parse::<i64>() {
                Ok(n) if n >= 1 => out.push(n),
                _ => errors.push(FieldError::new(
                    name,
                    format!("{v:?} is not an id (a whole number)"),
                )),
            }
        }
        out
    }

    /// Any ISO 8601 time with an offset or `Z`, or a date (its start, in UTC).
    pub fn time(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
        let v = self.get(name)?;
        let t = any_instant(name, v, errors);
        if t.is_some() {
            return t;
        }
        // A date alone: its first instant in UTC (the last error was about this value).
        let d = v.parse::<jiff::civil::Date>().ok()?;
        errors.pop();
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// An ISO 8601 instant with an offset or `Z`, within the range clients may use
/// ([`crate::service::domain::instant::in_range`]); a problem goes to `errors`.
pub fn any_instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let Ok(t) = s.trim().parse::<Timestamp>() else {
        errors.push(FieldError::new(
            field,
            format!("{s:?} is not an ISO 8601 time with an offset, such as 2026-06-01T09:00:00Z"),
        ));
        return None;
    };
    if !crate::service::domain::instant::in_range(t) {
        errors.push(FieldError::new(
            field,
            crate::service::domain::instant::out_of_range_message(),
        ));
        return None;
    }
    Some(t)
}

/// [`any_instant`] on a whole minute (a slot start).
pub fn instant(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let t = any_instant(field, s, errors)?;
    if t.as_second() % 60 == 0 && t.subsec_nanosecond() == 0 {
        Some(t)
    } else {
        errors.push(FieldError::new(field, "must be on a whole minute"));
        None
    }
}

/// An e-mail address mail can be sent to (`domain::address`): attendees, guests, hosts.
pub fn valid_email(e: &str) -> bool {
    crate::service::domain::address::is_mailbox(e)
}

/// The time as Cal.com writes it: `2026-06-01T09:00:00.000Z`.
pub fn iso(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// 400 when there are problems, else `Ok`.
pub fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        attendee: Inner,
        #[serde(default)]
        take: Option<i64>,
    }

    fn fields(e: &ApiError) -> Vec<(String, String)> {
        e.details["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let e =
            typed::<Outer>(json!({"attendee": {"name": "A", "phone": "1"}}), "ctx").unwrap_err();
        let f = fields(&e);
        assert_eq!(f[0].0, "attendee.phone", "{f:?}");
        assert!(
            f[0].1.starts_with("unknown field") && f[0].1.ends_with("ctx"),
            "{f:?}"
        );
        let e = typed::<Outer>(json!({"attendee": {"name": "A"}, "bogus": 1}), "ctx").unwrap_err();
        assert_eq!(fields(&e)[0].0, "bogus");
        let e = typed::<Outer>(json!({"attendee": {}}), "ctx").unwrap_err();
        assert_eq!(fields(&e)[0], ("attendee.name".into(), "required".into()));
        let e = typed::<Outer>(json!({"attendee": {"name": "A"}, "take": "x"}), "ctx").unwrap_err();
        assert_eq!(fields(&e)[0].0, "take");
        assert!(typed::<Outer>(json!({"attendee": {"name": "A"}}), "ctx").is_ok());
    }

    #[test]
    fn query_strings_refuse_unknown_names_and_read_lists() {
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let e = Params::new(
            pairs(&[("sortStart", "asc"), ("bogus", "1")]),
            &["sortStart"],
            "c",
        )
        .unwrap_err();
        assert_eq!(fields(&e)[0].0, "bogus");
        let p = Params::new(
            pairs(&[("ids", "1, 2"), ("ids[]", "3"), ("at", "2026-06-01")]),
            &["ids", "ids[]", "at"],
            "c",
        )
        .unwrap();
        let mut errors = Vec::new();
        assert_eq!(p.ids("ids", &mut errors), [1, 2, 3]);
        assert_eq!(
            p.time("at", &mut errors).unwrap().to_string(),
            "2026-06-01T00:00:00Z"
        );
        assert!(errors.is_empty(), "{errors:?}");
    }
}
