//! Cal.com's `cal-api-version` header, in one place: which versions exist, which request
//! shape ("family") each versioned route serves for each version, and the parsers and writers
//! of every family (`bookings`, `event_types`, `schedules`, `slots`). Handlers get a
//! [`Versioned`] resource API (a parser and writer set) and never see a version; the store
//! never learns about them.
//!
//! As in Cal.com (`apps/api/v2/src/app.ts`: a missing header selects `2024-04-15`), a request
//! without the header gets the oldest shape of its route: the legacy shapes where Cal.com has
//! them, and the only shape of routes that exist in one version family (`GET /v2/slots`,
//! `/v2/bookings/{uid}/reschedule`, calops' own endpoints). Unlike Cal.com, which routes an
//! unknown value to the oldest controller, calops answers 400 `unsupported_api_version`, and
//! a known version that a route does not serve (Cal.com: 404) is a 400 naming those it does.

pub mod bookings;
pub mod event_types;
pub mod schedules;
pub mod slots;

use super::error::ApiError;
use crate::service::state::AppState;
use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The request header that names the version.
pub const HEADER: &str = "cal-api-version";

/// The versions of Cal.com's API v2 (`packages/platform/constants/api.ts`, `API_VERSIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    V2024_04_15,
    V2024_06_11,
    V2024_06_14,
    V2024_08_13,
    V2024_09_04,
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 5] = [
        ApiVersion::V2024_04_15,
        ApiVersion::V2024_06_11,
        ApiVersion::V2024_06_14,
        ApiVersion::V2024_08_13,
        ApiVersion::V2024_09_04,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V2024_04_15 => "2024-04-15",
            ApiVersion::V2024_06_11 => "2024-06-11",
            ApiVersion::V2024_06_14 => "2024-06-14",
            ApiVersion::V2024_08_13 => "2024-08-13",
            ApiVersion::V2024_09_04 => "2024-09-04",
        }
    }

    pub fn parse(s: &str) -> Option<ApiVersion> {
        ApiVersion::ALL.into_iter().find(|v| v.as_str() == s.trim())
    }
}

/// The two request and response shapes a resource can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Cal.com's oldest v2 shapes (what a request without the header gets).
    Legacy,
    /// The shapes of the resource's newest version.
    Current,
}

/// A resource's shape and the versions that select it.
#[derive(Debug)]
pub struct Family {
    pub resource: &'static str,
    pub shape: Shape,
    pub versions: &'static [ApiVersion],
}

impl Family {
    /// The versions, `2024-04-15, 2024-06-11`.
    pub fn names(&self) -> String {
        self.versions
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

use ApiVersion::*;

/// Bookings: the `2024-04-15` controller serves 04-15, 06-11 and 06-14; `2024-08-13` its own.
pub const BOOKINGS_LEGACY: Family = Family {
    resource: "bookings",
    shape: Shape::Legacy,
    versions: &[V2024_04_15, V2024_06_11, V2024_06_14],
};
pub const BOOKINGS_2024_08_13: Family = Family {
    resource: "bookings",
    shape: Shape::Current,
    versions: &[V2024_08_13],
};
/// Event types: the `2024-04-15` controller serves 04-15 and 06-11.
pub const EVENT_TYPES_LEGACY: Family = Family {
    resource: "event types",
    shape: Shape::Legacy,
    versions: &[V2024_04_15, V2024_06_11],
};
pub const EVENT_TYPES_2024_06_14: Family = Family {
    resource: "event types",
    shape: Shape::Current,
    versions: &[V2024_06_14],
};
pub const SCHEDULES_LEGACY: Family = Family {
    resource: "schedules",
    shape: Shape::Legacy,
    versions: &[V2024_04_15],
};
pub const SCHEDULES_2024_06_11: Family = Family {
    resource: "schedules",
    shape: Shape::Current,
    versions: &[V2024_06_11],
};
/// Slots: the `2024-04-15` controller (`/v2/slots/available`, `/reserve`, `/selected-slot`)
/// serves every version but `2024-09-04`.
pub const SLOTS_LEGACY: Family = Family {
    resource: "slots",
    shape: Shape::Legacy,
    versions: &[V2024_04_15, V2024_06_11, V2024_06_14, V2024_08_13],
};
pub const SLOTS_2024_09_04: Family = Family {
    resource: "slots",
    shape: Shape::Current,
    versions: &[V2024_09_04],
};

/// A versioned route and the families it serves, oldest first (a request without the
/// header gets the first).
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub families: &'static [&'static Family],
}

const BOOKINGS: &[&Family] = &[&BOOKINGS_LEGACY, &BOOKINGS_2024_08_13];
const EVENT_TYPES: &[&Family] = &[&EVENT_TYPES_LEGACY, &EVENT_TYPES_2024_06_14];
const SCHEDULES: &[&Family] = &[&SCHEDULES_LEGACY, &SCHEDULES_2024_06_11];

/// Every versioned route (paths as the router spells them). Routes not listed are calops'
/// own or version-neutral in Cal.com too (`/v2/me`, `/v2/timezones`): any known version, or
/// none, is fine there.
pub const ROUTES: &[Route] = &[
    Route {
        method: "post",
        path: "/v2/bookings",
        families: BOOKINGS,
    },
    Route {
        method: "get",
        path: "/v2/bookings",
        families: BOOKINGS,
    },
    Route {
        method: "get",
        path: "/v2/bookings/{uid}",
        families: BOOKINGS,
    },
    Route {
        method: "post",
        path: "/v2/bookings/{uid}/cancel",
        families: BOOKINGS,
    },
    Route {
        method: "post",
        path: "/v2/bookings/{uid}/reschedule",
        families: &[&BOOKINGS_2024_08_13],
    },
    Route {
        method: "post",
        path: "/v2/event-types",
        families: EVENT_TYPES,
    },
    Route {
        method: "get",
        path: "/v2/event-types",
        families: EVENT_TYPES,
    },
    Route {
        method: "get",
        path: "/v2/event-types/{id}",
        families: EVENT_TYPES,
    },
    Route {
        method: "patch",
        path: "/v2/event-types/{id}",
        families: EVENT_TYPES,
    },
    Route {
        method: "delete",
        path: "/v2/event-types/{id}",
        families: EVENT_TYPES,
    },
    Route {
        method: "post",
        path: "/v2/schedules",
        families: SCHEDULES,
    },
    Route {
        method: "get",
        path: "/v2/schedules",
        families: SCHEDULES,
    },
    Route {
        method: "get",
        path: "/v2/schedules/default",
        families: SCHEDULES,
    },
    Route {
        method: "get",
        path: "/v2/schedules/{id}",
        families: SCHEDULES,
    },
    Route {
        method: "patch",
        path: "/v2/schedules/{id}",
        families: SCHEDULES,
    },
    Route {
        method: "delete",
        path: "/v2/schedules/{id}",
        families: SCHEDULES,
    },
    Route {
        method: "get",
        path: "/v2/slots",
        families: &[&SLOTS_2024_09_04],
    },
    Route {
        method: "post",
        path: "/v2/slots/reservations",
        families: &[&SLOTS_2024_09_04],
    },
    Route {
        method: "get",
        path: "/v2/slots/reservations/{uid}",
        families: &[&SLOTS_2024_09_04],
    },
    Route {
        method: "patch",
        path: "/v2/slots/reservations/{uid}",
        families: &[&SLOTS_2024_09_04],
    },
    Route {
        method: "delete",
        path: "/v2/slots/reservations/{uid}",
        families: &[&SLOTS_2024_09_04],
    },
    Route {
        method: "get",
        path: "/v2/slots/available",
        families: &[&SLOTS_LEGACY],
    },
    Route {
        method: "post",
        path: "/v2/slots/reserve",
        families: &[&SLOTS_LEGACY],
    },
    Route {
        method: "delete",
        path: "/v2/slots/selected-slot",
        families: &[&SLOTS_LEGACY],
    },
];

/// The versioned route `method path`, if it is one (path parameters match whatever their
/// names: `/v2/schedules/{scheduleId}` is `/v2/schedules/{id}`).
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && same_path(r.path, path))
}

/// The versioned route a concrete request path (`/v2/bookings/4f1c...`, with or without a
/// query string) falls under, if any.
pub fn route_of_request(method: &str, path: &str) -> Option<&'static Route> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    ROUTES.iter().find(|r| {
        let pat: Vec<&str> = r.path.split('/').collect();
        r.method.eq_ignore_ascii_case(method)
            && pat.len() == segs.len()
            && pat
                .iter()
                .zip(&segs)
                .all(|(p, s)| p.starts_with('{') || p == s)
    })
}

/// The newest version a concrete request to `method path` is served in (`None` for an
/// unversioned route): what calops' own clients send.
pub fn newest_for(method: &str, path: &str) -> Option<&'static str> {
    let r = route_of_request(method, path)?;
    r.families
        .iter()
        .flat_map(|f| f.versions.iter())
        .max()
        .map(|v| v.as_str())
}

fn same_path(a: &str, b: &str) -> bool {
    fn seg(s: &str) -> Vec<&str> {
        s.split('/')
            .map(|p| if p.starts_with('{') { "{}" } else { p })
            .collect()
    }
    seg(a) == seg(b)
}

/// Every known version, `2024-04-15, ...`.
pub fn known() -> String {
    ApiVersion::ALL
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The family that serves a request to `method path` with header value `header`: `None` for
/// an unversioned route. 400 for an unknown version, or one the route does not serve.
pub fn resolve(
    method: &str,
    path: &str,
    header: Option<&[u8]>,
) -> Result<Option<&'static Family>, ApiError> {
    let version = match header {
        None => None,
        Some(raw) => {
            let text = std::str::from_utf8(raw).unwrap_or("");
            match ApiVersion::parse(text) {
                Some(v) => Some(v),
                None => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "unsupported_api_version",
                        format!(
                            "{HEADER} {:?} is not a Cal.com API version: use one of {} (or leave the header out for the oldest shapes)",
                            String::from_utf8_lossy(raw),
                            known()
                        ),
                    ))
                }
            }
        }
    };
    let Some(r) = route(method, path) else {
        return Ok(None);
    };
    let Some(v) = version else {
        return Ok(r.families.first().copied());
    };
    match r.families.iter().find(|f| f.versions.contains(&v)) {
        Some(f) => Ok(Some(*f)),
        None => {
            let served: Vec<String> = r.families.iter().map(|f| f.names()).collect();
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_api_version",
                format!(
                    "{} {} is not served with {HEADER} {}: send {} (or no {HEADER})",
                    method.to_uppercase(),
                    r.path,
                    v.as_str(),
                    served.join(", or ")
                ),
            )
            .with_details(serde_json::json!({
                "servedVersions": r.families.iter().flat_map(|f| f.versions.iter().map(|v| v.as_str())).collect::<Vec<_>>()
            })))
        }
    }
}

/// The family a request was resolved to (put in the request by [`middleware`]).
#[derive(Debug, Clone, Copy)]
struct Resolved(Option<&'static Family>);

/// Check `cal-api-version` on every request, before anything else looks at it.
pub async fn middleware(State(_): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let method = req.method().as_str().to_ascii_lowercase();
    let header = req.headers().get(HEADER).map(|v| v.as_bytes().to_vec());
    let path = path.unwrap_or_else(|| req.uri().path().to_string());
    match resolve(&method, &path, header.as_deref()) {
        Ok(f) => {
            req.extensions_mut().insert(Resolved(f));
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// A resource whose shapes depend on the version.
pub trait Resource {
    /// Its parsers and writers.
    type Api: ?Sized + 'static;
    /// Those of `shape`.
    fn api(shape: Shape) -> &'static Self::Api;
}

/// The parsers and writers a request's version selects for resource `R`.
pub struct Versioned<R: Resource>(pub &'static R::Api);

impl<S: Send + Sync, R: Resource> FromRequestParts<S> for Versioned<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.extensions.get::<Resolved>() {
            Some(Resolved(Some(f))) => Ok(Versioned(R::api(f.shape))),
            _ => {
                tracing::error!(path = %parts.uri.path(), "a versioned handler on a route missing from versions::ROUTES");
                Err(ApiError::internal())
            }
        }
    }
}

/// "the fields of this endpoint in cal-api-version X": how unknown-field errors end.
pub fn fields_of(family: &Family) -> String {
    format!(
        "not a field of this endpoint with {HEADER} {} (a field no version documents is refused; see GET /openapi.json)",
        family.names()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_header_gets_the_oldest_shape_of_the_route() {
        let f = resolve("post", "/v2/bookings", None).unwrap().unwrap();
        assert_eq!(f.shape, Shape::Legacy);
        let f = resolve("post", "/v2/bookings", Some(b"2024-08-13"))
            .unwrap()
            .unwrap();
        assert_eq!(f.shape, Shape::Current);
        // As Cal.com: 2024-06-14 still gets the old booking controller.
        let f = resolve("get", "/v2/bookings", Some(b"2024-06-14"))
            .unwrap()
            .unwrap();
        assert_eq!(f.shape, Shape::Legacy);
        // A route with one family serves it without the header.
        let f = resolve("get", "/v2/slots", None).unwrap().unwrap();
        assert_eq!(f.shape, Shape::Current);
        assert!(resolve("get", "/v2/webhooks", None).unwrap().is_none());
        assert!(resolve("get", "/v2/webhooks", Some(b"2024-08-13"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn unknown_or_unserved_versions_are_a_clear_400() {
        let e = resolve("get", "/v2/webhooks", Some(b"2025-01-01")).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "unsupported_api_version")
        );
        assert!(e.message.contains("2024-09-04"), "{}", e.message);
        let e = resolve("get", "/v2/slots", Some(b"2024-08-13")).unwrap_err();
        assert_eq!(e.code, "unsupported_api_version");
        assert!(e.message.contains("2024-09-04"), "{}", e.message);
        assert_eq!(
            e.details["servedVersions"],
            serde_json::json!(["2024-09-04"])
        );
        let e = resolve("get", "/v2/slots/available", Some(b"2024-09-04")).unwrap_err();
        assert!(e.message.contains("2024-04-15"), "{}", e.message);
    }

    #[test]
    fn concrete_paths_find_their_route() {
        assert_eq!(
            newest_for("POST", "/v2/bookings/0f0c/cancel"),
            Some("2024-08-13")
        );
        assert_eq!(
            newest_for("GET", "/v2/slots/available?startTime=x"),
            Some("2024-08-13")
        );
        assert_eq!(
            newest_for("GET", "/v2/schedules/default"),
            Some("2024-06-11")
        );
        assert_eq!(newest_for("GET", "/v2/webhooks"), None);
    }

    #[test]
    fn every_version_selects_at_most_one_family_per_route() {
        for r in ROUTES {
            for v in ApiVersion::ALL {
                let n = r
                    .families
                    .iter()
                    .filter(|f| f.versions.contains(&v))
                    .count();
                assert!(
                    n <= 1,
                    "{} {} has {n} families for {}",
                    r.method,
                    r.path,
                    v.as_str()
                );
            }
            let legacy_first = r.families.len() < 2 || r.families[0].shape == Shape::Legacy;
            assert!(
                legacy_first,
                "{} {}: the oldest family first",
                r.method, r.path
            );
        }
    }
}
