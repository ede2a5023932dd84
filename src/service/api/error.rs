//! The error body every endpoint uses:
//! `{"status":"error","error":{"code","message","details"}}`, and extractors whose rejections
//! produce it (bad JSON is a 400, never a 500).

use crate::service::domain::FieldError;
use crate::service::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    /// 400 listing every field problem.
    pub fn validation(errors: Vec<FieldError>) -> ApiError {
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!("{} fields are invalid", many.len()),
        };
        ApiError::new(StatusCode::BAD_REQUEST, "validation_error", message)
            .with_details(json!({ "fields": errors }))
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error; the server log has the details (search for this request's x-request-id)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "status": "error",
            "error": { "code": self.code, "message": self.message, "details": self.details },
        });
        let mut res = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::BookingConflict(m) => {
                ApiError::new(StatusCode::CONFLICT, "booking_conflict", m)
            }
            StoreError::Transient(m) => {
                tracing::warn!(error = %m, "transient database conflict after retries");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_busy",
                    "the database could not settle concurrent writes; retry shortly",
                )
            }
            StoreError::NotActive(m) => {
                ApiError::new(StatusCode::CONFLICT, "booking_not_active", m)
            }
            StoreError::ReservationInvalid(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reservation_invalid", m)
            }
            StoreError::IdempotencyMismatch(m) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                m,
            ),
            StoreError::Invalid(m) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_reference", m)
            }
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            StoreError::Db(e) => {
                tracing::error!(error = %e, "database error");
                ApiError::internal()
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with `Content-Type: application/json`",
            ),
            JsonRejection::JsonSyntaxError(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {}", inner(&e.body_text())),
            ),
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "validation_error",
                format!(
                    "the body does not match the expected shape: {}",
                    inner(&e.body_text())
                ),
            ),
            other => ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", other.body_text()),
        }
    }
}

/// axum prefixes its messages with a generic sentence; keep the useful part.
fn inner(text: &str) -> String {
    match text.split_once(": ") {
        Some((_, rest)) => rest.to_string(),
        None => text.to_string(),
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("invalid query string: {}", inner(&r.body_text())),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("invalid path parameter: {}", inner(&r.body_text())),
        )
    }
}

/// `axum::Json` with our error body on rejection.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Query` with our error body on rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with our error body on rejection.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// `{"status":"success","data":...}` with a status code.
pub fn success(status: StatusCode, data: Value) -> Response {
    (
        status,
        axum::Json(json!({ "status": "success", "data": data })),
    )
        .into_response()
}

pub type ApiResult = Result<Response, ApiError>;
