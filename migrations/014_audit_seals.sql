-- The keyed seal over the whole log (services/audit_seal.py): one row per
-- stored event, in notification order, each an HMAC with a key that is not in
-- the database over the previous seal and the event (position, stream,
-- version, topic, state). A writer who edits, deletes or reorders events, even
-- recomputing case_event_hashes, cannot recompute these; the signed heads the
-- sealer also exports outside the database catch a deleted tail with its seals.
CREATE TABLE IF NOT EXISTS audit_seals (
    notification_id bigint PRIMARY KEY,
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    -- The position sealed just before (0 for the first): names a deleted event exactly.
    previous_position bigint NOT NULL,
    seal bytea NOT NULL
);
