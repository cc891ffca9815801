-- A case's timeline entries in rows written once: each row holds the entries
-- one projection batch added to the case (from_version..to_version, the JSON of
-- each, comma-joined, as sent).
-- case_files.timeline held the whole timeline answer and was rewritten, whole,
-- every time a batch folded the case: a case with hundreds of notes wrote
-- tens of kilobytes per new note, and under load that write amplification
-- was what held projection lag up. Now a batch inserts only its new entries,
-- and case_files keeps the timeline's head (case id, version, pinned note and
-- the pinned entry); a read joins head and entries in one statement.
CREATE TABLE IF NOT EXISTS timeline_parts (
    case_id uuid NOT NULL,
    from_version bigint NOT NULL,
    to_version bigint NOT NULL,
    entries bytea NOT NULL,  -- TimelineEntry JSON objects, comma-joined
    PRIMARY KEY (case_id, from_version)
);
ALTER TABLE timeline_parts ALTER COLUMN entries SET STORAGE EXTERNAL;

ALTER TABLE case_files RENAME COLUMN timeline TO timeline_head;

-- Rows folded before this migration hold whole timelines and no pinned entry:
-- the read model is derived, so it is emptied and rebuilt from the events
-- (the projection starts again from position 0 when the server starts).
TRUNCATE case_files, queue_items, queue_activity, case_customers, outbound_attempts,
    merchant_flags, merchant_disputes;
DELETE FROM projection_tracking WHERE application_name = 'case_files';
