-- The event store, in the eventsourcing library's PostgreSQL layout, so the
-- library's own recorders (and tools built on them) read what casedesk writes.
CREATE TABLE IF NOT EXISTS case_events (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    PRIMARY KEY (originator_id, originator_version)
) WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
);
CREATE UNIQUE INDEX IF NOT EXISTS case_events_notification_id_idx
    ON case_events (notification_id ASC);

-- The composite type the library's recorder uses to insert a batch.
DO $$ BEGIN
    CREATE TYPE stored_event_uuid AS (
        originator_id uuid, originator_version bigint, topic text, state bytea);
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

-- Single-row tracking, as the library's PostgresTrackingRecorder keeps it: one
-- row per projection with the last notification id it has applied. The
-- '__migration__' row tells the library this table is already single-row.
CREATE TABLE IF NOT EXISTS projection_tracking (
    application_name text PRIMARY KEY,
    notification_id bigint
);
INSERT INTO projection_tracking VALUES ('__migration__', 1)
    ON CONFLICT (application_name) DO NOTHING;

-- Snapshots of long cases, in the library's aggregate-recorder layout.
CREATE TABLE IF NOT EXISTS case_snapshots (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    PRIMARY KEY (originator_id, originator_version)
);
