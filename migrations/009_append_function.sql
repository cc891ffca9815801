-- One append, one round trip: casedesk_append takes the lock that keeps the
-- notification order, inserts a batch of commands' events, extends each written
-- stream's hash chain (audit_chain.py), signals the tailing readers, and checks
-- that each command was written whole or not at all.
--
-- Before, the AppendWriter's transaction took five round trips (BEGIN, LOCK and
-- NOTIFY, INSERT, COMMIT, plus the idempotency keys), each a wake-up of the API
-- process and of its PostgreSQL backend; on a busy 2-core machine every wake-up
-- can wait for a core. Called outside a transaction block, this function's call
-- is the transaction: it commits when it returns.
--
-- `commands` numbers each event's command (0-based, as the caller batched them).
-- A command whose events conflict in part (some written, some not) is
-- half-written: the function then raises SQLSTATE CD001, which rolls the whole
-- batch back, with the numbers of every command not written whole in DETAIL, so
-- the caller redoes the batch without them. A version twice in the batch counts
-- as written for its first command only.
CREATE OR REPLACE FUNCTION casedesk_append(
    ids uuid[], versions bigint[], topics text[], states bytea[], commands integer[]
) RETURNS TABLE (w_id uuid, w_version bigint, w_notification bigint)
LANGUAGE plpgsql AS $$
DECLARE
    written_ids uuid[];
    written_versions bigint[];
    written_notifications bigint[];
    failed integer[];
    half integer[];
BEGIN
    LOCK TABLE case_events IN EXCLUSIVE MODE;
    PERFORM pg_notify('case_events', '');

    WITH RECURSIVE written AS (
        INSERT INTO case_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(ids, versions, topics, states) ON CONFLICT DO NOTHING
        RETURNING case_events.originator_id, case_events.originator_version, case_events.topic,
                  case_events.state, case_events.notification_id
    ), ranked AS (
        SELECT w.*, row_number() OVER (PARTITION BY w.originator_id ORDER BY w.originator_version) AS n
        FROM written w
    ), chain AS (
        SELECT r.originator_id, r.originator_version, r.n, sha256(
            coalesce((SELECT h.hash FROM case_event_hashes h WHERE h.originator_id = r.originator_id
                      AND h.originator_version < r.originator_version
                      ORDER BY h.originator_version DESC LIMIT 1), decode(repeat('00', 32), 'hex'))
            || convert_to(coalesce(r.topic, ''), 'UTF8') || coalesce(r.state, ''::bytea)
            || convert_to(r.originator_version::text, 'UTF8')) AS hash
        FROM ranked r WHERE r.n = 1
        UNION ALL
        SELECT r.originator_id, r.originator_version, r.n, sha256(
            c.hash || convert_to(coalesce(r.topic, ''), 'UTF8') || coalesce(r.state, ''::bytea)
            || convert_to(r.originator_version::text, 'UTF8'))
        FROM chain c JOIN ranked r ON r.originator_id = c.originator_id AND r.n = c.n + 1
    ), hashed AS (
        INSERT INTO case_event_hashes (originator_id, originator_version, hash)
        SELECT chain.originator_id, chain.originator_version, chain.hash FROM chain
        ON CONFLICT DO NOTHING  -- a hash left by a deleted event stays as evidence
    )
    SELECT coalesce(array_agg(w.originator_id ORDER BY w.notification_id), '{}'),
           coalesce(array_agg(w.originator_version ORDER BY w.notification_id), '{}'),
           coalesce(array_agg(w.notification_id ORDER BY w.notification_id), '{}')
    INTO written_ids, written_versions, written_notifications
    FROM written w;

    WITH wanted AS (
        SELECT i.id, i.v, i.c FROM unnest(ids, versions, commands) AS i(id, v, c)
    ), claimant AS (  -- a version twice in the batch belongs to its first command
        SELECT wanted.id, wanted.v, min(wanted.c) AS c FROM wanted GROUP BY wanted.id, wanted.v
    ), mine AS (
        SELECT claimant.c, count(*) AS n
        FROM claimant JOIN unnest(written_ids, written_versions) AS w(id, v)
            ON w.id = claimant.id AND w.v = claimant.v
        GROUP BY claimant.c
    ), per_command AS (
        SELECT wanted.c, count(*) AS n, count(DISTINCT (wanted.id, wanted.v)) AS distinct_n
        FROM wanted GROUP BY wanted.c
    )
    SELECT array_agg(p.c ORDER BY p.c),
           array_agg(p.c ORDER BY p.c) FILTER (WHERE coalesce(m.n, 0) > 0)
    INTO failed, half
    FROM per_command p LEFT JOIN mine m ON m.c = p.c
    WHERE coalesce(m.n, 0) <> p.n OR p.distinct_n <> p.n;

    IF half IS NOT NULL THEN
        RAISE EXCEPTION 'casedesk_append: % command(s) half-written', cardinality(half)
            USING ERRCODE = 'CD001', DETAIL = array_to_string(failed, ',');
    END IF;

    RETURN QUERY SELECT * FROM unnest(written_ids, written_versions, written_notifications);
END
$$;
