//! `POST /v2/bookings/composite`: several segments (each an event type and a start, possibly of
//! different hosts, with pauses between) booked in one transaction, all or nothing. Each segment
//! is checked like a single booking (422 `slot_unavailable` when it is not a slot) and inserted
//! by the same code (PostgreSQL's exclusion constraint decides: 409 `booking_conflict`). Every
//! error names the segment: `segments[i]` in the message and `details.segment = i`.

use super::bookings::{check_slot, idempotency_key, replayed};
use super::error::{success, ApiError, ApiResult};
use super::input::{self, instant, JsonBody};
use super::versions::bookings::{
    check_attendee, guests, metadata, AttendeeIn, BookingApi, Current,
};
use crate::service::domain::booking::Booking;
use crate::service::domain::FieldError;
use crate::service::principal::Principal;
use crate::service::state::AppState;
use crate::service::store::bookings::{CompositeOutcome, NewBooking, SegmentError};
use crate::service::store::StoreError;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// The most segments one composite booking may have.
pub const MAX_SEGMENTS: usize = 10;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Segment {
    pub event_type_id: i64,
    pub start: String,
    #[serde(default)]
    pub length_in_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateComposite {
    pub segments: Vec<Segment>,
    pub attendee: AttendeeIn,
    #[serde(default)]
    pub guests: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// What every segment's booking shares: the attendee, guests and metadata as stored.
#[derive(Debug)]
pub struct Shared {
    attendee: Value,
    guests: Vec<String>,
    metadata: Value,
}

/// Name segment `i` in an error: message prefix and `details.segment`.
fn at_segment(i: usize, mut e: ApiError) -> ApiError {
    e.message = format!("segments[{i}]: {}", e.message);
    let mut details = json!({ "segment": i });
    if let Some(fields) = e.details.get("fields").and_then(Value::as_array) {
        let renamed: Vec<Value> = fields
            .iter()
            .map(|f| {
                let mut f = f.clone();
                if let Some(name) = f["field"].as_str() {
                    f["field"] = json!(format!("segments[{i}].{name}"));
                }
                f
            })
            .collect();
        details["fields"] = json!(renamed);
    }
    e.details = details;
    e
}

/// Check the request (every problem at once); the starts of the segments.
pub fn validate(
    req: CreateComposite,
) -> Result<(Vec<jiff::Timestamp>, Shared, Vec<Segment>), ApiError> {
    let mut errors = Vec::new();
    if req.segments.is_empty() || req.segments.len() > MAX_SEGMENTS {
        errors.push(FieldError::new(
            "segments",
            format!("give 1 to {MAX_SEGMENTS} segments"),
        ));
    }
    let mut starts = Vec::new();
    for (i, s) in req.segments.iter().enumerate() {
        if let Some(t) = instant(&format!("segments[{i}].start"), &s.start, &mut errors) {
            starts.push(t);
        }
        if let Some(n) = s.length_in_minutes {
            if !(1..=1440).contains(&n) {
                errors.push(FieldError::new(
                    format!("segments[{i}].lengthInMinutes"),
                    "must be 1 to 1440",
                ));
            }
        }
    }
    // The shared fields are checked exactly as a single booking's (2024-08-13).
    let shared = Shared {
        attendee: check_attendee("attendee", &req.attendee, &mut errors),
        guests: guests("guests", &req.guests, &mut errors),
        metadata: metadata("metadata", req.metadata, &mut errors),
    };
    input::check(errors)?;
    Ok((starts, shared, req.segments))
}

/// The response data: one booking per segment, in request order.
fn bookings_json(booked: &[Booking]) -> Value {
    json!(booked
        .iter()
        .map(|b| Current.booking(b))
        .collect::<Vec<_>>())
}

pub async fn create(
    State(state): State<AppState>,
    who: Principal,
    headers: HeaderMap,
    body: JsonBody,
) -> ApiResult {
    let org = who.org()?;
    who.require("book")?;
    let req: CreateComposite = input::typed(
        body.value,
        "not a field of a composite booking (see GET /openapi.json)",
    )?;
    let (starts, shared, segments) = validate(req)?;
    let idem = idempotency_key(&headers, &body.raw, "composite")?;
    if let Some(k) = &idem {
        if let Some(r) = state.store.idempotent_replay(org, k).await? {
            return Ok(replayed(r));
        }
    }
    match plan_and_book(&state, org, starts, shared, segments, idem.as_ref()).await {
        // The first request with this key may have just taken the slots.
        Err(e) => match &idem {
            Some(k) => match state.store.idempotent_replay(org, k).await? {
                Some(r) => Ok(replayed(r)),
                None => Err(e),
            },
            None => Err(e),
        },
        ok => ok,
    }
}

async fn plan_and_book(
    state: &AppState,
    org: i64,
    starts: Vec<jiff::Timestamp>,
    shared: Shared,
    segments: Vec<Segment>,
    idem: Option<&crate::service::store::bookings::IdempotencyKey>,
) -> ApiResult {
    let mut planned: Vec<NewBooking> = Vec::with_capacity(segments.len());
    for (i, (s, start)) in segments.iter().zip(starts).enumerate() {
        let (end, _) = check_slot(
            state,
            org,
            s.event_type_id,
            start,
            s.length_in_minutes,
            None,
            true,
        )
        .await
        .map_err(|e| at_segment(i, e))?;
        if let Some(prev) = planned.last() {
            if start < prev.end {
                return Err(at_segment(
                    i,
                    ApiError::validation(vec![FieldError::new(
                        "start",
                        format!(
                            "starts before segments[{}] ends ({}); segments go in time order, one after the other",
                            i - 1,
                            prev.end
                        ),
                    )]),
                ));
            }
        }
        planned.push(NewBooking {
            org_id: org,
            event_type_id: s.event_type_id,
            start,
            end,
            attendee: shared.attendee.clone(),
            guests: json!(shared.guests),
            metadata: shared.metadata.clone(),
            reservation_uid: None,
            location: None,
            booking_fields_responses: json!({}),
        });
    }
    // A deadlock or serialization failure wrote nothing: try again (as single bookings do).
    let mut attempt = 0;
    let booked = loop {
        match state
            .store
            .create_composite(&planned, idem, bookings_json)
            .await
        {
            Err(SegmentError {
                error: StoreError::Transient(_),
                ..
            }) if attempt < 7 => {
                attempt += 1;
                let ms = rand::random::<u64>() % (2 << attempt);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            Err(SegmentError { segment, error }) => {
                return Err(at_segment(segment, ApiError::from(error)))
            }
            Ok(CompositeOutcome::Replayed(r)) => return Ok(replayed(r)),
            Ok(CompositeOutcome::Created(b)) => break b,
        }
    };
    Ok(success(StatusCode::CREATED, bookings_json(&booked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_names_its_segment() {
        let req: CreateComposite = serde_json::from_value(json!({
            "segments": [
                {"eventTypeId": 1, "start": "2031-03-03T09:00:00Z"},
                {"eventTypeId": 2, "start": "soon", "lengthInMinutes": 0}
            ],
            "attendee": {"name": "", "email": "ann@example.com", "timeZone": "UTC"}
        }))
        .unwrap();
        let e = validate(req).unwrap_err();
        let fields: Vec<&str> = e.details["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "segments[1].start",
                "segments[1].lengthInMinutes",
                "attendee.name"
            ]
        );
        let none: CreateComposite = serde_json::from_value(json!({
            "segments": [],
            "attendee": {"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}
        }))
        .unwrap();
        assert!(validate(none).unwrap_err().message.contains("segments"));
        let e = at_segment(
            2,
            ApiError::new(StatusCode::CONFLICT, "booking_conflict", "taken"),
        );
        assert_eq!(e.message, "segments[2]: taken");
        assert_eq!(e.details["segment"], 2);
    }
}
