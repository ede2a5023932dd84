//! Webhook bodies in Cal.com's shape (pure):
//! `{"triggerEvent":"BOOKING_CREATED","createdAt":"...","payload":{...}}`, where the payload
//! carries Cal.com's field names (`type`, `title`, `startTime`, `endTime`, `organizer`,
//! `attendees`, `uid`, `bookingId`, `eventTypeId`, `status` in capitals, ...).

use crate::service::domain::booking::Booking;
use jiff::Timestamp;
use serde_json::{json, Value};

/// The events a subscription can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    BookingCreated,
    BookingCancelled,
    BookingRescheduled,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [
        Trigger::BookingCreated,
        Trigger::BookingCancelled,
        Trigger::BookingRescheduled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::BookingCreated => "BOOKING_CREATED",
            Trigger::BookingCancelled => "BOOKING_CANCELLED",
            Trigger::BookingRescheduled => "BOOKING_RESCHEDULED",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

fn iso(t: Timestamp) -> String {
    format!("{t:.3}")
}

/// What a reschedule moved away from.
#[derive(Debug, Clone)]
pub struct Previous {
    pub uid: uuid::Uuid,
    pub id: i64,
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The body sent for `trigger` about booking `b` (for a reschedule, `b` is the new booking and
/// `previous` the one it replaced). `createdAt` is the time of the change (the booking's
/// `updatedAt`, set by the same transaction), so the body is a pure function of the row.
pub fn body(trigger: Trigger, b: &Booking, previous: Option<&Previous>) -> Value {
    let a = &b.attendee;
    let name = a["name"].as_str().unwrap_or_default();
    let email = a["email"].as_str().unwrap_or_default();
    let tz = a["timeZone"].as_str().unwrap_or("UTC");
    let locale = a["language"].as_str().unwrap_or("en");
    let mut attendees = vec![json!({
        "name": name, "email": email, "timeZone": tz, "language": {"locale": locale},
    })];
    let guests: Vec<&str> = b
        .guests
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for g in &guests {
        attendees
            .push(json!({"name": "", "email": g, "timeZone": tz, "language": {"locale": locale}}));
    }
    let mut p = json!({
        "type": b.event_type_slug,
        "title": b.title,
        "eventTitle": b.title,
        "description": null,
        "additionalNotes": "",
        "customInputs": {},
        "startTime": iso(b.start),
        "endTime": iso(b.end),
        "length": (b.end.as_second() - b.start.as_second()) / 60,
        "organizer": {
            "id": b.host_id, "name": b.host_name, "email": b.host_email,
            "timeZone": b.host_time_zone, "language": {"locale": "en"},
        },
        "responses": {
            "name": {"label": "your_name", "value": name},
            "email": {"label": "email_address", "value": email},
            "guests": {"label": "additional_guests", "value": guests},
        },
        "attendees": attendees,
        "location": null,
        "uid": b.uid,
        "bookingId": b.id,
        "eventTypeId": b.event_type_id,
        "metadata": b.metadata,
        "status": b.status.to_uppercase(),
    });
    match trigger {
        Trigger::BookingCancelled => {
            p["cancellationReason"] = json!(b.cancellation_reason);
        }
        Trigger::BookingRescheduled => {
            if let Some(prev) = previous {
                p["rescheduleId"] = json!(prev.id);
                p["rescheduleUid"] = json!(prev.uid);
                p["rescheduleStartTime"] = json!(iso(prev.start));
                p["rescheduleEndTime"] = json!(iso(prev.end));
            }
        }
        Trigger::BookingCreated => {}
    }
    let at = match trigger {
        Trigger::BookingCreated | Trigger::BookingRescheduled => b.created_at,
        Trigger::BookingCancelled => b.updated_at,
    };
    json!({"triggerEvent": trigger.as_str(), "createdAt": iso(at), "payload": p})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Booking {
        Booking {
            id: 7,
            uid: uuid::Uuid::nil(),
            org_id: 1,
            event_type_id: 3,
            event_type_slug: "call".into(),
            title: "Call".into(),
            host_id: 2,
            host_name: "Host".into(),
            host_email: "host@example.com".into(),
            host_time_zone: "UTC".into(),
            host_username: "host".into(),
            start: "2031-03-03T09:00:00Z".parse().unwrap(),
            end: "2031-03-03T09:30:00Z".parse().unwrap(),
            status: "accepted".into(),
            attendee: json!({"name": "Ann", "email": "ann@example.com", "timeZone": "Europe/Berlin"}),
            guests: json!(["bob@example.com"]),
            metadata: json!({"k": "v"}),
            rescheduled_from_uid: None,
            rescheduled_to_uid: None,
            cancellation_reason: Some("ill".into()),
            location: None,
            booking_fields_responses: json!({}),
            rescheduling_reason: None,
            ical_uid: uuid::Uuid::nil(),
            created_at: "2031-01-01T00:00:00Z".parse().unwrap(),
            updated_at: "2031-01-02T00:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn created_body_has_cal_com_field_names() {
        let v = body(Trigger::BookingCreated, &sample(), None);
        assert_eq!(v["triggerEvent"], "BOOKING_CREATED");
        assert_eq!(v["createdAt"], "2031-01-01T00:00:00.000Z");
        let p = &v["payload"];
        assert_eq!(p["startTime"], "2031-03-03T09:00:00.000Z");
        assert_eq!(p["endTime"], "2031-03-03T09:30:00.000Z");
        assert_eq!(p["length"], 30);
        assert_eq!(p["type"], "call");
        assert_eq!(p["status"], "ACCEPTED");
        assert_eq!(p["bookingId"], 7);
        assert_eq!(p["uid"], "00000000-0000-0000-0000-000000000000");
        assert_eq!(p["organizer"]["email"], "host@example.com");
        assert_eq!(p["attendees"][0]["timeZone"], "Europe/Berlin");
        assert_eq!(p["attendees"][1]["email"], "bob@example.com");
        assert_eq!(p["responses"]["email"]["value"], "ann@example.com");
        assert!(p.get("cancellationReason").is_none());
    }

    #[test]
    fn cancel_and_reschedule_add_their_fields() {
        let mut b = sample();
        b.status = "cancelled".into();
        let v = body(Trigger::BookingCancelled, &b, None);
        assert_eq!(v["payload"]["cancellationReason"], "ill");
        assert_eq!(v["payload"]["status"], "CANCELLED");
        assert_eq!(v["createdAt"], "2031-01-02T00:00:00.000Z");
        let prev = Previous {
            uid: uuid::Uuid::from_u128(1),
            id: 6,
            start: "2031-03-03T08:00:00Z".parse().unwrap(),
            end: "2031-03-03T08:30:00Z".parse().unwrap(),
        };
        let v = body(Trigger::BookingRescheduled, &sample(), Some(&prev));
        assert_eq!(v["triggerEvent"], "BOOKING_RESCHEDULED");
        assert_eq!(v["payload"]["rescheduleUid"], prev.uid.to_string());
        assert_eq!(v["payload"]["rescheduleId"], 6);
        assert_eq!(
            v["payload"]["rescheduleStartTime"],
            "2031-03-03T08:00:00.000Z"
        );
    }

    #[test]
    fn triggers_round_trip() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::parse(t.as_str()), Some(t));
        }
        assert_eq!(Trigger::parse("MEETING_ENDED"), None);
    }
}
