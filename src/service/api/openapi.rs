//! GET /openapi.json: an OpenAPI 3.1 description of every endpoint, built from [`ENDPOINTS`],
//! the same table the integration test walks to prove each documented operation is routed.

use super::versions::{self, ApiVersion, Shape};
use serde_json::{json, Map, Value};

/// One documented operation.
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// Required scope; `None` for public endpoints, `Some("bootstrap")` for the bootstrap token.
    pub scope: Option<&'static str>,
    /// Request body schema name in `components.schemas`.
    pub body: Option<&'static str>,
    /// Success status and response schema name.
    pub ok: (u16, &'static str),
    /// Error statuses the endpoint can answer with.
    pub errors: &'static [u16],
    /// The older shapes of a route Cal.com serves in two (`versions::ROUTES`): request body
    /// and success schema of the legacy family. `body` and `ok` above are the current ones.
    pub legacy: Option<Legacy>,
}

/// The legacy shapes of an endpoint.
pub struct Legacy {
    pub body: Option<&'static str>,
    pub ok: &'static str,
}

const AUTH_ERR: &[u16] = &[400, 401, 403, 404];

pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "get",
        path: "/health",
        summary: "Dependency status; 503 when the database is down. Checked at most once a second; latencies and raw errors only for the bootstrap admin token and on the private listener",
        scope: None,
        body: None,
        ok: (200, "Health"),
        errors: &[503],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/livez",
        summary: "Liveness: the process answers (checks no dependency, so a database failover does not restart the service)",
        scope: None,
        body: None,
        ok: (200, "Live"),
        errors: &[],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text format). Served on the private listener; on the public one only with CALOPS_METRICS_PUBLIC=on (404 otherwise)",
        scope: None,
        body: None,
        ok: (200, "PrometheusText"),
        errors: &[404],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        scope: None,
        body: None,
        ok: (200, "Object"),
        errors: &[],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations",
        summary: "Create a top-level organization and its first API key (returned once)",
        scope: Some("bootstrap"),
        body: Some("CreateOrganization"),
        ok: (201, "OrganizationWithKey"),
        errors: &[400, 401, 403, 409, 415],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}",
        summary: "An organization with its branding",
        scope: Some("read"),
        body: None,
        ok: (200, "Organization"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "patch",
        path: "/v2/organizations/{orgId}",
        summary: "Change name, branding or metadata; null clears a branding field",
        scope: Some("admin"),
        body: Some("PatchOrganization"),
        ok: (200, "Organization"),
        errors: &[400, 401, 403, 404, 415],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/organizations",
        summary: "Create a child organization (sub-account) and its first API key (returned once)",
        scope: Some("admin"),
        body: Some("CreateOrganization"),
        ok: (201, "OrganizationWithKey"),
        errors: &[400, 401, 403, 404, 409, 415],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/organizations",
        summary: "Child organizations",
        scope: Some("read"),
        body: None,
        ok: (200, "OrganizationList"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/api-keys",
        summary: "Create another API key (returned once)",
        scope: Some("admin"),
        body: Some("CreateApiKey"),
        ok: (201, "ApiKey"),
        errors: &[400, 401, 403, 404, 415],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/users",
        summary: "Create a user (host)",
        scope: Some("admin"),
        body: Some("CreateUser"),
        ok: (201, "User"),
        errors: &[400, 401, 403, 404, 409, 415],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/users",
        summary: "Users of an organization",
        scope: Some("read"),
        body: None,
        ok: (200, "UserList"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/users/{userId}",
        summary: "One user",
        scope: Some("read"),
        body: None,
        ok: (200, "User"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/schedules",
        summary: "Create a schedule for a host of the key's organization",
        scope: Some("admin"),
        body: Some("CreateSchedule"),
        ok: (201, "Schedule"),
        errors: &[400, 401, 403, 415],
        legacy: Some(Legacy {
            body: Some("LegacyCreateSchedule"),
            ok: "LegacySchedule",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/schedules",
        summary: "Schedules of the key's organization",
        scope: Some("read"),
        body: None,
        ok: (200, "ScheduleList"),
        errors: &[401, 403],
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyScheduleList",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/schedules/default",
        summary: "The default schedule of the API key's user (data null when it has none); 403 user_key_required for an organization's key",
        scope: Some("read"),
        body: None,
        ok: (200, "DefaultSchedule"),
        errors: &[400, 401, 403],
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyDefaultSchedule",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/schedules/{scheduleId}",
        summary: "One schedule",
        scope: Some("read"),
        body: None,
        ok: (200, "Schedule"),
        errors: AUTH_ERR,
        legacy: Some(Legacy {
            body: None,
            ok: "LegacySchedule",
        }),
    },
    Endpoint {
        method: "patch",
        path: "/v2/schedules/{scheduleId}",
        summary: "Change a schedule (given fields are replaced)",
        scope: Some("admin"),
        body: Some("PatchSchedule"),
        ok: (200, "Schedule"),
        errors: &[400, 401, 403, 404, 415],
        legacy: Some(Legacy {
            body: Some("LegacyPatchSchedule"),
            ok: "LegacyScheduleUpdated",
        }),
    },
    Endpoint {
        method: "delete",
        path: "/v2/schedules/{scheduleId}",
        summary: "Delete a schedule",
        scope: Some("admin"),
        body: None,
        ok: (200, "Deleted"),
        errors: AUTH_ERR,
        legacy: Some(Legacy {
            body: None,
            ok: "Deleted",
        }),
    },
    Endpoint {
        method: "post",
        path: "/v2/event-types",
        summary: "Create an event type for a host",
        scope: Some("admin"),
        body: Some("CreateEventType"),
        ok: (201, "EventType"),
        errors: &[400, 401, 403, 409, 415],
        legacy: Some(Legacy {
            body: Some("LegacyCreateEventType"),
            ok: "LegacyEventType",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/event-types",
        summary: "Event types of the key's organization",
        scope: Some("read"),
        body: None,
        ok: (200, "EventTypeList"),
        errors: &[401, 403],
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyEventTypeList",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/event-types/{eventTypeId}",
        summary: "One event type",
        scope: Some("read"),
        body: None,
        ok: (200, "EventType"),
        errors: AUTH_ERR,
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyEventTypeOne",
        }),
    },
    Endpoint {
        method: "patch",
        path: "/v2/event-types/{eventTypeId}",
        summary: "Change an event type (given fields replace; null clears optional ones)",
        scope: Some("admin"),
        body: Some("PatchEventType"),
        ok: (200, "EventType"),
        errors: &[400, 401, 403, 404, 409, 415],
        legacy: Some(Legacy {
            body: Some("LegacyPatchEventType"),
            ok: "LegacyEventType",
        }),
    },
    Endpoint {
        method: "delete",
        path: "/v2/event-types/{eventTypeId}",
        summary: "Delete an event type without bookings (409 when it has some)",
        scope: Some("admin"),
        body: None,
        ok: (200, "DeletedEventType"),
        errors: &[400, 401, 403, 404, 409],
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyDeletedEventType",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/slots",
        summary:
            "Bookable start times grouped by date in the requested time zone (Cal.com API v2 shape)",
        scope: Some("read"),
        body: None,
        ok: (200, "Slots"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/slots/reservations",
        summary: "Hold a slot (5 minutes unless reservationDuration says otherwise); a held slot leaves /v2/slots and only the booking presenting reservationUid may take it; 422 when the slot is not available or already held",
        scope: Some("book"),
        body: Some("CreateReservation"),
        ok: (201, "Reservation"),
        errors: &[400, 401, 403, 404, 422],
        legacy: None,
    },
    Endpoint {
        method: "delete",
        path: "/v2/slots/reservations/{uid}",
        summary: "Release a slot hold early",
        scope: Some("book"),
        body: None,
        ok: (200, "ReservationReleased"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/slots/reservations/{uid}",
        summary: "A live slot hold",
        scope: Some("read"),
        body: None,
        ok: (200, "Reservation"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "patch",
        path: "/v2/slots/reservations/{uid}",
        summary: "Move a live slot hold to another slot (or duration); it keeps its uid. 422 when the slot is not available",
        scope: Some("book"),
        body: Some("CreateReservation"),
        ok: (200, "Reservation"),
        errors: &[400, 401, 403, 404, 415, 422],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/slots/available",
        summary: "Cal.com's slots before 2024-09-04: {slots: {date: [{time}]}} (slotFormat=range: {startTime, endTime}); startTime and endTime as ISO 8601 times or dates",
        scope: Some("read"),
        body: None,
        ok: (200, "LegacySlots"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/slots/reserve",
        summary: "Cal.com's slot hold before 2024-09-04: answers the hold's uid (data is the uid itself); 5 minutes",
        scope: Some("book"),
        body: Some("LegacyReserveSlot"),
        ok: (201, "LegacyReserved"),
        errors: &[400, 401, 403, 404, 415, 422],
        legacy: None,
    },
    Endpoint {
        method: "delete",
        path: "/v2/slots/selected-slot",
        summary: "Cal.com's hold release before 2024-09-04 (?uid=)",
        scope: Some("book"),
        body: None,
        ok: (200, "StatusOnly"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings",
        summary: "Book a slot. 422 when start is not an available slot; 409 booking_conflict when someone else took or holds it (PostgreSQL refuses overlaps). An Idempotency-Key header returns the first result on a retry.",
        scope: Some("book"),
        body: Some("CreateBooking"),
        ok: (201, "Booking"),
        errors: &[400, 401, 403, 404, 409, 422],
        legacy: Some(Legacy {
            body: Some("LegacyCreateBooking"),
            ok: "LegacyBooking",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings",
        summary: "The organization's bookings by start time, paged; status=upcoming|past|cancelled|unconfirmed|accepted (comma-separated), afterStart, beforeEnd, eventTypeId, take, skip",
        scope: Some("read"),
        body: None,
        ok: (200, "BookingList"),
        errors: &[400, 401, 403],
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyBookingList",
        }),
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings/{uid}",
        summary: "One booking",
        scope: Some("read"),
        body: None,
        ok: (200, "Booking"),
        errors: AUTH_ERR,
        legacy: Some(Legacy {
            body: None,
            ok: "LegacyBooking",
        }),
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/{uid}/cancel",
        summary: "Cancel an accepted booking (409 booking_not_active when it is not)",
        scope: Some("cancel"),
        body: Some("CancelBooking"),
        ok: (200, "Booking"),
        errors: &[400, 401, 403, 404, 409],
        legacy: Some(Legacy {
            body: Some("LegacyCancelBooking"),
            ok: "LegacyCancelled",
        }),
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/{uid}/reschedule",
        summary: "Move a booking in one transaction: a new booking linked both ways to the old, which is cancelled; when the new time is taken (409) nothing changes",
        scope: Some("reschedule"),
        body: Some("RescheduleBooking"),
        ok: (201, "Booking"),
        errors: &[400, 401, 403, 404, 409, 422],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings/{uid}/ics",
        summary: "The booking's RFC 5545 calendar (text/calendar): one UID across reschedules, SEQUENCE raised on each reschedule and the cancel, METHOD:REQUEST or METHOD:CANCEL. From object storage (ics/<org>/<calendar uid>.ics) when written, else rendered from the database; X-Calops-Ics-Source says which",
        scope: Some("read"),
        body: None,
        ok: (200, "Calendar"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/composite",
        summary: "Book several segments (event types, possibly of different hosts, in time order with pauses between) in one transaction: all or nothing. 422 slot_unavailable or 409 booking_conflict name the segment (details.segment)",
        scope: Some("book"),
        body: Some("CreateCompositeBooking"),
        ok: (201, "CompositeBooking"),
        errors: &[400, 401, 403, 404, 409, 422],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/me",
        summary: "The user the API key belongs to (Cal.com's profile shape); 403 user_key_required for an organization's key",
        scope: Some("read"),
        body: None,
        ok: (200, "Me"),
        errors: &[400, 401, 403, 404],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/timezones",
        summary: "Every time zone calops knows (its bundled tz database), as [{city, timezone}]",
        scope: None,
        body: None,
        ok: (200, "Timezones"),
        errors: &[400],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks",
        summary: "Subscribe a URL to booking events; the secret is write-only (never returned)",
        scope: Some("admin"),
        body: Some("CreateWebhook"),
        ok: (201, "Webhook"),
        errors: &[400, 401, 403],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks",
        summary: "The organization's webhooks (take, skip)",
        scope: Some("admin"),
        body: None,
        ok: (200, "WebhookList"),
        errors: &[400, 401, 403],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks/{webhookId}",
        summary: "One webhook with its circuit breaker state",
        scope: Some("admin"),
        body: None,
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "patch",
        path: "/v2/webhooks/{webhookId}",
        summary: "Change URL, triggers, active or secret (null removes it); a changed URL or re-activation closes the breaker",
        scope: Some("admin"),
        body: Some("PatchWebhook"),
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "delete",
        path: "/v2/webhooks/{webhookId}",
        summary: "Delete a webhook and its delivery history",
        scope: Some("admin"),
        body: None,
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks/{webhookId}/deliveries",
        summary: "Delivery history, newest first, with every attempt (status, take, skip)",
        scope: Some("admin"),
        body: None,
        ok: (200, "WebhookDeliveryList"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks/{webhookId}/deliveries/{deliveryId}/replay",
        summary: "Send one delivery's event again: a new delivery with the same body and eventId",
        scope: Some("admin"),
        body: None,
        ok: (202, "WebhookDelivery"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks/{webhookId}/replay",
        summary: "Send again every original event of this webhook created in [from, to): at most 31 days and 1000 events (422 replay_too_large, nothing sent, when the range holds more)",
        scope: Some("admin"),
        body: Some("ReplayRange"),
        ok: (202, "WebhookReplay"),
        errors: &[400, 401, 403, 404, 422],
        legacy: None,
    },
    Endpoint {
        method: "get",
        path: "/v2/calendars",
        summary: "Connected calendars (CalDAV) of the organization, or of one host (userId), with their sync state and the destination calendars",
        scope: Some("read"),
        body: None,
        ok: (200, "ConnectedCalendars"),
        errors: &[400, 401, 403],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/calendars/caldav/credentials",
        summary: "Connect a host's CalDAV account: discovery from the URL (/.well-known/caldav, current-user-principal, calendar-home-set); the password (or passwordRef env:NAME) is write-only and sealed at rest. 422 when the server refuses the credentials or discovery fails, 502 when it does not answer",
        scope: Some("admin"),
        body: Some("ConnectCalDav"),
        ok: (201, "CalendarConnection"),
        errors: &[400, 401, 403, 404, 422, 502],
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/calendars/caldav/disconnect",
        summary: "Remove a connection (credentialId), its calendars and their busy time",
        scope: Some("admin"),
        body: Some("DisconnectCalendar"),
        ok: (200, "Object"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "post",
        path: "/v2/selected-calendars",
        summary: "Count a connected calendar's events as busy time for slots and bookings",
        scope: Some("admin"),
        body: Some("CalendarRef"),
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "delete",
        path: "/v2/selected-calendars",
        summary: "Stop counting a calendar (integration, externalId, credentialId in the query); its busy time goes at once",
        scope: Some("admin"),
        body: None,
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
        legacy: None,
    },
    Endpoint {
        method: "put",
        path: "/v2/destination-calendars",
        summary: "The calendar the host's bookings are written to (one per host): created on booking, updated on reschedule, deleted on cancel",
        scope: Some("admin"),
        body: Some("CalendarRef"),
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
        legacy: None,
    },
];

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}').map(str::to_string))
        .map(|name| {
            let schema = if name == "uid" || name == "deliveryId" {
                json!({"type": "string", "format": "uuid"})
            } else {
                json!({"type": "integer", "format": "int64"})
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

/// The query of `GET /v2/bookings`: 2024-08-13's names, then the older shape's (a name of
/// the other shape is 400).
fn booking_list_params() -> Vec<Value> {
    let p = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    let time = || json!({"type": "string", "description": "Any ISO 8601 time (or a date)."});
    let ids = || json!({"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"});
    let order = || json!({"type": "string", "enum": ["asc", "desc"]});
    vec![
        p("status", json!({"type": "string"}), "2024-08-13: upcoming, recurring, past, cancelled, unconfirmed or accepted, comma-separated; default all. recurring selects none (calops has no recurring bookings)."),
        p("attendeeEmail", json!({"type": "string"}), "2024-08-13: the attendee's or a guest's e-mail address (case-insensitively)."),
        p("attendeeName", json!({"type": "string"}), "The attendee's name, exactly (both shapes)."),
        p("bookingUid", json!({"type": "string"}), "2024-08-13: one booking."),
        p("eventTypeIds", ids(), "2024-08-13: any of these event types."),
        p("eventTypeId", json!({"type": "integer"}), "2024-08-13: this event type."),
        p("teamsIds", ids(), "2024-08-13: bookings of these teams (calops has none: selects none)."),
        p("teamId", json!({"type": "integer"}), "2024-08-13: bookings of this team (selects none)."),
        p("afterStart", time(), "2024-08-13: starting at or after."),
        p("beforeEnd", time(), "2024-08-13: ending at or before."),
        p("afterCreatedAt", time(), "2024-08-13: created at or after."),
        p("beforeCreatedAt", time(), "2024-08-13: created at or before."),
        p("afterUpdatedAt", time(), "2024-08-13: updated at or after."),
        p("beforeUpdatedAt", time(), "2024-08-13: updated at or before."),
        p("sortStart", order(), "2024-08-13: by start time."),
        p("sortEnd", order(), "2024-08-13: by end time."),
        p("sortCreated", order(), "2024-08-13: by creation time."),
        p("sortUpdatedAt", order(), "2024-08-13: by last change."),
        p("take", json!({"type": "integer", "minimum": 1, "maximum": 250, "default": 100}), "2024-08-13: page size."),
        p("skip", json!({"type": "integer", "minimum": 0, "maximum": MAX_SKIP, "default": 0}), "2024-08-13: bookings to skip."),
        p("filters[status]", json!({"type": "string", "enum": ["upcoming", "recurring", "past", "cancelled", "unconfirmed"]}), "Older shape: one status, default upcoming."),
        p("filters[eventTypeIds]", ids(), "Older shape: any of these event types."),
        p("filters[userIds]", ids(), "Older shape: bookings of these hosts."),
        p("filters[teamsIds]", ids(), "Older shape: bookings of these teams (selects none)."),
        p("limit", json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10}), "Older shape: page size."),
        p("cursor", json!({"type": "integer", "minimum": 0, "maximum": MAX_SKIP, "default": 0}), "Older shape: bookings to skip (nextCursor of the previous page)."),
    ]
}

/// The `cal-api-version` header of an operation: the versions it serves and which shape
/// each selects (`versions::ROUTES`); any known version (or none) for the others.
fn version_param(e: &Endpoint) -> Value {
    let all: Vec<&str> = ApiVersion::ALL.iter().map(|v| v.as_str()).collect();
    match versions::route(e.method, e.path) {
        None => json!({"name": versions::HEADER, "in": "header", "required": false,
            "schema": {"type": "string", "enum": all},
            "description": "Any Cal.com API version or none: this endpoint has one shape. An unknown value is 400 unsupported_api_version."}),
        Some(r) => {
            let served: Vec<&str> = r
                .families
                .iter()
                .flat_map(|f| f.versions.iter().map(|v| v.as_str()))
                .collect();
            let text: Vec<String> = r
                .families
                .iter()
                .map(|f| {
                    format!(
                        "{}: the {} shape",
                        f.names(),
                        match f.shape {
                            Shape::Legacy => "older (before the newest version)",
                            Shape::Current => "newest",
                        }
                    )
                })
                .collect();
            json!({"name": versions::HEADER, "in": "header", "required": false,
                "schema": {"type": "string", "enum": served},
                "description": format!("{}. Without the header: the {}. Another version is 400 unsupported_api_version.",
                    text.join("; "), match r.families[0].shape { Shape::Legacy => "older shape (as Cal.com)", Shape::Current => "newest shape (the only one)" })})
        }
    }
}

/// `x-cal-api-versions`: for a versioned operation, each shape's versions and whether a
/// request without the header gets it.
fn versions_extension(e: &Endpoint) -> Option<Value> {
    let r = versions::route(e.method, e.path)?;
    Some(Value::Array(
        r.families
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (body, ok) = match (f.shape, &e.legacy) {
                    (Shape::Legacy, Some(l)) => (l.body, l.ok),
                    _ => (e.body, e.ok.1),
                };
                json!({"versions": f.versions.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
                       "withoutHeader": i == 0, "requestBody": body, "response": ok})
            })
            .collect(),
    ))
}

fn legacy_slot_params() -> Vec<Value> {
    let p = |name: &str, required: bool, schema: Value, description: &str| json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description});
    vec![
        p(
            "eventTypeId",
            false,
            json!({"type": "integer"}),
            "The event type (or eventTypeSlug with usernameList).",
        ),
        p(
            "eventTypeSlug",
            false,
            json!({"type": "string"}),
            "With usernameList (one username) and orgSlug.",
        ),
        p(
            "usernameList",
            false,
            json!({"type": "array", "items": {"type": "string"}}),
            "One username (usernameList[] too); several (dynamic group events) are refused.",
        ),
        p(
            "orgSlug",
            false,
            json!({"type": "string"}),
            "The key's organization.",
        ),
        p(
            "startTime",
            true,
            day_or_time(),
            "ISO 8601 time, or YYYY-MM-DD (start of that day in timeZone).",
        ),
        p(
            "endTime",
            true,
            day_or_time(),
            "ISO 8601 time, or YYYY-MM-DD (end of that day); at most 31 days after startTime.",
        ),
        p(
            "timeZone",
            false,
            json!({"type": "string", "default": "UTC"}),
            "IANA zone of the answer's dates and times.",
        ),
        p(
            "duration",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 1440}),
            "A length other than the event type's.",
        ),
        p(
            "slotFormat",
            false,
            json!({"type": "string", "enum": ["time", "range"]}),
            "\"range\" gives startTime and endTime.",
        ),
        p(
            "rescheduleUid",
            false,
            json!({"type": "string"}),
            "Accepted with a warning: the booking being moved still counts as busy.",
        ),
        p(
            "debug",
            false,
            json!({"type": "boolean"}),
            "Accepted with a warning.",
        ),
    ]
}

/// The largest `skip`/`cursor` the handlers take.
const MAX_SKIP: i64 = i64::MAX / 2;

/// A query time that may be a day (`YYYY-MM-DD`) or an instant.
fn day_or_time() -> Value {
    json!({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})
}

fn page_params() -> Vec<Value> {
    vec![
        json!({"name": "take", "in": "query", "required": false,
               "schema": {"type": "integer", "minimum": 1, "maximum": 250}, "description": "Page size."}),
        json!({"name": "skip", "in": "query", "required": false,
               "schema": {"type": "integer", "minimum": 0, "maximum": MAX_SKIP}, "description": "Items to skip."}),
    ]
}

/// The query parameters each operation takes, by method and path (path parameters as `{}`):
/// what `api::query_policy` holds every request to.
pub fn query_names() -> std::collections::HashMap<(String, String), Vec<String>> {
    let mut out = std::collections::HashMap::new();
    let doc = document();
    for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in ops.as_object().into_iter().flatten() {
            let names = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            out.insert((method.to_string(), template(path)), names);
        }
    }
    out
}

/// A path with its parameters as `{}`, whatever their names.
pub fn template(path: &str) -> String {
    path.split('/')
        .map(|p| if p.starts_with('{') { "{}" } else { p })
        .collect::<Vec<_>>()
        .join("/")
}

fn event_type_list_params() -> Vec<Value> {
    let p = |name: &str, description: &str| json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}, "description": description});
    vec![
        p("username", "Only this user's event types."),
        p("eventSlug", "Only the event type with this slug."),
        p("usernames", "Only these users' (comma-separated)."),
        p(
            "orgSlug",
            "The key's organization (another one lists none).",
        ),
        p("orgId", "The key's organization (another one lists none)."),
    ]
}

fn slot_params() -> Vec<Value> {
    let p = |name: &str, required: bool, schema: Value, description: &str| json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description});
    vec![
        p("eventTypeId", false, json!({"type": "integer"}), "The event type (or eventTypeSlug with username)."),
        p("eventTypeSlug", false, json!({"type": "string"}), "With username (and organizationSlug)."),
        p("username", false, json!({"type": "string"}), "The host whose event type eventTypeSlug is."),
        p("organizationSlug", false, json!({"type": "string"}), "The key's organization."),
        p("teamSlug", false, json!({"type": "string"}), "calops has no teams: 404."),
        p("usernames", false, json!({"type": "string"}), "Dynamic group events: refused (calops has none)."),
        p("bookingUidToReschedule", false, json!({"type": "string"}), "Accepted with a warning: the booking being moved still counts as busy."),
        p("slotFormat", false, json!({"type": "string", "enum": ["time", "range"]}), "The earlier name of format."),
        p("start", true, day_or_time(), "YYYY-MM-DD (start of that day in timeZone) or an ISO 8601 time."),
        p("end", true, day_or_time(), "YYYY-MM-DD (end of that day in timeZone) or an ISO 8601 time; at most 31 days after start."),
        p("timeZone", false, json!({"type": "string", "default": "UTC"}), "IANA zone for the dates and times of the answer."),
        p("duration", false, json!({"type": "integer", "minimum": 1, "maximum": 1440}), "Length in minutes instead of the event type's."),
        p("format", false, json!({"type": "string", "enum": ["time", "range"], "default": "time"}), "\"range\" adds each slot's end."),
    ]
}

fn s(t: &str) -> Value {
    json!({"type": t})
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({"type": "object", "required": required, "properties": props})
}

fn data(schema: Value) -> Value {
    obj(
        &["status", "data"],
        json!({"status": {"const": "success"}, "data": schema, "warnings": r("Warnings")}),
    )
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn schemas() -> Value {
    let availability = obj(
        &["days", "startTime", "endTime"],
        json!({
            "days": {"type": "array", "items": {"enum": ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday","Sunday"]}},
            "startTime": {"type": "string", "pattern": "^\\d\\d:\\d\\d$"},
            "endTime": {"type": "string", "pattern": "^\\d\\d:\\d\\d$", "description": "Up to 24:00."},
        }),
    );
    let override_ = obj(
        &["date", "startTime", "endTime"],
        json!({
            "date": {"type": "string", "format": "date"},
            "startTime": s("string"), "endTime": {"type": "string", "description": "Equal to startTime blocks the date."},
        }),
    );
    let organization = obj(
        &["id", "name", "slug"],
        json!({
            "id": s("integer"), "parentId": nullable("integer"), "name": s("string"), "slug": s("string"),
            "brandColor": nullable("string"), "darkBrandColor": nullable("string"), "logoUrl": nullable("string"),
            "theme": {"enum": ["light", "dark", null]}, "hideBranding": s("boolean"), "metadata": s("object"),
            "createdAt": {"type": "string", "format": "date-time"},
        }),
    );
    let user = obj(
        &["id", "name", "email", "timeZone"],
        json!({
            "id": s("integer"), "organizationId": s("integer"), "name": s("string"), "email": s("string"),
            "timeZone": s("string"), "createdAt": {"type": "string", "format": "date-time"},
        }),
    );
    let schedule = obj(
        &[
            "id",
            "ownerId",
            "name",
            "timeZone",
            "availability",
            "isDefault",
            "overrides",
        ],
        json!({
            "id": s("integer"), "ownerId": s("integer"), "name": s("string"), "timeZone": s("string"),
            "availability": {"type": "array", "items": r("Availability")}, "isDefault": s("boolean"),
            "overrides": {"type": "array", "items": r("Override")},
        }),
    );
    let window = json!({"type": ["object", "null"], "properties": {
        "type": {"enum": ["calendarDays", "businessDays", "range"]},
        "value": {"description": "Days (1-3650), or [startDate, endDate] for range."},
        "rolling": {"type": "boolean", "description": "With calendarDays or businessDays: count only dates that still have a slot (Cal.com's rolling window; businessDays counts Monday to Friday only). At most 365 days ahead."},
    }});
    let event_type_props = json!({
        "id": s("integer"), "title": s("string"), "slug": s("string"), "description": nullable("string"),
        "lengthInMinutes": s("integer"), "slotInterval": nullable("integer"), "minimumBookingNotice": s("integer"),
        "beforeEventBuffer": s("integer"), "afterEventBuffer": s("integer"), "bookingWindow": window,
        "bookingLimitsCount": {"type": ["object", "null"], "properties": {"day": s("integer")}},
        "ownerId": s("integer"), "scheduleId": nullable("integer"),
    });
    let mut create_event_type_props = event_type_props.clone();
    create_event_type_props["userId"] = s("integer");
    let slot = obj(
        &["start"],
        json!({"start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"}}),
    );
    let mut all = json!({
        "Error": obj(&["status", "error"], json!({"status": {"const": "error"}, "error": obj(&["code", "message"], json!({
            "code": s("string"), "message": s("string"), "details": {"description": "Null, or e.g. {\"fields\":[{\"field\",\"message\"}]}"}
        }))})),
        "Availability": availability,
        "Override": override_,
        "OrganizationData": organization,
        "Organization": data(r("OrganizationData")),
        "OrganizationList": data(json!({"type": "array", "items": r("OrganizationData")})),
        "OrganizationWithKey": data(json!({"allOf": [r("OrganizationData"), obj(&["apiKey"], json!({"apiKey": s("string"), "apiKeyScopes": {"type": "array", "items": s("string")}}))]})),
        "CreateOrganization": obj(&["name"], json!({"name": s("string"), "slug": s("string"), "metadata": s("object"),
            "apiKeyScopes": {"type": "array", "items": {"enum": ["read","book","cancel","reschedule","admin"]}}, "apiKeyDaysValid": {"type": "integer", "minimum": 1, "maximum": 36500, "description": "Days until the returned key expires (default: never)."}})),
        "PatchOrganization": obj(&[], json!({"name": s("string"), "brandColor": nullable("string"), "darkBrandColor": nullable("string"),
            "logoUrl": nullable("string"), "theme": {"enum": ["light", "dark", null]}, "hideBranding": s("boolean"), "metadata": s("object")})),
        "CreateApiKey": obj(&["scopes"], json!({"scopes": {"type": "array", "items": {"enum": ["read","book","cancel","reschedule","admin"]}}, "name": s("string"), "daysValid": {"type": "integer", "minimum": 1, "maximum": 36500}})),
        "ApiKey": data(obj(&["id", "apiKey", "scopes"], json!({"id": s("integer"), "organizationId": s("integer"), "apiKey": s("string"),
            "scopes": {"type": "array", "items": s("string")}, "name": nullable("string"), "expiresAt": nullable("string")}))),
        "CreateUser": obj(&["name", "email"], json!({"name": s("string"), "email": s("string"), "timeZone": {"type": "string", "default": "UTC"}})),
        "UserData": user,
        "User": data(r("UserData")),
        "UserList": data(json!({"type": "array", "items": r("UserData")})),
        "CreateSchedule": obj(&["userId", "name", "timeZone"], json!({"userId": s("integer"), "name": s("string"), "timeZone": s("string"),
            "isDefault": s("boolean"), "availability": {"type": "array", "items": r("Availability"), "description": "Default Monday-Friday 09:00-17:00."},
            "overrides": {"type": "array", "items": r("Override")}})),
        "PatchSchedule": obj(&[], json!({"name": s("string"), "timeZone": s("string"), "isDefault": {"const": true},
            "availability": {"type": "array", "items": r("Availability")}, "overrides": {"type": "array", "items": r("Override")}})),
        "ScheduleData": schedule,
        "Schedule": data(r("ScheduleData")),
        "ScheduleList": data(json!({"type": "array", "items": r("ScheduleData")})),
        "CreateEventType": obj(&["userId", "title", "slug", "lengthInMinutes"], create_event_type_props),
        "PatchEventType": obj(&[], event_type_props.clone()),
        "EventTypeData": obj(&["id", "title", "slug", "lengthInMinutes", "ownerId"], event_type_props),
        "EventType": data(r("EventTypeData")),
        "EventTypeList": data(json!({"type": "array", "items": r("EventTypeData")})),
        "Deleted": data(obj(&["id"], json!({"id": s("integer")}))),
        "Slots": data(json!({"type": "object", "description": "Keys are dates (YYYY-MM-DD) in timeZone; dates without slots are omitted.",
            "additionalProperties": {"type": "array", "items": slot}})),
        "Health": obj(&["status", "version", "uptimeSeconds", "checks"], json!({"status": {"enum": ["ok", "degraded", "down"]},
            "version": s("string"), "uptimeSeconds": s("number"), "checks": {"type": "object", "additionalProperties": obj(&["status", "required"], json!({
                "status": {"enum": ["up", "down", "not_configured", "warn", "unknown"]}, "required": s("boolean"), "latencyMs": s("number"), "error": s("string")}))}})),
        "Live": obj(&["status", "version", "uptimeSeconds"], json!({"status": {"enum": ["alive"]},
            "version": s("string"), "uptimeSeconds": s("number")})),
        "PrometheusText": s("string"),
        "Object": s("object"),
    });
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), booking_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), webhook_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), calendar_schemas()) {
        all.extend(more);
    }
    // Last: the Cal.com shapes replace the simpler definitions above of the same names.
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), compat_schemas()) {
        all.extend(more);
    }
    all
}

/// Schemas of Cal.com's request and response shapes, current and legacy
/// (`api::versions`): what each version's parsers take and writers give.
fn compat_schemas() -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let ntime = json!({"type": ["string", "null"], "format": "date-time"});
    let any = json!({});
    let object = s("object");
    let location = json!({"description": "A string, or a location object: {type: address|attendeeAddress, address}, {type: link, link}, {type: phone|attendeePhone, phone}, {type: attendeeDefined, location}, {type: integration, integration} or {type: organizersDefaultApp} (no conference links: those two answer a warning).",
        "anyOf": [s("string"), obj(&["type"], json!({"type": s("string")}))]});
    let attendee_in = obj(
        &["name", "timeZone"],
        json!({
        "name": s("string"), "email": {"type": "string", "description": "Required unless phoneNumber is given."},
        "timeZone": s("string"), "phoneNumber": {"type": "string", "description": "International format, +14155550123."},
        "language": {"type": "string", "description": "One of Cal.com's locales (en, de, es, fr, pt-BR, ...)."}}),
    );
    let host = obj(
        &["id"],
        json!({"id": s("integer"), "name": s("string"), "email": s("string"), "username": s("string"), "timeZone": s("string")}),
    );
    let booking = obj(
        &[
            "id",
            "uid",
            "status",
            "start",
            "end",
            "eventTypeId",
            "hosts",
            "attendees",
        ],
        json!({
        "id": s("integer"), "uid": {"type": "string", "format": "uuid"}, "title": s("string"), "description": s("string"),
        "hosts": {"type": "array", "items": host},
        "status": {"enum": ["accepted", "cancelled", "rejected", "pending"]},
        "cancellationReason": nullable("string"), "reschedulingReason": nullable("string"),
        "cancelledByEmail": {"type": "null", "description": "calops does not record who cancelled."},
        "rescheduledByEmail": {"type": "null", "description": "calops does not record who rescheduled."},
        "rating": {"type": "null", "description": "calops has no ratings."},
        "icsUid": {"type": "string", "format": "uuid", "description": "The calendar UID: the first booking of the reschedule chain."},
        "rescheduledFromUid": {"type": ["string", "null"], "format": "uuid"},
        "rescheduledToUid": {"type": ["string", "null"], "format": "uuid"},
        "start": time, "end": time, "duration": s("integer"), "eventTypeId": s("integer"),
        "eventType": obj(&["id", "slug"], json!({"id": s("integer"), "slug": s("string")})),
        "meetingUrl": nullable("string"), "location": nullable("string"), "absentHost": s("boolean"),
        "createdAt": time, "updatedAt": time, "metadata": object,
        "attendees": {"type": "array", "items": obj(&["name", "timeZone"], json!({"name": s("string"), "email": s("string"),
            "timeZone": s("string"), "language": s("string"), "absent": s("boolean"), "phoneNumber": s("string")}))},
        "guests": {"type": "array", "items": s("string")},
        "bookingFieldsResponses": object}),
    );
    let legacy_booking = obj(
        &["id", "uid", "startTime", "endTime", "status"],
        json!({
        "id": s("integer"), "uid": {"type": "string", "format": "uuid"}, "userId": s("integer"),
        "userPrimaryEmail": s("string"), "eventTypeId": s("integer"),
        "eventType": obj(&["id", "slug"], json!({"id": s("integer"), "slug": s("string")})),
        "title": s("string"), "description": nullable("string"), "startTime": time, "endTime": time,
        "status": {"enum": ["ACCEPTED", "CANCELLED", "REJECTED", "PENDING"]}, "location": nullable("string"),
        "metadata": object, "responses": object,
        "attendees": {"type": "array", "items": obj(&["name"], json!({"name": s("string"), "email": nullable("string"),
            "timeZone": s("string"), "locale": s("string"), "phoneNumber": s("string")}))},
        "user": host, "fromReschedule": {"type": ["string", "null"], "format": "uuid"}, "rescheduled": s("boolean"),
        "cancellationReason": nullable("string"), "createdAt": time, "updatedAt": time}),
    );
    let window = json!({"type": ["object", "null"], "properties": {
        "type": {"enum": ["calendarDays", "businessDays", "range"]}, "value": any.clone(),
        "rolling": s("boolean"), "disabled": s("boolean")}});
    let no_effect = |d: &str| json!({"description": format!("Accepted; has no effect in calops (answered with a warning): {d}.")});
    let event_type_in = json!({
        "userId": {"type": "integer", "description": "calops: the host. Required with an organization's key; a user's key defaults to (and may only name) its user."},
        "lengthInMinutes": {"type": "integer", "minimum": 1, "maximum": 1440},
        "lengthInMinutesOptions": {"type": ["array", "null"], "items": s("integer"), "description": "Lengths a booker may pick (lengthInMinutes of a booking, duration of /v2/slots); must include lengthInMinutes."},
        "title": s("string"), "slug": s("string"), "description": nullable("string"),
        "locations": {"type": "array", "items": obj(&["type"], json!({"type": s("string")})), "description": "The first address, link or phone is a booking's location when it names none."},
        "disableGuests": {"type": "boolean", "description": "Bookings take no guests."},
        "slotInterval": nullable("integer"), "minimumBookingNotice": s("integer"),
        "beforeEventBuffer": s("integer"), "afterEventBuffer": s("integer"), "scheduleId": nullable("integer"),
        "bookingWindow": window,
        "bookingLimitsCount": {"type": ["object", "null"], "properties": {"day": s("integer"), "week": any.clone(), "month": any.clone(), "year": any.clone(), "disabled": s("boolean")},
            "description": "day is enforced (under concurrency); week, month and year are accepted with a warning."},
        "offsetStart": {"type": "integer", "minimum": 0, "maximum": 1440, "description": "Minutes every slot start moves later, as Cal.com's offsetStart."},
        "sendEmails": {"type": "boolean", "description": "calops: whether bookings of this type send e-mail (confirmations, changes, cancellations, reminders). Default true."},
        "emailRemindersMinutesBefore": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 43200}, "maxItems": 5,
            "description": "calops: reminder e-mails, minutes before the start (e.g. [1440, 60]). None by default."},
        "bookingFields": no_effect("no booking form is built or checked"), "bookerActiveBookingsLimit": no_effect("no per-booker limit"),
        "onlyShowFirstAvailableSlot": no_effect("every slot is listed"), "bookingLimitsDuration": no_effect("only the per-day count limit"),
        "bookerLayouts": no_effect("no booker layouts"), "confirmationPolicy": no_effect("bookings are accepted at once"),
        "recurrence": no_effect("no recurring event types"), "requiresBookerEmailVerification": no_effect("no e-mail verification"),
        "hideCalendarNotes": no_effect("calendars carry no notes"), "lockTimeZoneToggleOnBookingPage": no_effect("no booking page toggle"),
        "color": no_effect("no colours"), "seats": no_effect("no seated event types"), "customName": no_effect("bookings are named after the event type"),
        "destinationCalendar": no_effect("no external calendars"), "useDestinationCalendarEmail": no_effect("no external calendars"),
        "hideCalendarEventDetails": no_effect("no external calendars"), "successRedirectUrl": no_effect("no redirect"),
        "hideOrganizerEmail": no_effect("API clients see the host's address"), "calVideoSettings": no_effect("no video calls"),
        "hidden": no_effect("no public listing"), "bookingRequiresAuthentication": no_effect("bookings always need a key"),
        "disableCancelling": no_effect("the cancel scope decides"), "disableRescheduling": no_effect("the reschedule scope decides"),
        "interfaceLanguage": no_effect("no booking interface"), "allowReschedulingPastBookings": no_effect("accepted bookings only"),
        "allowReschedulingCancelledBookings": no_effect("accepted bookings only"), "showOptimizedSlots": no_effect("every slot is listed"),
    });
    let mut create_et = obj(&["lengthInMinutes", "title", "slug"], event_type_in.clone());
    create_et["additionalProperties"] = json!(false);
    let mut patch_et = obj(&[], event_type_in);
    patch_et["additionalProperties"] = json!(false);
    let user_min = obj(
        &["id"],
        json!({"id": s("integer"), "name": s("string"), "username": s("string"), "avatarUrl": nullable("string"),
        "weekStart": s("string"), "brandColor": nullable("string"), "darkBrandColor": nullable("string"), "metadata": object}),
    );
    let event_type = obj(
        &["id", "lengthInMinutes", "title", "slug", "ownerId"],
        json!({
        "id": s("integer"), "ownerId": s("integer"), "lengthInMinutes": s("integer"),
        "lengthInMinutesOptions": {"type": ["array", "null"], "items": s("integer")},
        "title": s("string"), "slug": s("string"), "description": s("string"), "locations": {"type": "array"},
        "bookingFields": {"type": "array"}, "disableGuests": s("boolean"), "slotInterval": nullable("integer"),
        "minimumBookingNotice": s("integer"), "beforeEventBuffer": s("integer"), "afterEventBuffer": s("integer"),
        "scheduleId": nullable("integer"), "bookingWindow": window, "bookingLimitsCount": {"type": ["object", "null"]},
        "offsetStart": s("integer"), "metadata": object, "price": s("number"), "currency": s("string"),
        "sendEmails": s("boolean"), "emailRemindersMinutesBefore": {"type": "array", "items": s("integer")},
        "hidden": s("boolean"), "users": {"type": "array", "items": user_min}}),
    );
    let legacy_et_in = json!({
        "userId": {"type": "integer", "description": "calops: the host (see 2024-06-14)."},
        "scheduleId": {"type": ["integer", "null"], "description": "calops: the host's schedule to use."},
        "sendEmails": {"type": "boolean", "description": "calops: whether bookings of this type send e-mail (confirmations, changes, cancellations, reminders). Default true."},
        "emailRemindersMinutesBefore": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 43200}, "maxItems": 5,
            "description": "calops: reminder e-mails, minutes before the start (e.g. [1440, 60]). None by default."},
        "length": {"type": "integer", "minimum": 1, "maximum": 1440}, "slug": s("string"), "title": s("string"),
        "description": nullable("string"), "hidden": no_effect("no public listing"),
        "locations": {"type": "array", "items": obj(&["type"], json!({"type": s("string")}))},
        "disableGuests": s("boolean"), "slotInterval": s("integer"), "minimumBookingNotice": s("integer"),
        "beforeEventBuffer": s("integer"), "afterEventBuffer": s("integer")});
    let mut legacy_create_et = obj(&["length", "slug", "title"], legacy_et_in.clone());
    legacy_create_et["additionalProperties"] = json!(false);
    let mut legacy_patch_in = legacy_et_in;
    legacy_patch_in["bookingFields"] = no_effect("no booking form");
    legacy_patch_in["seatsPerTimeSlot"] = no_effect("no seated event types");
    let mut legacy_patch_et = obj(&[], legacy_patch_in);
    legacy_patch_et["additionalProperties"] = json!(false);
    let legacy_et = obj(
        &["id", "length", "slug", "title", "userId"],
        json!({
        "id": s("integer"), "length": s("integer"), "slug": s("string"), "title": s("string"),
        "description": nullable("string"), "hidden": s("boolean"), "locations": {"type": ["array", "null"]},
        "offsetStart": s("integer"), "userId": s("integer"), "periodType": {"enum": ["UNLIMITED", "ROLLING", "ROLLING_WINDOW", "RANGE"]},
        "periodDays": nullable("integer"), "periodCountCalendarDays": nullable("boolean"),
        "periodStartDate": nullable("string"), "periodEndDate": nullable("string"),
        "disableGuests": s("boolean"), "minimumBookingNotice": s("integer"), "beforeEventBuffer": s("integer"),
        "afterEventBuffer": s("integer"), "scheduleId": nullable("integer"), "slotInterval": nullable("integer"),
        "bookingLimits": object, "price": s("number"), "currency": s("string"), "metadata": object,
        "sendEmails": s("boolean"), "emailRemindersMinutesBefore": {"type": "array", "items": s("integer")}}),
    );
    let avail_in = obj(
        &["days", "startTime", "endTime"],
        json!({
        "days": {"type": "array", "items": {"enum": ["Monday","Tuesday","Wednesday","Thursday","Friday","Saturday","Sunday"]}},
        "startTime": {"type": "string", "pattern": "^\\d\\d:\\d\\d$"},
        "endTime": {"type": "string", "pattern": "^\\d\\d:\\d\\d$", "description": "Up to 24:00; 23:59 means the end of the day (as Cal.com)."}}),
    );
    let schedule_in = json!({
        "userId": {"type": "integer", "description": "calops: the host. Required with an organization's key; a user's key defaults to its user."},
        "name": s("string"), "timeZone": s("string"), "isDefault": s("boolean"),
        "availability": {"type": "array", "items": avail_in, "description": "Default Monday-Friday 09:00-17:00."},
        "overrides": {"type": "array", "items": r("Override")}});
    let mut create_schedule = obj(&["name", "timeZone"], schedule_in.clone());
    create_schedule["additionalProperties"] = json!(false);
    let mut patch_schedule = obj(&[], schedule_in);
    patch_schedule["additionalProperties"] = json!(false);
    let range = obj(
        &["start", "end"],
        json!({"start": time.clone(), "end": time.clone()}),
    );
    let legacy_schedule = obj(
        &[
            "id",
            "name",
            "workingHours",
            "availability",
            "timeZone",
            "isDefault",
        ],
        json!({
        "id": s("integer"), "name": s("string"), "isManaged": s("boolean"),
        "workingHours": {"type": "array", "items": obj(&["days", "startTime", "endTime"], json!({
            "days": {"type": "array", "items": s("integer")}, "startTime": s("integer"), "endTime": s("integer"), "userId": nullable("integer")}))},
        "schedule": {"type": "array", "items": object.clone()},
        "availability": {"type": "array", "items": {"type": "array", "items": range.clone()}, "description": "Seven arrays, Sunday first."},
        "timeZone": s("string"), "dateOverrides": {"type": "array", "items": obj(&["ranges"], json!({"ranges": {"type": "array", "items": range.clone()}}))},
        "isDefault": s("boolean"), "isLastSchedule": s("boolean"), "readOnly": s("boolean")}),
    );
    let legacy_time = json!({"type": "string", "description": "An ISO 8601 time whose UTC hours and minutes are the wall time: 1970-01-01T09:00:00.000Z."});
    let legacy_create_schedule = json!({"type": "object", "additionalProperties": false, "required": ["name", "timeZone", "isDefault"], "properties": {
        "userId": {"type": "integer", "description": "calops: the host (see 2024-06-11)."},
        "name": s("string"), "timeZone": s("string"), "isDefault": s("boolean"),
        "availabilities": {"type": "array", "items": obj(&["days", "startTime", "endTime"], json!({
            "days": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 6}, "description": "0 is Sunday."},
            "startTime": legacy_time.clone(), "endTime": legacy_time}))}}});
    let legacy_patch_schedule = json!({"type": "object", "additionalProperties": false, "properties": {
        "userId": s("integer"), "name": s("string"), "timeZone": s("string"), "isDefault": s("boolean"),
        "schedule": {"type": "array", "items": {"type": "array", "items": range.clone()}, "description": "Seven arrays of ranges, Sunday first; an end at midnight of the next date is 24:00."},
        "dateOverrides": {"type": "array", "items": range.clone()}}});
    let slot_legacy = json!({"type": "object", "properties": {"time": time.clone(), "startTime": time.clone(), "endTime": time.clone()}});
    json!({
        "Warnings": {"type": "array", "description": "Documented request fields that have no effect in calops (or only in part).",
            "items": obj(&["field", "message"], json!({"field": s("string"), "message": s("string")}))},
        "CreateBooking": {"type": "object", "additionalProperties": false, "required": ["start", "attendee"], "properties": {
            "start": {"type": "string", "format": "date-time", "description": "ISO 8601 with offset; must be an available slot."},
            "eventTypeId": {"type": "integer", "description": "Or eventTypeSlug with username (and organizationSlug)."},
            "eventTypeSlug": s("string"), "username": s("string"), "organizationSlug": s("string"),
            "teamSlug": {"type": "string", "description": "calops has no teams: 404 team_not_found."},
            "attendee": attendee_in.clone(),
            "guests": {"type": "array", "items": s("string"), "maxItems": 30},
            "lengthInMinutes": {"type": "integer", "description": "The event type's length or one of its lengthInMinutesOptions."},
            "meetingUrl": {"type": "string", "deprecated": true, "description": "Kept as the location when none is given."},
            "location": location,
            "metadata": {"type": "object", "maxProperties": 50},
            "bookingFieldsResponses": {"type": "object", "description": "Stored and shown back."},
            "routing": no_effect("no routing forms"), "emailVerificationCode": no_effect("no e-mail verification"),
            "recurrenceCount": no_effect("no recurring event types"),
            "instant": {"type": "boolean", "description": "true is refused: instant meetings are for team event types."},
            "reservationUid": {"type": "string", "format": "uuid", "description": "calops: a hold of this slot to use up."}}},
        "CancelBooking": {"type": "object", "additionalProperties": false, "properties": {"cancellationReason": s("string"),
            "cancelSubsequentBookings": no_effect("no recurring bookings"), "seatUid": {"type": "string", "description": "calops has no seats: 400."}}},
        "RescheduleBooking": {"type": "object", "additionalProperties": false, "required": ["start"], "properties": {
            "start": {"type": "string", "format": "date-time"}, "reschedulingReason": s("string"),
            "rescheduledBy": no_effect("who rescheduled is not recorded"), "seatUid": {"type": "string", "description": "calops has no seats: 400."},
            "reservationUid": {"type": "string", "format": "uuid", "description": "calops: a hold of the new slot."}}},
        "BookingData": booking,
        "LegacyCreateBooking": {"type": "object", "additionalProperties": false, "required": ["start", "eventTypeId", "timeZone", "language", "metadata", "responses"], "properties": {
            "start": time.clone(), "end": {"type": "string", "format": "date-time", "description": "Sets the length (the event type's or one of its options)."},
            "eventTypeId": s("integer"), "eventTypeSlug": no_effect("eventTypeId names the event type"),
            "rescheduleUid": {"type": "string", "format": "uuid", "description": "Reschedule this booking instead (201 with the new booking)."},
            "rescheduledBy": no_effect("who rescheduled is not recorded"), "timeZone": s("string"),
            "user": no_effect("no dynamic group bookings"), "language": s("string"), "bookingUid": no_effect("calops makes the uid"),
            "metadata": object.clone(), "hasHashedBookingLink": no_effect("no private links"), "hashedLink": no_effect("no private links"),
            "seatReferenceUid": {"type": "string", "description": "calops has no seats: 400."},
            "responses": obj(&["name", "email"], json!({"name": {"anyOf": [s("string"), obj(&["firstName"], json!({"firstName": s("string"), "lastName": s("string")}))]},
                "email": s("string"), "guests": {"type": "array", "items": s("string")},
                "location": obj(&["optionValue", "value"], json!({"optionValue": s("string"), "value": s("string")})), "notes": s("string")})),
            "orgSlug": no_effect("eventTypeId names the event type"), "locationUrl": {"type": "string", "description": "The location when responses.location gives none."},
            "teamMemberEmail": no_effect("no teams"), "crmAppSlug": no_effect("no CRM"), "crmOwnerRecordType": no_effect("no CRM")}},
        "LegacyBookingData": legacy_booking,
        "LegacyBooking": data(r("LegacyBookingData")),
        "LegacyBookingList": data(obj(&["bookings", "nextCursor"], json!({"bookings": {"type": "array", "items": r("LegacyBookingData")},
            "recurringInfo": {"type": "array"}, "totalCount": s("integer"), "nextCursor": nullable("integer")}))),
        "LegacyCancelBooking": {"type": "object", "additionalProperties": false, "properties": {
            "id": {"type": "integer", "description": "When given, the booking's id."}, "uid": {"type": "string", "description": "When given, the booking's uid (of the path)."},
            "allRemainingBookings": no_effect("no recurring bookings"), "cancellationReason": s("string"),
            "seatReferenceUid": {"type": "string", "description": "calops has no seats: 400."}}},
        "LegacyCancelled": data(obj(&["bookingId", "bookingUid"], json!({"bookingId": s("integer"), "bookingUid": {"type": "string", "format": "uuid"}, "onlyRemovedAttendee": s("boolean")}))),
        "CreateEventType": create_et,
        "PatchEventType": patch_et,
        "EventTypeData": event_type,
        "DeletedEventType": data(obj(&["id"], json!({"id": s("integer"), "lengthInMinutes": s("integer"), "title": s("string"), "slug": s("string")}))),
        "LegacyCreateEventType": legacy_create_et,
        "LegacyPatchEventType": legacy_patch_et,
        "LegacyEventTypeData": legacy_et,
        "LegacyEventType": data(r("LegacyEventTypeData")),
        "LegacyEventTypeOne": data(obj(&["eventType"], json!({"eventType": r("LegacyEventTypeData")}))),
        "LegacyEventTypeList": data(obj(&["eventTypeGroups"], json!({"eventTypeGroups": {"type": "array", "items": obj(&["eventTypes"], json!({
            "teamId": nullable("integer"), "profile": object.clone(), "eventTypes": {"type": "array", "items": r("LegacyEventTypeData")}}))},
            "profiles": {"type": "array"}}))),
        "LegacyDeletedEventType": data(obj(&["id"], json!({"id": s("integer"), "length": s("integer"), "slug": s("string"), "title": s("string")}))),
        "CreateSchedule": create_schedule,
        "PatchSchedule": patch_schedule,
        "DefaultSchedule": data(json!({"anyOf": [r("ScheduleData"), {"type": "null"}]})),
        "LegacyCreateSchedule": legacy_create_schedule,
        "LegacyPatchSchedule": legacy_patch_schedule,
        "LegacyScheduleData": legacy_schedule,
        "LegacySchedule": data(r("LegacyScheduleData")),
        "LegacyScheduleList": data(json!({"type": "array", "items": r("LegacyScheduleData")})),
        "LegacyDefaultSchedule": data(json!({"anyOf": [r("LegacyScheduleData"), {"type": "null"}]})),
        "LegacyScheduleUpdated": data(obj(&["schedule", "isDefault"], json!({"schedule": object.clone(), "isDefault": s("boolean"),
            "timeZone": s("string"), "prevDefaultId": nullable("integer"), "currentDefaultId": nullable("integer")}))),
        "LegacySlots": data(obj(&["slots"], json!({"slots": {"type": "object", "additionalProperties": {"type": "array", "items": slot_legacy}}}))),
        "LegacyReserveSlot": {"type": "object", "additionalProperties": false, "required": ["eventTypeId", "slotUtcStartDate", "slotUtcEndDate"], "properties": {
            "eventTypeId": s("integer"), "slotUtcStartDate": time.clone(), "slotUtcEndDate": time.clone(),
            "bookingUid": no_effect("a hold is not tied to a booking")}},
        "LegacyReserved": data(json!({"type": "string", "format": "uuid", "description": "The hold's uid."})),
        "StatusOnly": obj(&["status"], json!({"status": {"const": "success"}})),
        "Me": data(obj(&["id", "username", "email", "timeZone"], json!({"id": s("integer"), "username": s("string"), "email": s("string"),
            "name": s("string"), "avatarUrl": nullable("string"), "bio": nullable("string"), "timeFormat": s("integer"),
            "defaultScheduleId": nullable("integer"), "weekStart": s("string"), "timeZone": s("string"), "locale": s("string"),
            "organizationId": s("integer"), "organization": obj(&["id"], json!({"id": s("integer"), "isPlatform": s("boolean")}))}))),
        "Timezones": data(json!({"type": "array", "items": obj(&["city", "timezone"], json!({"city": s("string"), "timezone": s("string")}))})),
        "CreateApiKey": {"type": "object", "additionalProperties": false, "required": ["scopes"], "properties": {
            "scopes": {"type": "array", "items": {"enum": ["read","book","cancel","reschedule","admin"]}}, "name": s("string"), "daysValid": s("integer"),
            "userId": {"type": "integer", "description": "A user's key (as Cal.com's): calls that take a userId default to this user, and lists show this user's resources; a user's key makes keys for its own user only."}}},
        "ApiKey": data(obj(&["id", "apiKey", "scopes"], json!({"id": s("integer"), "organizationId": s("integer"), "apiKey": s("string"),
            "scopes": {"type": "array", "items": s("string")}, "name": nullable("string"), "userId": nullable("integer"), "expiresAt": nullable("string")}))),
        "CreateUser": {"type": "object", "additionalProperties": false, "required": ["name", "email"], "properties": {
            "name": s("string"), "email": s("string"), "timeZone": {"type": "string", "default": "UTC"},
            "username": {"type": "string", "description": "Unique in the organization (books with eventTypeSlug); from the e-mail address when absent."}}},
        "UserData": obj(&["id", "name", "email", "timeZone", "username"], json!({"id": s("integer"), "organizationId": s("integer"),
            "username": s("string"), "slug": {"type": "string", "description": "The booking pages' part of the URL, /{org}/{slug}."},
            "name": s("string"), "email": s("string"), "timeZone": s("string"), "createdAt": ntime})),
        "Attendee": attendee_in,
    })
}

/// Schemas of the connected-calendar endpoints.
fn calendar_schemas() -> Value {
    let time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "ConnectCalDav": obj(&["userId", "url", "username"], json!({
            "userId": s("integer"),
            "url": {"type": "string", "format": "uri", "description": "The CalDAV server, a principal or a calendar home."},
            "username": {"type": "string", "minLength": 1, "maxLength": 256},
            "password": {"type": "string", "minLength": 1, "maxLength": 1024, "writeOnly": true},
            "passwordRef": {"type": "string", "pattern": "^env:.+$", "writeOnly": true,
                "description": "env:NAME: read from the service's environment. Give exactly one of password and passwordRef."}})),
        "DisconnectCalendar": obj(&["id"], json!({"id": s("integer")})),
        "CalendarRef": obj(&["integration", "externalId"], json!({
            "integration": {"const": "caldav"}, "externalId": {"type": "string", "description": "The calendar's URL."},
            "credentialId": s("integer")})),
        "ConnectedCalendarData": obj(&["id", "externalId", "name", "isSelected", "isDestination"], json!({
            "id": s("integer"), "externalId": s("string"), "name": s("string"), "integration": {"const": "caldav"},
            "credentialId": s("integer"), "userId": s("integer"), "isSelected": s("boolean"),
            "isDestination": s("boolean"), "readOnly": s("boolean"),
            "sync": obj(&[], json!({"lastSyncedAt": time, "failures": s("integer"), "lastError": nullable("string")}))})),
        "CalendarConnectionData": obj(&["credentialId", "userId", "calendars"], json!({
            "credentialId": s("integer"), "userId": s("integer"), "username": s("string"),
            "integration": s("object"), "createdAt": s("string"),
            "calendars": {"type": "array", "items": r("ConnectedCalendarData")}})),
        "ConnectedCalendar": data(r("ConnectedCalendarData")),
        "CalendarConnection": data(r("CalendarConnectionData")),
        "ConnectedCalendars": data(obj(&["connectedCalendars", "destinationCalendars"], json!({
            "connectedCalendars": {"type": "array", "items": r("CalendarConnectionData")},
            "destinationCalendars": {"type": "array", "items": r("ConnectedCalendarData")}}))),
    })
}

/// Schemas of /v2/bookings and /v2/slots/reservations.
fn booking_schemas() -> Value {
    json!({
        "Attendee": obj(&["name", "email", "timeZone"], json!({"name": s("string"), "email": s("string"), "timeZone": s("string"), "language": s("string")})),
        "CreateBooking": obj(&["start", "eventTypeId", "attendee"], json!({
            "start": {"type": "string", "format": "date-time", "description": "ISO 8601 with offset; must be an available slot."},
            "eventTypeId": s("integer"), "attendee": r("Attendee"),
            "guests": {"type": "array", "items": s("string"), "maxItems": 30},
            "lengthInMinutes": {"type": "integer", "description": "Must equal the event type's length when given."},
            "metadata": s("object"),
            "reservationUid": {"type": "string", "format": "uuid", "description": "A hold of this slot to use up."}})),
        "CancelBooking": obj(&[], json!({"cancellationReason": s("string")})),
        "RescheduleBooking": obj(&["start"], json!({"start": {"type": "string", "format": "date-time"}, "reschedulingReason": s("string"),
            "reservationUid": {"type": "string", "format": "uuid"}})),
        "BookingData": obj(&["id", "uid", "status", "start", "end", "eventTypeId", "hosts", "attendees"], json!({
            "id": s("integer"), "uid": {"type": "string", "format": "uuid"}, "title": s("string"),
            "status": {"enum": ["accepted", "cancelled"]},
            "start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date-time"},
            "duration": s("integer"), "eventTypeId": s("integer"),
            "eventType": obj(&["id", "slug"], json!({"id": s("integer"), "slug": s("string")})),
            "hosts": {"type": "array", "items": obj(&["id"], json!({"id": s("integer"), "name": s("string"), "email": s("string"), "timeZone": s("string")}))},
            "attendees": {"type": "array", "items": r("Attendee")},
            "guests": {"type": "array", "items": s("string")}, "metadata": s("object"),
            "rescheduledFromUid": {"type": ["string", "null"], "format": "uuid"},
            "rescheduledToUid": {"type": ["string", "null"], "format": "uuid"},
            "cancellationReason": nullable("string"),
            "createdAt": {"type": "string", "format": "date-time"}, "updatedAt": {"type": "string", "format": "date-time"}})),
        "Booking": data(r("BookingData")),
        "BookingList": obj(&["status", "data", "pagination"], json!({"status": {"const": "success"},
            "data": {"type": "array", "items": r("BookingData")},
            "pagination": obj(&["totalItems"], json!({"totalItems": s("integer"), "returnedItems": s("integer"), "remainingItems": s("integer"),
                "itemsPerPage": s("integer"), "skip": s("integer"), "hasNextPage": s("boolean"), "hasPreviousPage": s("boolean")}))})),
        "CreateReservation": obj(&["eventTypeId", "slotStart"], json!({"eventTypeId": s("integer"),
            "slotStart": {"type": "string", "format": "date-time"},
            "slotDuration": {"type": "integer", "minimum": 1, "maximum": 1440, "description": "Minutes: the event type's length or one of its lengthInMinutesOptions (digits in a string are read too, as Cal.com's page sends them)."},
            "reservationDuration": {"type": "integer", "minimum": 1, "maximum": 60, "default": 5, "description": "Minutes (digits in a string are read too)."}})),
        "Reservation": data(obj(&["reservationUid", "eventTypeId", "slotStart", "slotEnd", "reservationUntil"], json!({
            "reservationUid": {"type": "string", "format": "uuid"}, "eventTypeId": s("integer"),
            "slotStart": {"type": "string", "format": "date-time"}, "slotEnd": {"type": "string", "format": "date-time"},
            "slotDuration": s("integer"), "reservationDuration": s("integer"),
            "reservationUntil": {"type": "string", "format": "date-time"}}))),
        "CreateCompositeBooking": obj(&["segments", "attendee"], json!({
            "segments": {"type": "array", "minItems": 1, "maxItems": 10, "items": obj(&["eventTypeId", "start"], json!({
                "eventTypeId": s("integer"),
                "start": {"type": "string", "format": "date-time", "description": "Must be an available slot, at or after the previous segment's end."},
                "lengthInMinutes": {"type": "integer", "description": "Must equal the event type's length when given."}}))},
            "attendee": r("Attendee"),
            "guests": {"type": "array", "items": s("string"), "maxItems": 30},
            "metadata": s("object")})),
        "CompositeBooking": obj(&["status", "data"], json!({"status": {"const": "success"},
            "data": {"type": "array", "items": r("BookingData"), "description": "One booking per segment, in request order."}})),
        "Calendar": {"type": "string", "description": "An RFC 5545 VCALENDAR with one VEVENT, CRLF line endings."},
        "ReservationReleased": data(obj(&["reservationUid"], json!({"reservationUid": {"type": "string", "format": "uuid"}}))),
    })
}

/// Schemas of /v2/webhooks.
fn webhook_schemas() -> Value {
    let triggers = json!({"type": "array", "minItems": 1, "items": {"enum": ["BOOKING_CREATED", "BOOKING_CANCELLED", "BOOKING_RESCHEDULED"]}});
    let time = json!({"type": "string", "format": "date-time"});
    let delivery = obj(
        &[
            "id",
            "webhookId",
            "eventId",
            "triggerEvent",
            "status",
            "attempts",
            "history",
        ],
        json!({
            "id": {"type": "string", "format": "uuid", "description": "Sent as X-Calops-Delivery."},
            "webhookId": s("integer"),
            "eventId": {"type": "string", "format": "uuid", "description": "Sent as X-Calops-Event; the same for replays of one event."},
            "triggerEvent": s("string"), "bookingUid": {"type": ["string", "null"], "format": "uuid"},
            "status": {"enum": ["pending", "delivered", "dead"]}, "attempts": s("integer"),
            "nextAttemptAt": {"type": ["string", "null"], "format": "date-time"},
            "lastStatusCode": nullable("integer"), "lastError": nullable("string"),
            "replayOf": {"type": ["string", "null"], "format": "uuid"},
            "createdAt": time, "deliveredAt": {"type": ["string", "null"], "format": "date-time"},
            "history": {"type": "array", "items": obj(&["attempt", "startedAt"], json!({"attempt": s("integer"), "startedAt": time,
                "finishedAt": {"type": ["string", "null"], "format": "date-time"}, "statusCode": nullable("integer"),
                "error": nullable("string"), "durationMs": nullable("integer")}))},
        }),
    );
    json!({
        "CreateWebhook": obj(&["subscriberUrl", "triggers"], json!({
            "subscriberUrl": {"type": "string", "format": "uri", "maxLength": 2048},
            "triggers": triggers, "active": {"type": "boolean", "default": true},
            "secret": {"type": "string", "minLength": 1, "maxLength": 512, "writeOnly": true,
                "description": "Signs deliveries: X-Cal-Signature-256 = hex HMAC-SHA256(body); X-Calops-Signature = t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">. Without it X-Cal-Signature-256 is no-secret-provided."},
            "payloadTemplate": {"type": "null", "description": "Custom templates are not supported."}})),
        "PatchWebhook": obj(&[], json!({
            "subscriberUrl": {"type": "string", "format": "uri", "maxLength": 2048},
            "triggers": triggers, "active": s("boolean"),
            "secret": {"type": ["string", "null"], "writeOnly": true, "description": "null removes the secret."}})),
        "WebhookData": obj(&["id", "subscriberUrl", "triggers", "active", "hasSecret"], json!({
            "id": s("integer"), "organizationId": s("integer"), "subscriberUrl": s("string"), "triggers": triggers,
            "active": s("boolean"), "payloadTemplate": {"type": "null"}, "hasSecret": s("boolean"),
            "circuitBreaker": obj(&["state", "consecutiveFailures"], json!({"state": {"enum": ["closed", "open", "half_open"]},
                "consecutiveFailures": s("integer"), "openUntil": {"type": ["string", "null"], "format": "date-time"}})),
            "createdAt": time, "updatedAt": time})),
        "Webhook": data(r("WebhookData")),
        "WebhookList": data(json!({"type": "array", "items": r("WebhookData")})),
        "WebhookDeliveryData": delivery,
        "WebhookDelivery": data(r("WebhookDeliveryData")),
        "WebhookDeliveryList": obj(&["status", "data", "pagination"], json!({"status": {"const": "success"},
            "data": {"type": "array", "items": r("WebhookDeliveryData")},
            "pagination": obj(&["totalItems"], json!({"totalItems": s("integer"), "returnedItems": s("integer"), "remainingItems": s("integer"),
                "itemsPerPage": s("integer"), "skip": s("integer"), "hasNextPage": s("boolean"), "hasPreviousPage": s("boolean")}))})),
        "ReplayRange": obj(&["from", "to"], json!({"from": time, "to": time})),
        "WebhookReplay": data(obj(&["count", "deliveries"], json!({"count": s("integer"),
            "deliveries": {"type": "array", "items": r("WebhookDeliveryData")}}))),
    })
}

/// The document as `GET /openapi.json` serves it: built and serialized once per process
/// (about 70 KB; building it per request held the endpoint to a small fraction of the
/// service's request rate).
pub fn document_bytes() -> bytes::Bytes {
    static DOC: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| bytes::Bytes::from(document().to_string()))
        .clone()
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut op = Map::new();
        op.insert("summary".into(), json!(e.summary));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}{}",
                e.method,
                e.path.replace(['/', '{', '}', '.', '-'], "_")
            )),
        );
        let mut params = path_params(e.path);
        match (e.method, e.path) {
            ("get", "/v2/slots") => params.extend(slot_params()),
            ("get", "/v2/slots/available") => params.extend(legacy_slot_params()),
            ("get", "/v2/bookings") => params.extend(booking_list_params()),
            ("get", "/v2/event-types") => params.extend(event_type_list_params()),
            ("get", "/v2/webhooks") => params.extend(page_params()),
            ("get", "/v2/webhooks/{webhookId}/deliveries") => {
                params.extend(page_params());
                params.push(json!({"name": "status", "in": "query", "required": false,
                    "schema": {"type": "string", "enum": ["pending", "delivered", "dead"]}}));
            }
            // Connected calendars (`api::connected_calendars`).
            ("get", "/v2/calendars") => params.push(json!({"name": "userId", "in": "query",
                "required": false, "schema": {"type": "integer", "minimum": 1},
                "description": "Only this host's connections."})),
            ("delete", "/v2/selected-calendars") => {
                for (name, required, schema) in [
                    ("integration", true, json!({"const": "caldav"})),
                    (
                        "externalId",
                        true,
                        json!({"type": "string", "minLength": 1}),
                    ),
                    (
                        "credentialId",
                        false,
                        json!({"type": "integer", "minimum": 1}),
                    ),
                ] {
                    params.push(json!({"name": name, "in": "query", "required": required,
                        "schema": schema}));
                }
            }
            ("delete", "/v2/slots/selected-slot") => {
                params.push(json!({"name": "uid", "in": "query",
                "required": true, "schema": {"type": "string", "format": "uuid"},
                "description": "The uid POST /v2/slots/reserve answered with."}))
            }
            _ => {}
        }
        params.push(version_param(e));
        if let Some(versions) = versions_extension(e) {
            op.insert("x-cal-api-versions".into(), versions);
        }
        if (e.path == "/v2/bookings" || e.path == "/v2/bookings/composite") && e.method == "post" {
            params.push(json!({"name": "Idempotency-Key", "in": "header", "required": false,
                "schema": {"type": "string", "maxLength": 255},
                "description": "A retry with the same key (per organization) returns the first result; a different body with a used key is 422."}));
        }
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        match e.scope {
            None => {
                op.insert("security".into(), json!([]));
            }
            Some(scope) => {
                op.insert("x-required-scope".into(), json!(scope));
            }
        }
        if let Some(body) = e.body {
            let schema = match e.legacy.as_ref().and_then(|l| l.body) {
                Some(old) => json!({"anyOf": [r(body), r(old)],
                    "description": format!("{body} with the newest cal-api-version, {old} with the older ones or none (x-cal-api-versions)")}),
                None => r(body),
            };
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let mut responses = Map::new();
        let ok_content = if e.ok.1 == "PrometheusText" {
            json!({"text/plain; version=0.0.4": {"schema": r(e.ok.1)}})
        } else if e.ok.1 == "Calendar" {
            json!({"text/calendar": {"schema": r(e.ok.1)}})
        } else if let Some(l) = &e.legacy {
            json!({"application/json": {"schema": {"anyOf": [r(e.ok.1), r(l.ok)]}}})
        } else {
            json!({"application/json": {"schema": r(e.ok.1)}})
        };
        responses.insert(
            e.ok.0.to_string(),
            json!({"description": "Success", "content": ok_content}),
        );
        for code in e.errors {
            let description = match code {
                400 => "Invalid input: details.fields names each field (a field or query parameter no cal-api-version documents is one), or unsupported_api_version",
                401 => "Missing or invalid API key",
                403 => "The key lacks the required scope",
                404 => "Not found, or not visible to this key",
                409 => "Conflicts with existing data",
                415 => "The body is not JSON",
                422 => "Not an available slot, a slot already held, or an unusable reservation/idempotency key",
                503 => "A required dependency is down",
                _ => "Error",
            };
            let schema = if *code == 503 && e.path == "/health" {
                r("Health")
            } else {
                r("Error")
            };
            responses.insert(code.to_string(), json!({"description": description, "content": {"application/json": {"schema": schema}}}));
        }
        // Every route checks cal-api-version and its query parameters first (`api::router`).
        responses.entry("400").or_insert_with(|| json!({
            "description": "An unknown cal-api-version, or one this endpoint is not served in (unsupported_api_version), or a query parameter it does not take (validation_error)",
            "content": {"application/json": {"schema": r("Error")}}}));
        if crate::service::ratelimit::policy::classify(&e.method.to_uppercase(), e.path).is_some() {
            let int = json!({"schema": {"type": "integer"}});
            responses.insert("429".into(), json!({
                "description": "Rate limit of this API key exceeded (see the X-RateLimit-* headers)",
                "headers": {"Retry-After": int, "X-RateLimit-Limit": int,
                            "X-RateLimit-Remaining": int, "X-RateLimit-Reset": int},
                "content": {"application/json": {"schema": r("Error")}}}));
        }
        op.insert("responses".into(), Value::Object(responses));
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method] = Value::Object(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "calops scheduling service", "version": env!("CARGO_PKG_VERSION"),
                 "description": "A Cal.com API v2 compatible subset. Authenticate with `Authorization: Bearer <API key>`."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": closed_bodies(schemas()),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

/// Request bodies refuse fields they do not list (`api::input`: a field no version documents
/// is a 400 naming it), and the document says so: every request body schema is closed.
fn closed_bodies(mut schemas: Value) -> Value {
    let bodies = ENDPOINTS
        .iter()
        .flat_map(|e| [e.body, e.legacy.as_ref().and_then(|l| l.body)])
        .flatten();
    for name in bodies {
        if let Some(o) = schemas[name].as_object_mut() {
            if o.contains_key("properties") {
                o.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
            }
        }
    }
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_document_is_built_once() {
        let (a, b) = (document_bytes(), document_bytes());
        assert!(
            std::ptr::eq(a.as_ptr(), b.as_ptr()),
            "each call must hand out the same serialized document, not build a new one"
        );
        let served: Value = serde_json::from_slice(&a).unwrap();
        assert_eq!(served, document());
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        assert_eq!(
            doc["paths"]["/v2/slots"]["get"]["parameters"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        // Every operation says which cal-api-version it serves; versioned ones how each
        // selects a shape.
        let ops = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values());
        for op in ops {
            let header = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "cal-api-version")
                .unwrap_or_else(|| panic!("no cal-api-version in {}", op["operationId"]));
            assert!(!header["schema"]["enum"].as_array().unwrap().is_empty());
        }
        let create = &doc["paths"]["/v2/bookings"]["post"];
        assert_eq!(
            create["x-cal-api-versions"][0]["versions"],
            json!(["2024-04-15", "2024-06-11", "2024-06-14"])
        );
        assert_eq!(create["x-cal-api-versions"][0]["withoutHeader"], true);
        assert_eq!(
            create["x-cal-api-versions"][1]["requestBody"],
            "CreateBooking"
        );
        assert_eq!(
            doc["paths"]["/v2/slots"]["get"]["parameters"][13]["schema"]["enum"],
            json!(["2024-09-04"])
        );
        assert!(
            doc["paths"]["/v2/bookings"]["post"]["responses"]["429"]["headers"]["Retry-After"]
                .is_object()
        );
        assert!(doc["paths"]["/v2/bookings"]["get"]["responses"]["429"].is_null());
    }
}
