//! `GET /v2/bookings/{uid}/ics`: the booking's calendar file. Served from object storage when
//! the stored file is current; rendered from the database when there is no storage, the file
//! is not written yet (a write is pending) or storage does not answer. Both give the same bytes
//! for the same state; `X-Calops-Ics-Source` says which one answered.

use super::error::{ApiError, ApiResult, Path};
use crate::service::calendar;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use uuid::Uuid;

pub async fn get_ics(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> ApiResult {
    let org = who.org()?;
    who.require("read")?;
    let uid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("booking"))?;
    let (cal, pending) = state
        .store
        .calendar_of_booking(org, uid)
        .await?
        .ok_or_else(|| ApiError::not_found("booking"))?;
    let mut stored = None;
    if let (Some(Ok(objects)), false) = (&state.objects, pending) {
        match objects.get(&calendar::key(cal.org_id, cal.ical_uid)).await {
            Ok(found) => stored = found,
            Err(e) => {
                tracing::warn!(error = %e, "object storage did not answer; rendering the ICS")
            }
        }
    }
    let (body, source) = match stored {
        Some(b) => (b, "storage"),
        None => (calendar::render(&cal).into_bytes(), "database"),
    };
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(calendar::CONTENT_TYPE),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{}.ics\"", cal.ical_uid))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-calops-ics-source", HeaderValue::from_static(source));
    Ok(res)
}
