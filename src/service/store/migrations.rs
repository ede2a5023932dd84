//! Embedded schema migrations, applied in order under a PostgreSQL advisory lock so that
//! several replicas starting together apply each one exactly once.

use tokio_postgres::Client;

/// `pg_advisory_lock` key: "calops" in ASCII, so it is recognisable in `pg_locks`.
pub const LOCK_KEY: i64 = 0x63_61_6c_6f_70_73;

/// (version, name, SQL). Append only: never edit a migration that has shipped.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[(1, "initial schema", V1)];

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
    fn versions_ascend_without_gaps() {
        for (i, (v, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i32 + 1);
        }
    }
}
