-- Tamper evidence: a hash chain per stream, beside case_events (whose layout
-- stays the library's). hash_v = sha256(hash_{v-1} || topic || state || v as
-- text), hash_0 = 32 zero bytes; written by the event store in the statement
-- that inserts the events (services/event_store.py), checked by
-- services/audit_chain.py.
CREATE TABLE IF NOT EXISTS case_event_hashes (
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (originator_id, originator_version)
);

-- Chain the events stored before this migration. The lock keeps appenders
-- out until the backfill commits, so no stream is chained twice.
LOCK TABLE case_events IN EXCLUSIVE MODE;
DO $$
DECLARE
    r record;
    stream uuid;
    previous bytea;
BEGIN
    FOR r IN SELECT originator_id, originator_version, topic, state FROM case_events
             ORDER BY originator_id, originator_version LOOP
        IF stream IS DISTINCT FROM r.originator_id THEN
            stream := r.originator_id;
            previous := decode(repeat('00', 32), 'hex');
        END IF;
        previous := sha256(previous || convert_to(coalesce(r.topic, ''), 'UTF8')
                           || coalesce(r.state, ''::bytea) || convert_to(r.originator_version::text, 'UTF8'));
        INSERT INTO case_event_hashes VALUES (r.originator_id, r.originator_version, previous)
            ON CONFLICT DO NOTHING;
    END LOOP;
END $$;

-- Who looked at what, and why: every audit-history read and every response
-- that shows unmasked personal data (services/access_log.py). Append-only:
-- the owner cannot be denied UPDATE/DELETE by REVOKE, so triggers refuse them.
CREATE TABLE IF NOT EXISTS access_log (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    agent_id text NOT NULL,
    agent_name text NOT NULL,
    role text NOT NULL,
    case_id uuid,
    what text NOT NULL,
    why text NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_case_idx ON access_log (case_id, id DESC);

CREATE OR REPLACE FUNCTION access_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'access_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS access_log_no_change ON access_log;
CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_is_append_only();
DROP TRIGGER IF EXISTS access_log_no_truncate ON access_log;
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_is_append_only();
