//! Embedded schema migrations, applied in order under a PostgreSQL advisory lock so that
//! several replicas starting together apply each one exactly once.

use tokio_postgres::Client;

/// `pg_advisory_lock` key: "calops" in ASCII, so it is recognisable in `pg_locks`.
pub const LOCK_KEY: i64 = 0x63_61_6c_6f_70_73;

/// (version, name, SQL). Append only: never edit a migration that has shipped.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, "initial schema", V1),
    (2, "bookings: no overlaps, reservations, idempotency", V2),
    (3, "webhooks", V3),
    (
        4,
        "ics: calendar uid and sequence, pending object writes",
        V4,
    ),
    (5, "slot cache: notify replicas of changes", V5),
    (6, "bookings: one exclusion constraint, lighter writes", V6),
    (7, "api keys: notify replicas of revocations", V7),
    // A database missing a version below its highest (e.g. one at 11 without 10, which were
    // written on parallel branches) gets it on the next start.
    (
        8,
        "Cal.com compatibility: usernames, user keys, booking and event type fields",
        V8,
    ),
    (
        9,
        "pages: user slugs, embed allow-lists per organization",
        V9,
    ),
    (10, "mail: outbox, reminders, per event type switch", V10),
    (
        11,
        "connected calendars: CalDAV busy time and write-back",
        V11,
    ),
    (
        12,
        "slot cache: notify replicas of organization changes",
        V12,
    ),
    (
        13,
        "mail: claims read the due index in order, fewer outbox indexes",
        V13,
    ),
    (
        14,
        "mail: one event row per booking change, expanded into messages by the workers",
        V14,
    ),
];

const V1: &str = r#"
-- Part 2 (bookings) needs btree_gist for its exclusion constraint; it ships in contrib and is
-- a trusted extension, so the database owner may create it.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gist') THEN
    CREATE EXTENSION IF NOT EXISTS btree_gist;
  END IF;
END $$;

CREATE TABLE organizations (
  id               bigserial PRIMARY KEY,
  parent_id        bigint REFERENCES organizations(id) ON DELETE CASCADE,
  name             text NOT NULL,
  slug             text NOT NULL,
  brand_color      text,
  dark_brand_color text,
  logo_url         text,
  theme            text,
  hide_branding    boolean NOT NULL DEFAULT false,
  metadata         jsonb NOT NULL DEFAULT '{}',
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX organizations_slug_top ON organizations (slug) WHERE parent_id IS NULL;
CREATE UNIQUE INDEX organizations_slug_child ON organizations (parent_id, slug) WHERE parent_id IS NOT NULL;

CREATE TABLE api_keys (
  id          bigserial PRIMARY KEY,
  org_id      bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  key_hash    bytea NOT NULL UNIQUE,      -- SHA-256 of the key; the key itself is never stored
  key_prefix  text NOT NULL,              -- first characters, to tell keys apart
  name        text,
  scopes      text[] NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz,
  revoked_at  timestamptz
);

CREATE TABLE users (
  id          bigserial PRIMARY KEY,
  org_id      bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  name        text NOT NULL,
  email       text NOT NULL,
  time_zone   text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_org_email ON users (org_id, lower(email));

CREATE TABLE schedules (
  id           bigserial PRIMARY KEY,
  org_id       bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name         text NOT NULL,
  time_zone    text NOT NULL,
  is_default   boolean NOT NULL DEFAULT false,
  availability jsonb NOT NULL,   -- [{"days":["Monday"],"startTime":"09:00","endTime":"17:00"}]
  overrides    jsonb NOT NULL,   -- [{"date":"2026-06-01","startTime":"10:00","endTime":"12:00"}]
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_user ON schedules (user_id);
CREATE UNIQUE INDEX schedules_one_default ON schedules (user_id) WHERE is_default;

CREATE TABLE event_types (
  id                     bigserial PRIMARY KEY,
  org_id                 bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  user_id                bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  schedule_id            bigint REFERENCES schedules(id) ON DELETE SET NULL,
  title                  text NOT NULL,
  slug                   text NOT NULL,
  description            text,
  length_minutes         integer NOT NULL CHECK (length_minutes BETWEEN 1 AND 1440),
  slot_interval          integer CHECK (slot_interval BETWEEN 1 AND 1440),
  minimum_booking_notice integer NOT NULL DEFAULT 0 CHECK (minimum_booking_notice >= 0),
  before_event_buffer    integer NOT NULL DEFAULT 0 CHECK (before_event_buffer BETWEEN 0 AND 1440),
  after_event_buffer     integer NOT NULL DEFAULT 0 CHECK (after_event_buffer BETWEEN 0 AND 1440),
  booking_window         jsonb,    -- Cal.com shape: {"type","value","rolling"}
  per_day_limit          integer CHECK (per_day_limit >= 1),
  created_at             timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, slug)
);

-- Bookings: part 1 reads them as busy time; part 2 adds the API, the exclusion constraint over
-- (host_user_id, occupied range) for active bookings, idempotency and the outbox.
-- The booked type's buffers are copied in so that the occupied range is fixed per row.
CREATE TABLE bookings (
  id                    bigserial PRIMARY KEY,
  uid                   uuid NOT NULL UNIQUE,
  org_id                bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  event_type_id         bigint NOT NULL REFERENCES event_types(id),
  host_user_id          bigint NOT NULL REFERENCES users(id),
  start_at              timestamptz NOT NULL,
  end_at                timestamptz NOT NULL,
  status                text NOT NULL DEFAULT 'accepted'
                        CHECK (status IN ('accepted', 'pending', 'cancelled', 'rejected')),
  before_buffer_minutes integer NOT NULL DEFAULT 0,
  after_buffer_minutes  integer NOT NULL DEFAULT 0,
  attendee              jsonb NOT NULL DEFAULT '{}',
  metadata              jsonb NOT NULL DEFAULT '{}',
  created_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (end_at > start_at)
);
CREATE INDEX bookings_host_time ON bookings (host_user_id, start_at) WHERE status = 'accepted';
"#;

/// The double-booking guarantee. Every booking row carries its occupied range (its time
/// widened by its own buffers, kept by a trigger); an exclusion constraint forbids two
/// accepted bookings of one host whose ranges overlap. Slot holds and accepted bookings share
/// one `occupancy` table with its own exclusion constraint, so a hold and a booking exclude
/// each other too, whatever the interleaving of transactions.
const V2: &str = r#"
CREATE EXTENSION IF NOT EXISTS btree_gist;

ALTER TABLE bookings
  ADD COLUMN title                text,
  ADD COLUMN guests               jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN occupied             tstzrange,
  ADD COLUMN rescheduled_from_uid uuid,
  ADD COLUMN rescheduled_to_uid   uuid,
  ADD COLUMN cancellation_reason  text,
  ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now();

CREATE FUNCTION calops_occupied(s timestamptz, e timestamptz, b integer, a integer)
RETURNS tstzrange LANGUAGE sql STABLE AS
$f$ SELECT tstzrange(s - make_interval(mins => b), e + make_interval(mins => a), '[)') $f$;

-- Writers of overlapping time queue up: one transaction-scoped advisory lock per hour that the
-- range touches, taken in ascending order. Two overlapping ranges share an hour, so they never
-- wait on each other inside the exclusion check (where PostgreSQL can only break a deadlock
-- after deadlock_timeout); writers of separate hours run in parallel. Not the guarantee: the
-- exclusion constraints are.
CREATE FUNCTION calops_lock_time(host bigint, r tstzrange) RETURNS void LANGUAGE plpgsql AS $f$
DECLARE h bigint;
BEGIN
  FOR h IN SELECT generate_series(floor(extract(epoch FROM lower(r)) / 3600)::bigint,
                                  floor((extract(epoch FROM upper(r)) - 1) / 3600)::bigint)
  LOOP
    PERFORM pg_advisory_xact_lock(4611686018427387904 + (host % 1073741824) * 16777216
                                  + (h % 16777216));
  END LOOP;
END $f$;

CREATE FUNCTION bookings_set_occupied() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  NEW.occupied := calops_occupied(NEW.start_at, NEW.end_at, NEW.before_buffer_minutes,
                                  NEW.after_buffer_minutes);
  RETURN NEW;
END $f$;
CREATE TRIGGER bookings_occupied BEFORE INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_set_occupied();

UPDATE bookings SET occupied = calops_occupied(start_at, end_at, before_buffer_minutes,
                                               after_buffer_minutes);
ALTER TABLE bookings ALTER COLUMN occupied SET NOT NULL;

-- Existing data must already be free of overlaps; say which rows are not, rather than guess.
DO $d$
DECLARE pairs text;
BEGIN
  SELECT string_agg(a.uid || ' & ' || b.uid, ', ') INTO pairs
  FROM bookings a JOIN bookings b
    ON a.host_user_id = b.host_user_id AND a.id < b.id AND a.occupied && b.occupied
  WHERE a.status = 'accepted' AND b.status = 'accepted';
  IF pairs IS NOT NULL THEN
    RAISE EXCEPTION 'accepted bookings overlap (with their buffers): %', pairs
      USING HINT = 'cancel one booking of each pair (UPDATE bookings SET status = ''cancelled'' WHERE uid = ...), then start the service again';
  END IF;
END $d$;

ALTER TABLE bookings ADD CONSTRAINT bookings_no_overlap
  EXCLUDE USING gist (host_user_id WITH =, occupied WITH &&) WHERE (status = 'accepted');

CREATE INDEX bookings_org_start ON bookings (org_id, start_at);

CREATE TABLE slot_reservations (
  id                    bigserial PRIMARY KEY,
  uid                   uuid NOT NULL UNIQUE,
  org_id                bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  event_type_id         bigint NOT NULL REFERENCES event_types(id) ON DELETE CASCADE,
  host_user_id          bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  start_at              timestamptz NOT NULL,
  end_at                timestamptz NOT NULL,
  before_buffer_minutes integer NOT NULL DEFAULT 0,
  after_buffer_minutes  integer NOT NULL DEFAULT 0,
  occupied              tstzrange NOT NULL,
  expires_at            timestamptz NOT NULL,
  created_at            timestamptz NOT NULL DEFAULT now(),
  CHECK (end_at > start_at)
);
CREATE INDEX slot_reservations_host ON slot_reservations (host_user_id, expires_at);

-- What holds a host's time: accepted bookings and slot holds, one row each.
CREATE TABLE occupancy (
  host_user_id   bigint NOT NULL,
  during         tstzrange NOT NULL,
  booking_id     bigint UNIQUE REFERENCES bookings(id) ON DELETE CASCADE,
  reservation_id bigint UNIQUE REFERENCES slot_reservations(id) ON DELETE CASCADE,
  CHECK ((booking_id IS NULL) <> (reservation_id IS NULL)),
  CONSTRAINT occupancy_no_overlap EXCLUDE USING gist (host_user_id WITH =, during WITH &&)
);

CREATE FUNCTION bookings_sync_occupancy() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.status = NEW.status AND OLD.occupied = NEW.occupied
       AND OLD.host_user_id = NEW.host_user_id THEN
      RETURN NEW;
    END IF;
    DELETE FROM occupancy WHERE booking_id = NEW.id;
  END IF;
  IF NEW.status = 'accepted' THEN
    INSERT INTO occupancy (host_user_id, during, booking_id)
      VALUES (NEW.host_user_id, NEW.occupied, NEW.id);
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER bookings_occupancy AFTER INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_sync_occupancy();

CREATE FUNCTION reservations_sync_occupancy() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO occupancy (host_user_id, during, reservation_id)
    VALUES (NEW.host_user_id, NEW.occupied, NEW.id);
  RETURN NEW;
END $f$;
CREATE TRIGGER reservations_occupancy AFTER INSERT ON slot_reservations
  FOR EACH ROW EXECUTE FUNCTION reservations_sync_occupancy();

INSERT INTO occupancy (host_user_id, during, booking_id)
  SELECT host_user_id, occupied, id FROM bookings WHERE status = 'accepted';

-- Idempotency-Key: the first result per organization and key.
CREATE TABLE idempotency_keys (
  org_id       bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  key          text NOT NULL,
  request_hash bytea NOT NULL,
  status       integer,
  response     jsonb,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, key)
);
"#;

/// Webhook subscriptions, their outbox (one delivery row per event and matching active
/// subscription, written in the booking's own transaction), and every attempt made. A
/// subscription's circuit breaker lives in its row so that all replicas share it.
const V3: &str = r#"
CREATE TABLE webhooks (
  id                   bigserial PRIMARY KEY,
  org_id               bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  subscriber_url       text NOT NULL,
  triggers             text[] NOT NULL,
  active               boolean NOT NULL DEFAULT true,
  secret               bytea,       -- AES-256-GCM sealed when secret_key_id is set
  secret_key_id        text,
  consecutive_failures integer NOT NULL DEFAULT 0,
  breaker_open_until   timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_org ON webhooks (org_id);

CREATE TABLE webhook_deliveries (
  id               bigserial PRIMARY KEY,
  uid              uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
  webhook_id       bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  org_id           bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  event_uid        uuid NOT NULL,     -- the same for every delivery (and replay) of one event
  trigger_event    text NOT NULL,
  booking_uid      uuid,
  body             text NOT NULL,     -- the exact bytes signed and sent
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts         integer NOT NULL DEFAULT 0,
  -- When pending: when it is due; while an attempt is in flight, the end of its lease.
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_status_code integer,
  last_error       text,
  replay_of        bigint REFERENCES webhook_deliveries(id) ON DELETE SET NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_history ON webhook_deliveries (webhook_id, created_at);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'pending';

-- One row per attempt, written when the attempt is claimed: the primary key is the proof
-- that no attempt is ever made twice.
CREATE TABLE webhook_attempts (
  delivery_id bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  attempt     integer NOT NULL,
  started_at  timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  status_code integer,
  error       text,
  duration_ms integer,
  PRIMARY KEY (delivery_id, attempt)
);
"#;

/// Calendar (ICS) bookkeeping. A booking's calendar `UID` is the uid of the booking that
/// started its reschedule chain and its `SEQUENCE` grows with every reschedule and the cancel;
/// both are kept by a trigger, so every path that writes bookings gets them. Every change a
/// calendar file must show records a pending write in the same transaction (`ics_pending`, one
/// row per calendar, `version` bumped on each change); a background task writes the file to
/// object storage and deletes the row only if its version is unchanged.
const V4: &str = r#"
ALTER TABLE bookings
  ADD COLUMN ical_uid      uuid,
  ADD COLUMN ical_sequence integer NOT NULL DEFAULT 0;

WITH RECURSIVE chain(id, uid, root, depth) AS (
  SELECT id, uid, uid, 0 FROM bookings WHERE rescheduled_from_uid IS NULL
  UNION ALL
  SELECT b.id, b.uid, c.root, c.depth + 1 FROM bookings b JOIN chain c ON b.rescheduled_from_uid = c.uid
)
UPDATE bookings b SET ical_uid = chain.root,
  ical_sequence = chain.depth + CASE WHEN b.status = 'cancelled' AND b.rescheduled_to_uid IS NULL
                                     THEN 1 ELSE 0 END
FROM chain WHERE chain.id = b.id;
UPDATE bookings SET ical_uid = uid WHERE ical_uid IS NULL;
ALTER TABLE bookings ALTER COLUMN ical_uid SET NOT NULL;
CREATE INDEX bookings_ical_uid ON bookings (ical_uid, id);

CREATE FUNCTION bookings_set_ical() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE prev record;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.rescheduled_from_uid IS NOT NULL THEN
      SELECT ical_uid, ical_sequence INTO prev FROM bookings WHERE uid = NEW.rescheduled_from_uid;
      IF FOUND THEN
        NEW.ical_uid := prev.ical_uid;
        NEW.ical_sequence := prev.ical_sequence + 1;
      END IF;
    END IF;
    NEW.ical_uid := COALESCE(NEW.ical_uid, NEW.uid);
  ELSIF NEW.status = 'cancelled' AND OLD.status <> 'cancelled' AND NEW.rescheduled_to_uid IS NULL THEN
    NEW.ical_sequence := OLD.ical_sequence + 1;
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER bookings_ical BEFORE INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_set_ical();

CREATE TABLE ics_pending (
  ical_uid   uuid PRIMARY KEY,
  org_id     bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  version    bigint NOT NULL DEFAULT 1,
  attempts   integer NOT NULL DEFAULT 0,
  due_at     timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ics_pending_due ON ics_pending (due_at);

CREATE FUNCTION bookings_ics_pending() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF NEW.status = OLD.status AND NEW.start_at = OLD.start_at AND NEW.end_at = OLD.end_at THEN
      RETURN NEW;
    END IF;
    -- The old half of a reschedule: the new booking (same calendar) records the write.
    IF NEW.rescheduled_to_uid IS NOT NULL THEN
      RETURN NEW;
    END IF;
  END IF;
  INSERT INTO ics_pending (ical_uid, org_id) VALUES (NEW.ical_uid, NEW.org_id)
    ON CONFLICT (ical_uid) DO UPDATE
      SET version = ics_pending.version + 1, attempts = 0, due_at = now(), last_error = NULL;
  RETURN NEW;
END $f$;
CREATE TRIGGER bookings_ics_pending AFTER INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_ics_pending();

-- Calendars of existing bookings are written once, too.
INSERT INTO ics_pending (ical_uid, org_id)
  SELECT DISTINCT ON (ical_uid) ical_uid, org_id FROM bookings ON CONFLICT DO NOTHING;
"#;

/// What a replica caches for slot queries (`store::cache`) goes stale when a host's bookings
/// or holds change (`h<host id>`) or when event types, schedules or users change (`c`); a truncated booking table drops
/// everything (`*`). The
/// notification is sent at commit, to every replica listening on `calops_cache`.
const V5: &str = r#"
CREATE FUNCTION calops_cache_host() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP <> 'INSERT' THEN
    PERFORM pg_notify('calops_cache', 'h' || OLD.host_user_id);
  END IF;
  IF TG_OP <> 'DELETE' AND (TG_OP = 'INSERT' OR NEW.host_user_id <> OLD.host_user_id) THEN
    PERFORM pg_notify('calops_cache', 'h' || NEW.host_user_id);
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_cache AFTER INSERT OR UPDATE OR DELETE ON bookings
  FOR EACH ROW EXECUTE FUNCTION calops_cache_host();
CREATE TRIGGER slot_reservations_cache AFTER INSERT OR UPDATE OR DELETE ON slot_reservations
  FOR EACH ROW EXECUTE FUNCTION calops_cache_host();

CREATE FUNCTION calops_cache_config() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_notify('calops_cache', 'c');
  RETURN NULL;
END $f$;
CREATE TRIGGER event_types_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON event_types
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_config();
CREATE TRIGGER schedules_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON schedules
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_config();
CREATE TRIGGER users_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_config();

CREATE FUNCTION calops_cache_all() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_notify('calops_cache', '*');
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_cache_truncate AFTER TRUNCATE ON bookings
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_all();
CREATE TRIGGER slot_reservations_cache_truncate AFTER TRUNCATE ON slot_reservations
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_all();
"#;

/// Lighter booking writes, the same guarantee:
/// - Every accepted booking already has its row in `occupancy` (kept in the booking's own
///   transaction), whose exclusion constraint forbids overlaps among accepted bookings and
///   holds alike; the second constraint on `bookings` itself checked the same bookings again.
/// - What an insert sets off runs once per statement, over the rows it inserted (a transition
///   table), instead of three PL/pgSQL calls per row: their `occupancy` rows, their pending
///   calendar writes, one cache notification per host. A batch of bookings
///   (`store::batch`) pays for it once. Updates and deletes keep their row triggers.
/// - The two BEFORE triggers are one function.
/// - `occupancy` rows of bookings are removed by a trigger when their booking is deleted or
///   the table truncated, instead of a foreign key whose check locked each new booking's row;
///   its unique indexes leave out the rows without the id they index.
/// - Pending calendar writes no longer lock their organization's row for a foreign key: the
///   writer already skips calendars whose bookings are gone.
const V6: &str = r#"
ALTER TABLE bookings DROP CONSTRAINT bookings_no_overlap;
ALTER TABLE ics_pending DROP CONSTRAINT ics_pending_org_id_fkey;
ALTER TABLE occupancy DROP CONSTRAINT occupancy_booking_id_fkey;
-- Each row has one of the two ids: index only the rows that have it.
ALTER TABLE occupancy DROP CONSTRAINT occupancy_booking_id_key;
ALTER TABLE occupancy DROP CONSTRAINT occupancy_reservation_id_key;
CREATE UNIQUE INDEX occupancy_booking ON occupancy (booking_id) WHERE booking_id IS NOT NULL;
CREATE UNIQUE INDEX occupancy_reservation ON occupancy (reservation_id)
  WHERE reservation_id IS NOT NULL;

CREATE FUNCTION bookings_before() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE prev record;
BEGIN
  NEW.occupied := calops_occupied(NEW.start_at, NEW.end_at, NEW.before_buffer_minutes,
                                  NEW.after_buffer_minutes);
  IF TG_OP = 'INSERT' THEN
    IF NEW.rescheduled_from_uid IS NOT NULL THEN
      SELECT ical_uid, ical_sequence INTO prev FROM bookings WHERE uid = NEW.rescheduled_from_uid;
      IF FOUND THEN
        NEW.ical_uid := prev.ical_uid;
        NEW.ical_sequence := prev.ical_sequence + 1;
      END IF;
    END IF;
    NEW.ical_uid := COALESCE(NEW.ical_uid, NEW.uid);
  ELSIF NEW.status = 'cancelled' AND OLD.status <> 'cancelled' AND NEW.rescheduled_to_uid IS NULL THEN
    NEW.ical_sequence := OLD.ical_sequence + 1;
  END IF;
  RETURN NEW;
END $f$;
DROP TRIGGER bookings_occupied ON bookings;
DROP TRIGGER bookings_ical ON bookings;
DROP FUNCTION bookings_set_occupied();
DROP FUNCTION bookings_set_ical();
CREATE TRIGGER bookings_before BEFORE INSERT OR UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_before();

CREATE FUNCTION bookings_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO occupancy (host_user_id, during, booking_id)
    SELECT host_user_id, occupied, id FROM new_rows WHERE status = 'accepted';
  INSERT INTO ics_pending (ical_uid, org_id)
    SELECT DISTINCT ical_uid, org_id FROM new_rows
    ON CONFLICT (ical_uid) DO UPDATE
      SET version = ics_pending.version + 1, attempts = 0, due_at = now(), last_error = NULL;
  PERFORM pg_notify('calops_cache', 'h' || host) FROM (SELECT DISTINCT host_user_id AS host FROM new_rows) h;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_inserted AFTER INSERT ON bookings REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bookings_inserted();

DROP TRIGGER bookings_occupancy ON bookings;
CREATE TRIGGER bookings_occupancy AFTER UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_sync_occupancy();
DROP TRIGGER bookings_ics_pending ON bookings;
CREATE TRIGGER bookings_ics_pending AFTER UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_ics_pending();
DROP TRIGGER bookings_cache ON bookings;
CREATE TRIGGER bookings_cache AFTER UPDATE OR DELETE ON bookings
  FOR EACH ROW EXECUTE FUNCTION calops_cache_host();

CREATE FUNCTION bookings_deleted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  DELETE FROM occupancy WHERE booking_id = OLD.id;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_deleted AFTER DELETE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_deleted();
CREATE FUNCTION bookings_truncated() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  DELETE FROM occupancy WHERE booking_id IS NOT NULL;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_truncated AFTER TRUNCATE ON bookings
  FOR EACH STATEMENT EXECUTE FUNCTION bookings_truncated();
"#;

/// A changed or deleted API key (revoked, its expiry moved, its organization deleted) sends
/// `NOTIFY calops_cache, 'k'` at commit: every replica drops its cache of verified keys, so
/// the key stops working at once instead of when its cache entry ages out.
const V7: &str = r#"
CREATE FUNCTION calops_cache_keys() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_notify('calops_cache', 'k');
  RETURN NULL;
END $f$;
CREATE TRIGGER api_keys_changed AFTER UPDATE OR DELETE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_keys();
CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_keys();
"#;

/// What Cal.com's API v2 shapes carry and calops keeps (see `api::versions`):
/// - users get a `username` (unique per organization, case-insensitively), to book and list
///   slots by `eventTypeSlug` + `username`; existing users get one from their e-mail address;
/// - an API key may belong to a user (`user_id`): calls that take a `userId` default to it and
///   lists show that user's resources only;
/// - event types get `offset_start` (minutes every slot moves later, Cal.com's `offsetStart`),
///   the lengths a booker may pick (`length_options`), their `locations` and `disable_guests`;
/// - bookings keep their `location`, the booker's `booking_fields_responses` and the
///   `rescheduling_reason` of the reschedule that made them.
const V8: &str = r#"
ALTER TABLE users ADD COLUMN username text;
UPDATE users u SET username = v.name FROM (
  SELECT id, CASE WHEN row_number() OVER (PARTITION BY org_id, base ORDER BY id) = 1 THEN base
                  ELSE base || '-' || id END AS name
  FROM (SELECT id, org_id,
          COALESCE(NULLIF(trim(BOTH '-' FROM regexp_replace(lower(split_part(email, '@', 1)),
                                                   '[^a-z0-9]+', '-', 'g')), ''), 'user') AS base
        FROM users) b) v
WHERE u.id = v.id;
ALTER TABLE users ALTER COLUMN username SET NOT NULL;
CREATE UNIQUE INDEX users_org_username ON users (org_id, lower(username));

ALTER TABLE api_keys ADD COLUMN user_id bigint REFERENCES users(id) ON DELETE CASCADE;

ALTER TABLE event_types
  ADD COLUMN offset_start   integer NOT NULL DEFAULT 0 CHECK (offset_start BETWEEN 0 AND 1440),
  ADD COLUMN length_options integer[],
  ADD COLUMN locations      jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN disable_guests boolean NOT NULL DEFAULT false;

ALTER TABLE bookings
  ADD COLUMN location                 text,
  ADD COLUMN booking_fields_responses jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN rescheduling_reason      text;
CREATE INDEX bookings_org_created ON bookings (org_id, created_at);
"#;

/// Booking pages (`service::web`): every host gets a URL slug, unique in its organization
/// (derived from the name at insert, `-<id>` appended when the name's slug is taken), and an
/// organization an allow-list of origins that may embed its pages (`NULL`: inherit the
/// parent's; empty: none).
const V9: &str = r#"
CREATE FUNCTION calops_slugify(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $f$
  SELECT COALESCE(NULLIF(trim(both '-' FROM regexp_replace(lower(t), '[^a-z0-9]+', '-', 'g')), ''),
                  'host')
$f$;

ALTER TABLE users ADD COLUMN slug text;
UPDATE users SET slug = calops_slugify(name);
UPDATE users u SET slug = u.slug || '-' || u.id
  WHERE EXISTS (SELECT 1 FROM users o WHERE o.org_id = u.org_id AND o.slug = u.slug AND o.id < u.id);
ALTER TABLE users ALTER COLUMN slug SET NOT NULL;
CREATE UNIQUE INDEX users_org_slug ON users (org_id, slug);

CREATE FUNCTION users_set_slug() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NEW.slug IS NULL THEN
    NEW.slug := calops_slugify(NEW.name);
    IF EXISTS (SELECT 1 FROM users WHERE org_id = NEW.org_id AND slug = NEW.slug) THEN
      NEW.slug := NEW.slug || '-' || NEW.id;
    END IF;
  END IF;
  RETURN NEW;
END $f$;
CREATE TRIGGER users_slug BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION users_set_slug();

ALTER TABLE organizations ADD COLUMN embed_origins text[];
"#;

/// The slot cache also keeps what booking pages' paths name (`store::cache::Booker`): the
/// organization chain with its slugs and branding. Changes to organizations send `c`, like
/// event types, schedules and users.
const V12: &str = r#"
CREATE TRIGGER organizations_cache AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organizations
  FOR EACH STATEMENT EXECUTE FUNCTION calops_cache_config();
"#;

/// The mail workers claim the earliest due message (`store::mail::CLAIM`): an index in exactly
/// that order (`next_attempt_at, id`) among pending rows lets the claim read its first entries and
/// stop. With the old index on `next_attempt_at` alone, and the claim's check that the booking
/// still exists, the planner could sort (and join) the whole due backlog on every claim, which
/// grew with the backlog: 41 ms and 27,000 buffers a claim with 10,000 messages waiting.
///
/// Each booking writes three outbox rows in its own transaction, so every index of the outbox
/// is paid three times per booking: two go. The cancel trigger finds a booking's pending
/// reminders by the first column of the unique key (`booking_uid`) instead of an index of its
/// own, and the row `uid` (random, the Message-ID's left part, never looked up) needs no unique
/// index. Together about 30 µs of database CPU a booking (of 90 µs the rows cost).
const V13: &str = r#"
CREATE INDEX mail_outbox_next ON mail_outbox (next_attempt_at, id) WHERE status = 'pending';
DROP INDEX mail_outbox_due;
DROP INDEX mail_outbox_booking;
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_uid_key;

CREATE OR REPLACE FUNCTION bookings_mail_cancelled() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE mail_outbox SET status = 'skipped', last_error = 'the booking was cancelled'
    WHERE booking_uid = NEW.uid AND kind = 'reminder' AND status = 'pending';
  IF NEW.rescheduled_to_uid IS NULL AND (SELECT enabled FROM mail_settings) THEN
    INSERT INTO mail_outbox (org_id, booking_id, booking_uid, kind, recipient, role, lang,
      ical_sequence)
    SELECT NEW.org_id, NEW.id, NEW.uid, 'cancelled', r.recipient, r.role,
      NEW.attendee->>'language', NEW.ical_sequence
    FROM event_types e JOIN users u ON u.id = NEW.host_user_id
    CROSS JOIN LATERAL calops_mail_recipients(NEW.attendee, NEW.guests, u.email) r
    WHERE e.id = NEW.event_type_id AND e.mail_enabled
    ON CONFLICT DO NOTHING;
    PERFORM pg_notify('calops_mail', '');
  END IF;
  RETURN NULL;
END $f$;
"#;

/// A booking's transaction writes one `mail_events` row per change (created, rescheduled,
/// cancelled) instead of every message's outbox row: the workers expand each event into the
/// per-recipient messages and reminders (`store::mail::EXPAND`) in one transaction that also
/// deletes it, so each event is expanded once and the unique key still makes each message exist
/// once. The booking pays for one narrow insert (no joins to its event type and host, no
/// outbox indexes times three); the expansion happens later, in batches, off the booking path.
///
/// A cancellation still skips the booking's pending reminders at once, in its own transaction;
/// an event expanded after its booking was cancelled gets no reminders (the expansion reads the
/// booking `FOR SHARE`, so a cancellation waits for an expansion in flight, or the other way
/// round, and the later one sees the earlier one's rows).
const V14: &str = r#"
CREATE TABLE mail_events (
  id            bigserial PRIMARY KEY,
  booking_id    bigint NOT NULL,
  kind          text NOT NULL CHECK (kind IN ('created', 'rescheduled', 'cancelled')),
  ical_sequence integer NOT NULL,  -- the calendar's SEQUENCE when it happened
  at            timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION bookings_mail_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NOT (SELECT enabled FROM mail_settings) THEN
    RETURN NULL;
  END IF;
  INSERT INTO mail_events (booking_id, kind, ical_sequence)
  SELECT n.id, CASE WHEN n.rescheduled_from_uid IS NULL THEN 'created' ELSE 'rescheduled' END,
    n.ical_sequence
  FROM new_rows n
  WHERE n.status = 'accepted';
  PERFORM pg_notify('calops_mail', '');
  RETURN NULL;
END $f$;

CREATE OR REPLACE FUNCTION bookings_mail_cancelled() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE mail_outbox SET status = 'skipped', last_error = 'the booking was cancelled'
    WHERE booking_uid = NEW.uid AND kind = 'reminder' AND status = 'pending';
  IF NEW.rescheduled_to_uid IS NULL AND (SELECT enabled FROM mail_settings) THEN
    INSERT INTO mail_events (booking_id, kind, ical_sequence)
      VALUES (NEW.id, 'cancelled', NEW.ical_sequence);
    PERFORM pg_notify('calops_mail', '');
  END IF;
  RETURN NULL;
END $f$;
"#;

/// E-mail (`service::mail`): an outbox row per message and recipient, written by triggers in
/// the transaction that writes the booking (every path that books, reschedules or cancels
/// goes through `INSERT INTO bookings` or the status update, so none can forget it), and only
/// while the service has a mail transport (`mail_settings.enabled`, set at start).
/// - a booking inserted (created, or the new booking of a reschedule): one `created` or
///   `rescheduled` message to the attendee, each guest and the host, plus one `reminder` row
///   per recipient and offset of the event type that is still in the future;
/// - a booking cancelled: its pending reminders are skipped (also when it was cancelled by a
///   reschedule: the new booking has its own, at its new time), and unless it was a
///   reschedule, one `cancelled` message per recipient.
///
/// The unique key (booking, kind, offset, recipient) makes each message exist once.
const V10: &str = r#"
ALTER TABLE event_types ADD COLUMN mail_enabled boolean NOT NULL DEFAULT true,
  ADD COLUMN mail_reminders integer[] NOT NULL DEFAULT '{}';
ALTER TABLE organizations ADD COLUMN mail_sender_name text, ADD COLUMN mail_reply_to text;

CREATE TABLE mail_settings (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  enabled  boolean NOT NULL DEFAULT false
);
INSERT INTO mail_settings (enabled) VALUES (false);

CREATE TABLE mail_outbox (
  id               bigserial PRIMARY KEY,
  uid              uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(), -- the Message-ID's left part
  org_id           bigint NOT NULL,
  booking_id       bigint NOT NULL,
  booking_uid      uuid NOT NULL,
  kind             text NOT NULL CHECK (kind IN ('created', 'rescheduled', 'cancelled', 'reminder')),
  reminder_minutes integer NOT NULL DEFAULT 0,
  recipient        text NOT NULL,
  role             text NOT NULL CHECK (role IN ('attendee', 'guest', 'host')),
  lang             text,
  ical_sequence    integer NOT NULL,
  -- pending: due at next_attempt_at (while an attempt is in flight, the end of its lease);
  -- sent; dead (refused, or out of attempts); skipped (a reminder of a cancelled booking).
  status           text NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'sent', 'dead', 'skipped')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  due_at           timestamptz NOT NULL DEFAULT now(),  -- when it was first due (for its age)
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz,
  UNIQUE (booking_uid, kind, reminder_minutes, recipient)
);
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX mail_outbox_booking ON mail_outbox (booking_id) WHERE status = 'pending';

-- The recipients of a booking: attendee, guests (lowercased, once each), host.
CREATE FUNCTION calops_mail_recipients(attendee jsonb, guests jsonb, host text)
RETURNS TABLE (recipient text, role text) LANGUAGE sql IMMUTABLE AS $f$
  SELECT DISTINCT ON (lower(x.r)) lower(x.r), x.role FROM (
    SELECT trim(attendee->>'email') AS r, 'attendee' AS role, 0 AS o
    UNION ALL
    SELECT trim(g), 'guest', 1 FROM jsonb_array_elements_text(
      CASE WHEN jsonb_typeof(guests) = 'array' THEN guests ELSE '[]'::jsonb END) g
    UNION ALL
    SELECT trim(host), 'host', 2) x
  WHERE COALESCE(x.r, '') <> ''
  ORDER BY lower(x.r), x.o
$f$;

CREATE FUNCTION bookings_mail_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF NOT (SELECT enabled FROM mail_settings) THEN
    RETURN NULL;
  END IF;
  INSERT INTO mail_outbox (org_id, booking_id, booking_uid, kind, reminder_minutes, recipient,
    role, lang, ical_sequence, next_attempt_at, due_at)
  SELECT n.org_id, n.id, n.uid, k.kind, k.minutes, r.recipient, r.role,
    n.attendee->>'language', n.ical_sequence, k.due, k.due
  FROM new_rows n
  JOIN event_types e ON e.id = n.event_type_id AND e.mail_enabled
  JOIN users u ON u.id = n.host_user_id
  CROSS JOIN LATERAL calops_mail_recipients(n.attendee, n.guests, u.email) r
  CROSS JOIN LATERAL (
    SELECT CASE WHEN n.rescheduled_from_uid IS NULL THEN 'created' ELSE 'rescheduled' END AS kind,
           0 AS minutes, now() AS due
    UNION ALL
    SELECT 'reminder', m, n.start_at - make_interval(mins => m)
    FROM unnest(e.mail_reminders) m
    WHERE n.start_at - make_interval(mins => m) > now()) k
  WHERE n.status = 'accepted'
  ON CONFLICT DO NOTHING;
  PERFORM pg_notify('calops_mail', '');
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_mail_inserted AFTER INSERT ON bookings REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bookings_mail_inserted();

CREATE FUNCTION bookings_mail_cancelled() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  UPDATE mail_outbox SET status = 'skipped', last_error = 'the booking was cancelled'
    WHERE booking_id = NEW.id AND kind = 'reminder' AND status = 'pending';
  IF NEW.rescheduled_to_uid IS NULL AND (SELECT enabled FROM mail_settings) THEN
    INSERT INTO mail_outbox (org_id, booking_id, booking_uid, kind, recipient, role, lang,
      ical_sequence)
    SELECT NEW.org_id, NEW.id, NEW.uid, 'cancelled', r.recipient, r.role,
      NEW.attendee->>'language', NEW.ical_sequence
    FROM event_types e JOIN users u ON u.id = NEW.host_user_id
    CROSS JOIN LATERAL calops_mail_recipients(NEW.attendee, NEW.guests, u.email) r
    WHERE e.id = NEW.event_type_id AND e.mail_enabled
    ON CONFLICT DO NOTHING;
    PERFORM pg_notify('calops_mail', '');
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_mail_cancelled AFTER UPDATE OF status ON bookings
  FOR EACH ROW WHEN (OLD.status = 'accepted' AND NEW.status = 'cancelled')
  EXECUTE FUNCTION bookings_mail_cancelled();
"#;

/// Connected (CalDAV) calendars. A connection is one account of one host (its password sealed
/// like webhook secrets); its calendars say which count for conflicts (`selected`) and which one
/// bookings are written to (`is_destination`, one per host). The sync keeps each selected
/// calendar's busy intervals over a window in `external_busy` (one row per interval, by the
/// object's URL so that sync-collection changes replace just that object's rows) and notifies
/// the slot cache. Write-back is an outbox like `ics_pending`: triggers record a pending write
/// per calendar `UID` in the booking's own transaction when its host has a destination calendar;
/// `caldav_events` remembers where each booking's event was written.
const V11: &str = r#"
CREATE TABLE calendar_connections (
  id              bigserial PRIMARY KEY,
  org_id          bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
  user_id         bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  server_url      text NOT NULL,
  home_url        text NOT NULL,
  username        text NOT NULL,
  password        bytea NOT NULL,    -- AES-256-GCM sealed when password_key_id is set
  password_key_id text,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calendar_connections_user ON calendar_connections (user_id);

CREATE TABLE connected_calendars (
  id             bigserial PRIMARY KEY,
  connection_id  bigint NOT NULL REFERENCES calendar_connections(id) ON DELETE CASCADE,
  user_id        bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  url            text NOT NULL,
  name           text NOT NULL,
  selected       boolean NOT NULL DEFAULT false,
  is_destination boolean NOT NULL DEFAULT false,
  sync_token     text,
  ctag           text,
  window_from    timestamptz,
  window_to      timestamptz,
  synced_at      timestamptz,
  failures       integer NOT NULL DEFAULT 0,
  last_error     text,
  due_at         timestamptz NOT NULL DEFAULT now(),
  UNIQUE (connection_id, url)
);
CREATE UNIQUE INDEX connected_calendars_destination ON connected_calendars (user_id)
  WHERE is_destination;
CREATE INDEX connected_calendars_due ON connected_calendars (due_at) WHERE selected;

CREATE TABLE external_busy (
  calendar_id  bigint NOT NULL REFERENCES connected_calendars(id) ON DELETE CASCADE,
  host_user_id bigint NOT NULL,
  href         text NOT NULL,
  start_at     timestamptz NOT NULL,
  end_at       timestamptz NOT NULL,
  CHECK (end_at > start_at)
);
CREATE INDEX external_busy_host ON external_busy (host_user_id, start_at);
CREATE INDEX external_busy_object ON external_busy (calendar_id, href);

CREATE TABLE caldav_events (
  ical_uid    uuid PRIMARY KEY,
  calendar_id bigint NOT NULL REFERENCES connected_calendars(id) ON DELETE CASCADE,
  url         text NOT NULL,
  etag        text
);

CREATE TABLE caldav_pending (
  ical_uid    uuid PRIMARY KEY,
  calendar_id bigint NOT NULL REFERENCES connected_calendars(id) ON DELETE CASCADE,
  version     bigint NOT NULL DEFAULT 1,
  attempts    integer NOT NULL DEFAULT 0,
  due_at      timestamptz NOT NULL DEFAULT now(),
  dead        boolean NOT NULL DEFAULT false,
  last_error  text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX caldav_pending_due ON caldav_pending (due_at) WHERE NOT dead;

-- New bookings of hosts with a destination calendar: once per statement (batches pay once).
CREATE FUNCTION bookings_caldav_inserted() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  INSERT INTO caldav_pending (ical_uid, calendar_id)
    SELECT DISTINCT ON (n.ical_uid) n.ical_uid, c.id
    FROM new_rows n JOIN connected_calendars c ON c.user_id = n.host_user_id AND c.is_destination
    ON CONFLICT (ical_uid) DO UPDATE
      SET version = caldav_pending.version + 1, attempts = 0, due_at = now(), last_error = NULL,
          dead = false;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_caldav_inserted AFTER INSERT ON bookings REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION bookings_caldav_inserted();

-- Cancels and moves: the calendar the event went to, else the host's destination. The old half
-- of a reschedule is left to the new booking (same UID), as for calendar files.
CREATE FUNCTION bookings_caldav_updated() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF (NEW.status = OLD.status AND NEW.start_at = OLD.start_at AND NEW.end_at = OLD.end_at)
     OR NEW.rescheduled_to_uid IS NOT NULL THEN
    RETURN NULL;
  END IF;
  INSERT INTO caldav_pending (ical_uid, calendar_id)
    SELECT NEW.ical_uid, COALESCE(
      (SELECT calendar_id FROM caldav_events WHERE ical_uid = NEW.ical_uid),
      (SELECT id FROM connected_calendars WHERE user_id = NEW.host_user_id AND is_destination))
    WHERE EXISTS (SELECT 1 FROM caldav_events WHERE ical_uid = NEW.ical_uid)
       OR EXISTS (SELECT 1 FROM connected_calendars WHERE user_id = NEW.host_user_id AND is_destination)
    ON CONFLICT (ical_uid) DO UPDATE
      SET version = caldav_pending.version + 1, attempts = 0, due_at = now(), last_error = NULL,
          dead = false;
  RETURN NULL;
END $f$;
CREATE TRIGGER bookings_caldav_updated AFTER UPDATE ON bookings
  FOR EACH ROW EXECUTE FUNCTION bookings_caldav_updated();
"#;

/// Apply every pending migration. Holds a session advisory lock for the duration, so replicas
/// that start together wait for each other instead of racing.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await?;
    let result = apply(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version    integer PRIMARY KEY,
               name       text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let done: Vec<i32> = client
        .query("SELECT version FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut applied = Vec::new();
    for (version, name, sql) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .await?;
        tx.commit().await?;
        applied.push(*version);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend() {
        assert_eq!(MIGRATIONS[0].0, 1);
        for w in MIGRATIONS.windows(2) {
            assert!(w[0].0 < w[1].0, "{} then {}", w[0].0, w[1].0);
        }
    }
}
