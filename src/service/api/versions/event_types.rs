//! `/v2/event-types` in Cal.com's two shapes:
//!
//! - `2024-06-14` ([`Current`]): `{lengthInMinutes, lengthInMinutesOptions, title, slug,
//!   slotInterval, bookingWindow, bookingLimitsCount, offsetStart, locations, ...}`, lists as an
//!   array;
//! - before it (`2024-04-15`, `2024-06-11`, no header: [`Legacy`]): `{length, slug, title,
//!   description, hidden, locations, disableGuests, slotInterval, ...}`, event types as
//!   Cal.com's database rows (`periodType`, `bookingLimits: {PER_DAY}`, ...), lists as
//!   `{eventTypeGroups: [{profile, eventTypes}]}`, one as `{eventType}`.
//!
//! calops adds `userId` (the host, for an organization's key; a user's key defaults to its
//! user), `scheduleId`, and its e-mail settings `sendEmails` (default true) and
//! `emailRemindersMinutesBefore` (none by default) to both, in requests and responses. Sources: Cal.com's
//! `packages/platform/types/event-types/event-types_2024_06_14/inputs/create-event-type.input.ts`,
//! `apps/api/v2/src/ee/event-types/event-types_2024_04_15/` and
//! <https://cal.com/docs/api-reference/v2/event-types>.

use super::super::error::ApiError;
use super::super::input::{self, iso, Warning};
use super::{fields_of, Family, Resource, Shape, EVENT_TYPES_2024_06_14, EVENT_TYPES_LEGACY};
use crate::service::domain::FieldError;
use crate::service::store::{EventType, User};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};

/// What a request sets of an event type; `None`: not given. `Some(None)` clears an optional
/// field.
#[derive(Debug, Clone, Default)]
pub struct EventTypeFields {
    pub user_id: Option<i64>,
    pub title: Option<String>,
    pub slug: Option<String>,
    pub description: Option<Option<String>>,
    pub length: Option<i64>,
    pub length_options: Option<Option<Vec<i64>>>,
    pub slot_interval: Option<Option<i64>>,
    pub minimum_booking_notice: Option<i64>,
    pub before_event_buffer: Option<i64>,
    pub after_event_buffer: Option<i64>,
    pub schedule_id: Option<Option<i64>>,
    /// Cal.com's window shape, checked by the handler.
    pub booking_window: Option<Option<Value>>,
    /// At most this many bookings a day.
    pub per_day_limit: Option<Option<i64>>,
    pub offset_start: Option<i64>,
    pub locations: Option<Value>,
    pub disable_guests: Option<bool>,
    /// calops: whether bookings of this type send e-mail.
    pub send_emails: Option<bool>,
    /// calops: reminder offsets, minutes before the start (checked by the handler).
    pub email_reminders: Option<Vec<i64>>,
}

/// Parsers and writers of one shape of `/v2/event-types`.
pub trait EventTypeApi: Send + Sync {
    fn family(&self) -> &'static Family;
    /// A create (`patch` false: the required fields must be there) or a change.
    fn fields(
        &self,
        body: Value,
        patch: bool,
        w: &mut Vec<Warning>,
    ) -> Result<EventTypeFields, ApiError>;
    fn event_type(&self, e: &EventType, host: Option<&User>) -> Value;
    /// The `data` of one event type read alone.
    fn one(&self, e: &EventType, host: Option<&User>) -> Value;
    /// The `data` of a list.
    fn list(&self, all: &[EventType], hosts: &[User]) -> Value;
    fn deleted(&self, e: &EventType) -> Value;
}

pub struct EventTypes;

impl Resource for EventTypes {
    type Api = dyn EventTypeApi;
    fn api(shape: Shape) -> &'static dyn EventTypeApi {
        match shape {
            Shape::Legacy => &Legacy,
            Shape::Current => &Current,
        }
    }
}

pub struct Current;
pub struct Legacy;

/// `a` with `b`'s keys added.
fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Tell "absent" (`None`) from "null" (`Some(None)`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(Option::<T>::deserialize(d)?))
}

/// `{"disabled": true}` (Cal.com's way to switch a setting off) is `null`.
fn disabled(v: Option<Option<Value>>) -> Option<Option<Value>> {
    v.map(|v| v.filter(|v| v.get("disabled").and_then(Value::as_bool) != Some(true)))
}

/// Every field Cal.com documents for 2024-06-14. Those calops ignores are read only to be
/// type-checked and named in a warning (`CURRENT_NO_EFFECT`).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
struct CurrentIn {
    // calops
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    send_emails: Option<bool>,
    #[serde(default)]
    email_reminders_minutes_before: Option<Vec<i64>>,
    // Cal.com 2024-06-14
    #[serde(default)]
    length_in_minutes: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    length_in_minutes_options: Option<Option<Vec<i64>>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    locations: Option<Value>,
    #[serde(default)]
    booking_fields: Option<Value>,
    #[serde(default)]
    disable_guests: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    slot_interval: Option<Option<i64>>,
    #[serde(default)]
    minimum_booking_notice: Option<i64>,
    #[serde(default)]
    before_event_buffer: Option<i64>,
    #[serde(default)]
    after_event_buffer: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    schedule_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    booking_limits_count: Option<Option<Value>>,
    #[serde(default)]
    booker_active_bookings_limit: Option<Value>,
    #[serde(default)]
    only_show_first_available_slot: Option<bool>,
    #[serde(default)]
    booking_limits_duration: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    booking_window: Option<Option<Value>>,
    #[serde(default)]
    offset_start: Option<i64>,
    #[serde(default)]
    booker_layouts: Option<Value>,
    #[serde(default)]
    confirmation_policy: Option<Value>,
    #[serde(default)]
    recurrence: Option<Value>,
    #[serde(default)]
    requires_booker_email_verification: Option<bool>,
    #[serde(default)]
    hide_calendar_notes: Option<bool>,
    #[serde(default)]
    lock_time_zone_toggle_on_booking_page: Option<bool>,
    #[serde(default)]
    color: Option<Value>,
    #[serde(default)]
    seats: Option<Value>,
    #[serde(default)]
    custom_name: Option<String>,
    #[serde(default)]
    destination_calendar: Option<Value>,
    #[serde(default)]
    use_destination_calendar_email: Option<bool>,
    #[serde(default)]
    hide_calendar_event_details: Option<bool>,
    #[serde(default)]
    success_redirect_url: Option<String>,
    #[serde(default)]
    hide_organizer_email: Option<bool>,
    #[serde(default)]
    cal_video_settings: Option<Value>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(default)]
    booking_requires_authentication: Option<bool>,
    #[serde(default)]
    disable_cancelling: Option<Value>,
    #[serde(default)]
    disable_rescheduling: Option<Value>,
    #[serde(default)]
    interface_language: Option<String>,
    #[serde(default)]
    allow_rescheduling_past_bookings: Option<bool>,
    #[serde(default)]
    allow_rescheduling_cancelled_bookings: Option<bool>,
    #[serde(default)]
    show_optimized_slots: Option<bool>,
}

/// `locations`: an array of Cal.com location objects (each with a `type`).
fn locations(field: &str, v: Option<Value>, errors: &mut Vec<FieldError>) -> Option<Value> {
    let v = v?;
    match v.as_array() {
        Some(a)
            if a.iter()
                .all(|l| l.get("type").is_some_and(Value::is_string)) =>
        {
            Some(v)
        }
        _ => {
            errors.push(FieldError::new(
                field,
                "must be an array of location objects, each with a \"type\" (address, link, phone, integration, ...)",
            ));
            None
        }
    }
}

/// The documented settings calops stores nothing of, each with why.
const CURRENT_NO_EFFECT: &[(&str, &str)] = &[
    (
        "bookingFields",
        "calops keeps the booker's answers but does not build or check a booking form",
    ),
    (
        "bookerActiveBookingsLimit",
        "calops does not limit bookings per booker",
    ),
    ("onlyShowFirstAvailableSlot", "calops lists every slot"),
    (
        "bookingLimitsDuration",
        "calops enforces only bookingLimitsCount.day",
    ),
    ("bookerLayouts", "calops has no booker layouts"),
    ("confirmationPolicy", "calops accepts bookings at once"),
    ("recurrence", "calops has no recurring event types"),
    (
        "requiresBookerEmailVerification",
        "calops does not verify bookers' e-mail addresses",
    ),
    ("hideCalendarNotes", "calops' calendars carry no notes"),
    (
        "lockTimeZoneToggleOnBookingPage",
        "calops has no booking-page time zone toggle",
    ),
    ("color", "calops shows no event type colours"),
    ("seats", "calops has no seated event types"),
    ("customName", "calops names bookings after the event type"),
    ("destinationCalendar", "calops writes no external calendars"),
    (
        "useDestinationCalendarEmail",
        "calops writes no external calendars",
    ),
    (
        "hideCalendarEventDetails",
        "calops writes no external calendars",
    ),
    ("successRedirectUrl", "calops has no redirect after booking"),
    (
        "hideOrganizerEmail",
        "calops shows the host's e-mail address to API clients",
    ),
    ("calVideoSettings", "calops has no video calls"),
    ("hidden", "calops lists no event types publicly"),
    (
        "bookingRequiresAuthentication",
        "calops bookings always need an API key with the book scope",
    ),
    (
        "disableCancelling",
        "cancelling follows the API key's cancel scope",
    ),
    (
        "disableRescheduling",
        "rescheduling follows the API key's reschedule scope",
    ),
    (
        "interfaceLanguage",
        "calops has no booking interface language",
    ),
    (
        "allowReschedulingPastBookings",
        "calops reschedules accepted bookings only",
    ),
    (
        "allowReschedulingCancelledBookings",
        "calops reschedules accepted bookings only",
    ),
    ("showOptimizedSlots", "calops lists every slot"),
];

impl EventTypeApi for Current {
    fn family(&self) -> &'static Family {
        &EVENT_TYPES_2024_06_14
    }

    fn fields(
        &self,
        body: Value,
        patch: bool,
        w: &mut Vec<Warning>,
    ) -> Result<EventTypeFields, ApiError> {
        let given: Vec<String> = body
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        let b: CurrentIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        if !patch {
            for (name, missing) in [
                ("lengthInMinutes", b.length_in_minutes.is_none()),
                ("title", b.title.is_none()),
                ("slug", b.slug.is_none()),
            ] {
                if missing {
                    errors.push(FieldError::new(name, "required"));
                }
            }
        }
        if let (Some(Some(options)), Some(own)) =
            (&b.length_in_minutes_options, b.length_in_minutes)
        {
            if !options.contains(&own) {
                errors.push(FieldError::new(
                    "lengthInMinutesOptions",
                    "must include lengthInMinutes",
                ));
            }
        }
        let per_day = match disabled(b.booking_limits_count) {
            None => None,
            Some(None) => Some(None),
            Some(Some(v)) => {
                let obj = v.as_object();
                for k in obj.into_iter().flat_map(|o| o.keys()) {
                    match k.as_str() {
                        // `disabled: true` was handled above; `false` changes nothing.
                        "day" | "disabled" => {}
                        "week" | "month" | "year" => w.push(Warning::no_effect(
                            format!("bookingLimitsCount.{k}"),
                            "calops enforces only the per-day limit",
                        )),
                        other => errors.push(FieldError::new(
                            format!("bookingLimitsCount.{other}"),
                            "unknown field (expected day, week, month, year or disabled)",
                        )),
                    }
                }
                match obj.and_then(|o| o.get("day")) {
                    None => Some(None),
                    Some(d) => match d.as_i64().filter(|n| (1..=1000).contains(n)) {
                        Some(n) => Some(Some(n)),
                        None => {
                            errors.push(FieldError::new(
                                "bookingLimitsCount.day",
                                "must be a whole number from 1 to 1000",
                            ));
                            None
                        }
                    },
                }
            }
        };
        let locations = locations("locations", b.locations, &mut errors);
        for (name, why) in CURRENT_NO_EFFECT {
            if given.iter().any(|g| g == name) {
                w.push(Warning::no_effect(*name, why));
            }
        }
        input::check(errors)?;
        Ok(EventTypeFields {
            user_id: b.user_id,
            title: b.title,
            slug: b.slug,
            description: b.description,
            length: b.length_in_minutes,
            length_options: b.length_in_minutes_options,
            slot_interval: b.slot_interval,
            minimum_booking_notice: b.minimum_booking_notice,
            before_event_buffer: b.before_event_buffer,
            after_event_buffer: b.after_event_buffer,
            schedule_id: b.schedule_id,
            booking_window: disabled(b.booking_window),
            per_day_limit: per_day,
            offset_start: b.offset_start,
            locations,
            disable_guests: b.disable_guests,
            send_emails: b.send_emails,
            email_reminders: b.email_reminders_minutes_before,
        })
    }

    fn event_type(&self, e: &EventType, host: Option<&User>) -> Value {
        let v = json!({
            "id": e.id,
            "ownerId": e.user_id,
            "lengthInMinutes": e.length_minutes,
            "lengthInMinutesOptions": e.length_options,
            "title": e.title,
            "slug": e.slug,
            "description": e.description.clone().unwrap_or_default(),
            "locations": e.locations,
            "bookingFields": [],
            "disableGuests": e.disable_guests,
            "slotInterval": e.slot_interval,
            "minimumBookingNotice": e.minimum_booking_notice,
            "beforeEventBuffer": e.before_event_buffer,
            "afterEventBuffer": e.after_event_buffer,
            "scheduleId": e.schedule_id,
            "bookingWindow": e.booking_window,
            "bookingLimitsCount": e.per_day_limit.map(|d| json!({ "day": d })),
            "offsetStart": e.offset_start,
            "sendEmails": e.mail_enabled,
            "emailRemindersMinutesBefore": e.mail_reminders,
        });
        // The settings calops does not have, as Cal.com shows them switched off.
        let off = json!({
            "recurrence": null,
            "metadata": {},
            "price": 0,
            "currency": "usd",
            "lockTimeZoneToggleOnBookingPage": false,
            "seatsPerTimeSlot": null,
            "forwardParamsSuccessRedirect": null,
            "successRedirectUrl": null,
            "isInstantEvent": false,
            "seatsShowAvailabilityCount": null,
            "onlyShowFirstAvailableSlot": false,
            "bookingLimitsDuration": null,
            "bookerLayouts": null,
            "confirmationPolicy": null,
            "requiresBookerEmailVerification": false,
            "hideCalendarNotes": false,
            "color": null,
            "seats": null,
            "customName": null,
            "destinationCalendar": null,
            "useDestinationCalendarEmail": false,
            "hideCalendarEventDetails": false,
            "hideOrganizerEmail": false,
            "hidden": false,
            "bookingRequiresAuthentication": true,
            "users": host.map(|u| vec![json!({
                "id": u.id, "name": u.name, "username": u.username, "avatarUrl": null,
                "weekStart": "Monday", "brandColor": null, "darkBrandColor": null, "metadata": {},
            })]).unwrap_or_default(),
        });
        merge(v, off)
    }

    fn one(&self, e: &EventType, host: Option<&User>) -> Value {
        self.event_type(e, host)
    }

    fn list(&self, all: &[EventType], hosts: &[User]) -> Value {
        Value::Array(
            all.iter()
                .map(|e| self.event_type(e, hosts.iter().find(|u| u.id == e.user_id)))
                .collect(),
        )
    }

    fn deleted(&self, e: &EventType) -> Value {
        json!({"id": e.id, "lengthInMinutes": e.length_minutes, "title": e.title, "slug": e.slug})
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyIn {
    // calops
    #[serde(default)]
    user_id: Option<i64>,
    #[serde(default)]
    send_emails: Option<bool>,
    #[serde(default)]
    email_reminders_minutes_before: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    schedule_id: Option<Option<i64>>,
    // Cal.com 2024-04-15 (create and update)
    #[serde(default)]
    length: Option<i64>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(default)]
    locations: Option<Value>,
    #[serde(default)]
    disable_guests: Option<bool>,
    #[serde(default)]
    slot_interval: Option<i64>,
    #[serde(default)]
    minimum_booking_notice: Option<i64>,
    #[serde(default)]
    before_event_buffer: Option<i64>,
    #[serde(default)]
    after_event_buffer: Option<i64>,
    // Cal.com 2024-04-15, update only
    #[serde(default)]
    booking_fields: Option<Value>,
    #[serde(default)]
    seats_per_time_slot: Option<i64>,
}

impl EventTypeApi for Legacy {
    fn family(&self) -> &'static Family {
        &EVENT_TYPES_LEGACY
    }

    fn fields(
        &self,
        body: Value,
        patch: bool,
        w: &mut Vec<Warning>,
    ) -> Result<EventTypeFields, ApiError> {
        let b: LegacyIn = input::typed(body, &fields_of(self.family()))?;
        let mut errors = Vec::new();
        if !patch {
            for (name, missing) in [
                ("length", b.length.is_none()),
                ("slug", b.slug.is_none()),
                ("title", b.title.is_none()),
            ] {
                if missing {
                    errors.push(FieldError::new(name, "required"));
                }
            }
        }
        let locations = locations("locations", b.locations, &mut errors);
        if b.hidden.is_some() {
            w.push(Warning::no_effect(
                "hidden",
                "calops lists no event types publicly",
            ));
        }
        if b.booking_fields.is_some() {
            w.push(Warning::no_effect(
                "bookingFields",
                "calops keeps the booker's answers but does not build or check a booking form",
            ));
        }
        if patch && b.seats_per_time_slot.is_some() {
            w.push(Warning::no_effect(
                "seatsPerTimeSlot",
                "calops has no seated event types",
            ));
        } else if b.seats_per_time_slot.is_some() {
            errors.push(FieldError::new(
                "seatsPerTimeSlot",
                "unknown field: Cal.com takes it when updating an event type only",
            ));
        }
        if b.booking_fields.is_some() && !patch {
            errors.push(FieldError::new(
                "bookingFields",
                "unknown field: Cal.com takes it when updating an event type only",
            ));
        }
        input::check(errors)?;
        Ok(EventTypeFields {
            user_id: b.user_id,
            title: b.title,
            slug: b.slug,
            description: b.description,
            length: b.length,
            // 0 is Cal.com's "the length" here.
            slot_interval: b.slot_interval.map(|i| Some(i).filter(|i| *i > 0)),
            minimum_booking_notice: b.minimum_booking_notice,
            before_event_buffer: b.before_event_buffer,
            after_event_buffer: b.after_event_buffer,
            schedule_id: b.schedule_id,
            locations,
            disable_guests: b.disable_guests,
            send_emails: b.send_emails,
            email_reminders: b.email_reminders_minutes_before,
            ..EventTypeFields::default()
        })
    }

    fn event_type(&self, e: &EventType, _: Option<&User>) -> Value {
        let mut period = json!({
            "periodType": "UNLIMITED", "periodStartDate": null, "periodEndDate": null,
            "periodDays": null, "periodCountCalendarDays": null,
        });
        if let Some(w) = &e.booking_window {
            let kind = w.get("type").and_then(Value::as_str).unwrap_or_default();
            let rolling = w.get("rolling").and_then(Value::as_bool) == Some(true);
            match kind {
                "range" => {
                    period["periodType"] = json!("RANGE");
                    period["periodStartDate"] = w["value"][0].clone();
                    period["periodEndDate"] = w["value"][1].clone();
                }
                _ => {
                    period["periodType"] =
                        json!(if rolling { "ROLLING_WINDOW" } else { "ROLLING" });
                    period["periodDays"] = w["value"].clone();
                    period["periodCountCalendarDays"] = json!(kind == "calendarDays");
                }
            }
        }
        let v = json!({
            "id": e.id,
            "length": e.length_minutes,
            "slug": e.slug,
            "title": e.title,
            "description": e.description,
            "hidden": false,
            "locations": e.locations,
            "position": 0,
            "offsetStart": e.offset_start,
            "userId": e.user_id,
            "profileId": null,
            "teamId": null,
            "eventName": null,
            "parentId": null,
            "bookingFields": [],
            "scheduleId": e.schedule_id,
            "slotInterval": e.slot_interval,
            "bookingLimits": e.per_day_limit.map_or(json!({}), |d| json!({"PER_DAY": d})),
            "createdAt": iso(e.created_at),
            "sendEmails": e.mail_enabled,
            "emailRemindersMinutesBefore": e.mail_reminders,
        });
        // What calops does not have, as Cal.com's rows show it unset.
        let off = json!({
            "timeZone": null,
            "hideCalendarNotes": false,
            "lockTimeZoneToggleOnBookingPage": false,
            "requiresConfirmation": false,
            "requiresBookerEmailVerification": false,
            "recurringEvent": null,
            "disableGuests": e.disable_guests,
            "minimumBookingNotice": e.minimum_booking_notice,
            "beforeEventBuffer": e.before_event_buffer,
            "afterEventBuffer": e.after_event_buffer,
            "seatsPerTimeSlot": null,
            "onlyShowFirstAvailableSlot": false,
            "seatsShowAttendees": false,
            "seatsShowAvailabilityCount": true,
            "schedulingType": null,
            "price": 0,
            "currency": "usd",
            "metadata": {},
            "successRedirectUrl": null,
            "durationLimits": {},
            "isInstantEvent": false,
            "assignAllTeamMembers": false,
            "useEventTypeDestinationCalendarEmail": false,
            "secondaryEmailId": null,
        });
        merge(merge(v, off), period)
    }

    fn one(&self, e: &EventType, host: Option<&User>) -> Value {
        json!({ "eventType": self.event_type(e, host) })
    }

    /// `{eventTypeGroups: [...], profiles: [...]}`: one group per host, as Cal.com groups a
    /// user's and each of their teams' event types.
    fn list(&self, all: &[EventType], hosts: &[User]) -> Value {
        let mut groups = Vec::new();
        let mut profiles = Vec::new();
        let mut seen: Vec<i64> = Vec::new();
        for e in all {
            if seen.contains(&e.user_id) {
                continue;
            }
            seen.push(e.user_id);
            let host = hosts.iter().find(|u| u.id == e.user_id);
            let mut profile = Map::new();
            profile.insert("slug".into(), json!(host.map(|u| u.username.clone())));
            profile.insert("name".into(), json!(host.map(|u| u.name.clone())));
            profile.insert("image".into(), json!(""));
            profile.insert("eventTypesLockedByOrg".into(), json!(false));
            let types: Vec<Value> = all
                .iter()
                .filter(|t| t.user_id == e.user_id)
                .map(|t| self.event_type(t, host))
                .collect();
            groups.push(json!({
                "teamId": null,
                "bookerUrl": "",
                "membershipRole": null,
                "profile": Value::Object(profile.clone()),
                "metadata": {"membershipCount": 1, "readOnly": false},
                "eventTypes": types,
            }));
            profile.insert("teamId".into(), Value::Null);
            profile.insert("membershipRole".into(), Value::Null);
            profile.insert("membershipCount".into(), json!(1));
            profile.insert("readOnly".into(), json!(false));
            profiles.push(Value::Object(profile));
        }
        json!({ "eventTypeGroups": groups, "profiles": profiles })
    }

    fn deleted(&self, e: &EventType) -> Value {
        json!({"id": e.id, "length": e.length_minutes, "slug": e.slug, "title": e.title})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_create_example_is_read_with_warnings_not_errors() {
        let mut w = Vec::new();
        let f = Current
            .fields(
                json!({"lengthInMinutes": 60, "lengthInMinutesOptions": [15, 30, 60],
                       "title": "T", "slug": "t", "offsetStart": 10,
                       "bookingLimitsCount": {"day": 1, "week": 2},
                       "bookingWindow": {"disabled": true},
                       "seats": {"seatsPerTimeSlot": 4}, "hidden": true,
                       "locations": [{"type": "address", "address": "1 Main St", "public": true}]}),
                false,
                &mut w,
            )
            .unwrap();
        assert_eq!(f.offset_start, Some(10));
        assert_eq!(f.per_day_limit, Some(Some(1)));
        assert_eq!(f.booking_window, Some(None), "disabled clears it");
        let warned: Vec<&str> = w.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(warned, ["bookingLimitsCount.week", "seats", "hidden"]);
        let e = Current
            .fields(json!({"title": "T", "bogus": 1}), false, &mut w)
            .unwrap_err();
        assert_eq!(e.details["fields"][0]["field"], "bogus");
        let e = Current
            .fields(
                json!({"lengthInMinutes": 30, "lengthInMinutesOptions": [15]}),
                true,
                &mut w,
            )
            .unwrap_err();
        assert_eq!(e.details["fields"][0]["field"], "lengthInMinutesOptions");
        let e = Legacy
            .fields(json!({"lengthInMinutes": 30}), true, &mut w)
            .unwrap_err();
        assert_eq!(
            e.details["fields"][0]["field"], "lengthInMinutes",
            "not a legacy field"
        );
    }
}
