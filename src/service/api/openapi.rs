//! GET /openapi.json: an OpenAPI 3.1 description of every endpoint, built from [`ENDPOINTS`],
//! the same table the integration test walks to prove each documented operation is routed.

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
}

const AUTH_ERR: &[u16] = &[400, 401, 403, 404];

pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: "get",
        path: "/health",
        summary: "Dependency status and latency; 503 when the database is down",
        scope: None,
        body: None,
        ok: (200, "Health"),
        errors: &[503],
    },
    Endpoint {
        method: "get",
        path: "/livez",
        summary: "Liveness: the process answers (checks no dependency, so a database failover does not restart the service)",
        scope: None,
        body: None,
        ok: (200, "Live"),
        errors: &[],
    },
    Endpoint {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        scope: None,
        body: None,
        ok: (200, "PrometheusText"),
        errors: &[],
    },
    Endpoint {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        scope: None,
        body: None,
        ok: (200, "Object"),
        errors: &[],
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations",
        summary: "Create a top-level organization and its first API key (returned once)",
        scope: Some("bootstrap"),
        body: Some("CreateOrganization"),
        ok: (201, "OrganizationWithKey"),
        errors: &[400, 401, 403, 409, 415],
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}",
        summary: "An organization with its branding",
        scope: Some("read"),
        body: None,
        ok: (200, "Organization"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "patch",
        path: "/v2/organizations/{orgId}",
        summary: "Change name, branding or metadata; null clears a branding field",
        scope: Some("admin"),
        body: Some("PatchOrganization"),
        ok: (200, "Organization"),
        errors: &[400, 401, 403, 404, 415],
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/organizations",
        summary: "Create a child organization (sub-account) and its first API key (returned once)",
        scope: Some("admin"),
        body: Some("CreateOrganization"),
        ok: (201, "OrganizationWithKey"),
        errors: &[400, 401, 403, 404, 409, 415],
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/organizations",
        summary: "Child organizations",
        scope: Some("read"),
        body: None,
        ok: (200, "OrganizationList"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/api-keys",
        summary: "Create another API key (returned once)",
        scope: Some("admin"),
        body: Some("CreateApiKey"),
        ok: (201, "ApiKey"),
        errors: &[400, 401, 403, 404, 415],
    },
    Endpoint {
        method: "post",
        path: "/v2/organizations/{orgId}/users",
        summary: "Create a user (host)",
        scope: Some("admin"),
        body: Some("CreateUser"),
        ok: (201, "User"),
        errors: &[400, 401, 403, 404, 409, 415],
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/users",
        summary: "Users of an organization",
        scope: Some("read"),
        body: None,
        ok: (200, "UserList"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "get",
        path: "/v2/organizations/{orgId}/users/{userId}",
        summary: "One user",
        scope: Some("read"),
        body: None,
        ok: (200, "User"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/schedules",
        summary: "Create a schedule for a host of the key's organization",
        scope: Some("admin"),
        body: Some("CreateSchedule"),
        ok: (201, "Schedule"),
        errors: &[400, 401, 403, 415],
    },
    Endpoint {
        method: "get",
        path: "/v2/schedules",
        summary: "Schedules of the key's organization",
        scope: Some("read"),
        body: None,
        ok: (200, "ScheduleList"),
        errors: &[401, 403],
    },
    Endpoint {
        method: "get",
        path: "/v2/schedules/{scheduleId}",
        summary: "One schedule",
        scope: Some("read"),
        body: None,
        ok: (200, "Schedule"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "patch",
        path: "/v2/schedules/{scheduleId}",
        summary: "Change a schedule (given fields are replaced)",
        scope: Some("admin"),
        body: Some("PatchSchedule"),
        ok: (200, "Schedule"),
        errors: &[400, 401, 403, 404, 415],
    },
    Endpoint {
        method: "delete",
        path: "/v2/schedules/{scheduleId}",
        summary: "Delete a schedule",
        scope: Some("admin"),
        body: None,
        ok: (200, "Deleted"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/event-types",
        summary: "Create an event type for a host",
        scope: Some("admin"),
        body: Some("CreateEventType"),
        ok: (201, "EventType"),
        errors: &[400, 401, 403, 409, 415],
    },
    Endpoint {
        method: "get",
        path: "/v2/event-types",
        summary: "Event types of the key's organization",
        scope: Some("read"),
        body: None,
        ok: (200, "EventTypeList"),
        errors: &[401, 403],
    },
    Endpoint {
        method: "get",
        path: "/v2/event-types/{eventTypeId}",
        summary: "One event type",
        scope: Some("read"),
        body: None,
        ok: (200, "EventType"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "patch",
        path: "/v2/event-types/{eventTypeId}",
        summary: "Change an event type (given fields replace; null clears optional ones)",
        scope: Some("admin"),
        body: Some("PatchEventType"),
        ok: (200, "EventType"),
        errors: &[400, 401, 403, 404, 409, 415],
    },
    Endpoint {
        method: "delete",
        path: "/v2/event-types/{eventTypeId}",
        summary: "Delete an event type without bookings (409 when it has some)",
        scope: Some("admin"),
        body: None,
        ok: (200, "Deleted"),
        errors: &[400, 401, 403, 404, 409],
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
    },
    Endpoint {
        method: "post",
        path: "/v2/slots/reservations",
        summary: "Hold a slot (5 minutes unless reservationDuration says otherwise); a held slot leaves /v2/slots and only the booking presenting reservationUid may take it; 422 when the slot is not available or already held",
        scope: Some("book"),
        body: Some("CreateReservation"),
        ok: (201, "Reservation"),
        errors: &[400, 401, 403, 404, 422],
    },
    Endpoint {
        method: "delete",
        path: "/v2/slots/reservations/{uid}",
        summary: "Release a slot hold early",
        scope: Some("book"),
        body: None,
        ok: (200, "ReservationReleased"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings",
        summary: "Book a slot. 422 when start is not an available slot; 409 booking_conflict when someone else took or holds it (PostgreSQL refuses overlaps). An Idempotency-Key header returns the first result on a retry.",
        scope: Some("book"),
        body: Some("CreateBooking"),
        ok: (201, "Booking"),
        errors: &[400, 401, 403, 404, 409, 422],
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings",
        summary: "The organization's bookings by start time, paged; status=upcoming|past|cancelled|unconfirmed|accepted (comma-separated), afterStart, beforeEnd, eventTypeId, take, skip",
        scope: Some("read"),
        body: None,
        ok: (200, "BookingList"),
        errors: &[400, 401, 403],
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings/{uid}",
        summary: "One booking",
        scope: Some("read"),
        body: None,
        ok: (200, "Booking"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/{uid}/cancel",
        summary: "Cancel an accepted booking (409 booking_not_active when it is not)",
        scope: Some("cancel"),
        body: Some("CancelBooking"),
        ok: (200, "Booking"),
        errors: &[400, 401, 403, 404, 409],
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/{uid}/reschedule",
        summary: "Move a booking in one transaction: a new booking linked both ways to the old, which is cancelled; when the new time is taken (409) nothing changes",
        scope: Some("reschedule"),
        body: Some("RescheduleBooking"),
        ok: (201, "Booking"),
        errors: &[400, 401, 403, 404, 409, 422],
    },
    Endpoint {
        method: "get",
        path: "/v2/bookings/{uid}/ics",
        summary: "The booking's RFC 5545 calendar (text/calendar): one UID across reschedules, SEQUENCE raised on each reschedule and the cancel, METHOD:REQUEST or METHOD:CANCEL. From object storage (ics/<org>/<calendar uid>.ics) when written, else rendered from the database; X-Calops-Ics-Source says which",
        scope: Some("read"),
        body: None,
        ok: (200, "Calendar"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/bookings/composite",
        summary: "Book several segments (event types, possibly of different hosts, in time order with pauses between) in one transaction: all or nothing. 422 slot_unavailable or 409 booking_conflict name the segment (details.segment)",
        scope: Some("book"),
        body: Some("CreateCompositeBooking"),
        ok: (201, "CompositeBooking"),
        errors: &[400, 401, 403, 404, 409, 422],
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks",
        summary: "Subscribe a URL to booking events; the secret is write-only (never returned)",
        scope: Some("admin"),
        body: Some("CreateWebhook"),
        ok: (201, "Webhook"),
        errors: &[400, 401, 403],
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks",
        summary: "The organization's webhooks (take, skip)",
        scope: Some("admin"),
        body: None,
        ok: (200, "WebhookList"),
        errors: &[400, 401, 403],
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks/{webhookId}",
        summary: "One webhook with its circuit breaker state",
        scope: Some("admin"),
        body: None,
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "patch",
        path: "/v2/webhooks/{webhookId}",
        summary: "Change URL, triggers, active or secret (null removes it); a changed URL or re-activation closes the breaker",
        scope: Some("admin"),
        body: Some("PatchWebhook"),
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "delete",
        path: "/v2/webhooks/{webhookId}",
        summary: "Delete a webhook and its delivery history",
        scope: Some("admin"),
        body: None,
        ok: (200, "Webhook"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "get",
        path: "/v2/webhooks/{webhookId}/deliveries",
        summary: "Delivery history, newest first, with every attempt (status, take, skip)",
        scope: Some("admin"),
        body: None,
        ok: (200, "WebhookDeliveryList"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks/{webhookId}/deliveries/{deliveryId}/replay",
        summary: "Send one delivery's event again: a new delivery with the same body and eventId",
        scope: Some("admin"),
        body: None,
        ok: (202, "WebhookDelivery"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/webhooks/{webhookId}/replay",
        summary: "Send again every original event of this webhook created in [from, to)",
        scope: Some("admin"),
        body: Some("ReplayRange"),
        ok: (202, "WebhookReplay"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "get",
        path: "/v2/calendars",
        summary: "Connected calendars (CalDAV) of the organization, or of one host (userId), with their sync state and the destination calendars",
        scope: Some("read"),
        body: None,
        ok: (200, "ConnectedCalendars"),
        errors: &[400, 401, 403],
    },
    Endpoint {
        method: "post",
        path: "/v2/calendars/caldav/credentials",
        summary: "Connect a host's CalDAV account: discovery from the URL (/.well-known/caldav, current-user-principal, calendar-home-set); the password (or passwordRef env:NAME) is write-only and sealed at rest. 422 when the server refuses the credentials or discovery fails, 502 when it does not answer",
        scope: Some("admin"),
        body: Some("ConnectCalDav"),
        ok: (201, "CalendarConnection"),
        errors: &[400, 401, 403, 404, 422, 502],
    },
    Endpoint {
        method: "post",
        path: "/v2/calendars/caldav/disconnect",
        summary: "Remove a connection (credentialId), its calendars and their busy time",
        scope: Some("admin"),
        body: Some("DisconnectCalendar"),
        ok: (200, "Object"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "post",
        path: "/v2/selected-calendars",
        summary: "Count a connected calendar's events as busy time for slots and bookings",
        scope: Some("admin"),
        body: Some("CalendarRef"),
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "delete",
        path: "/v2/selected-calendars",
        summary: "Stop counting a calendar (integration, externalId, credentialId in the query); its busy time goes at once",
        scope: Some("admin"),
        body: None,
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
    },
    Endpoint {
        method: "put",
        path: "/v2/destination-calendars",
        summary: "The calendar the host's bookings are written to (one per host): created on booking, updated on reschedule, deleted on cancel",
        scope: Some("admin"),
        body: Some("CalendarRef"),
        ok: (200, "ConnectedCalendar"),
        errors: AUTH_ERR,
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

fn booking_list_params() -> Vec<Value> {
    let p = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    vec![
        p(
            "status",
            json!({"type": "string"}),
            "accepted, cancelled, or both comma-separated; default all.",
        ),
        p(
            "afterStart",
            json!({"type": "string", "format": "date-time"}),
            "Only bookings starting at or after this time.",
        ),
        p(
            "beforeEnd",
            json!({"type": "string", "format": "date-time"}),
            "Only bookings ending at or before this time.",
        ),
        p(
            "eventTypeId",
            json!({"type": "integer"}),
            "Only bookings of this event type.",
        ),
        p(
            "take",
            json!({"type": "integer", "minimum": 1, "maximum": 250, "default": 100}),
            "Page size.",
        ),
        p(
            "skip",
            json!({"type": "integer", "minimum": 0, "default": 0}),
            "Bookings to skip.",
        ),
    ]
}

fn slot_params() -> Vec<Value> {
    let p = |name: &str, required: bool, schema: Value, description: &str| json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description});
    vec![
        p("eventTypeId", true, json!({"type": "integer"}), "The event type."),
        p("start", true, json!({"type": "string"}), "YYYY-MM-DD (start of that day in timeZone) or an ISO 8601 time."),
        p("end", true, json!({"type": "string"}), "YYYY-MM-DD (end of that day in timeZone) or an ISO 8601 time; at most 31 days after start."),
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
        json!({"status": {"const": "success"}, "data": schema}),
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
        "sendEmails": {"type": "boolean", "description": "Whether bookings of this type send e-mail (confirmations, changes, cancellations, reminders). Default true."},
        "emailRemindersMinutesBefore": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 43200}, "maxItems": 5,
            "description": "Reminder e-mails, minutes before the start (e.g. [1440, 60]). None by default."},
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
            "apiKeyScopes": {"type": "array", "items": {"enum": ["read","book","cancel","reschedule","admin"]}}, "apiKeyDaysValid": s("integer")})),
        "PatchOrganization": obj(&[], json!({"name": s("string"), "brandColor": nullable("string"), "darkBrandColor": nullable("string"),
            "logoUrl": nullable("string"), "theme": {"enum": ["light", "dark", null]}, "hideBranding": s("boolean"), "metadata": s("object")})),
        "CreateApiKey": obj(&["scopes"], json!({"scopes": {"type": "array", "items": {"enum": ["read","book","cancel","reschedule","admin"]}}, "name": s("string"), "daysValid": s("integer")})),
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
    all
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
            "slotDuration": {"type": "integer", "description": "Must equal the event type's length when given."},
            "reservationDuration": {"type": "integer", "minimum": 1, "maximum": 60, "default": 5, "description": "Minutes."}})),
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
        if e.path == "/v2/slots" {
            params.extend(slot_params());
        }
        if e.path == "/v2/bookings" && e.method == "get" {
            params.extend(booking_list_params());
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
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": r(body)}}}),
            );
        }
        let mut responses = Map::new();
        let ok_content = if e.ok.1 == "PrometheusText" {
            json!({"text/plain; version=0.0.4": {"schema": r(e.ok.1)}})
        } else if e.ok.1 == "Calendar" {
            json!({"text/calendar": {"schema": r(e.ok.1)}})
        } else {
            json!({"application/json": {"schema": r(e.ok.1)}})
        };
        responses.insert(
            e.ok.0.to_string(),
            json!({"description": "Success", "content": ok_content}),
        );
        for code in e.errors {
            let description = match code {
                400 => "Invalid input (details list each field)",
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
            "schemas": schemas(),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
            6
        );
        assert!(
            doc["paths"]["/v2/bookings"]["post"]["responses"]["429"]["headers"]["Retry-After"]
                .is_object()
        );
        assert!(doc["paths"]["/v2/bookings"]["get"]["responses"]["429"].is_null());
    }
}
