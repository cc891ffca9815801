-- Calls a customer can verify (issue 20).

-- Read model: what kind of call each outbound attempt was, in words the IVR may say
-- (never the agent's free-text purpose). Rows folded before this migration get theirs here.
ALTER TABLE outbound_attempts ADD COLUMN IF NOT EXISTS purpose_category text;
UPDATE outbound_attempts o SET purpose_category = CASE
        WHEN c.reason = 'lost_or_stolen' THEN 'lost_or_stolen_card'
        WHEN c.reason = 'data_breach' THEN 'card_replacement'
        ELSE 'card_security' END
    FROM case_customers c WHERE c.case_id = o.case_id AND o.purpose_category IS NULL;
UPDATE outbound_attempts SET purpose_category = 'card_security' WHERE purpose_category IS NULL;
ALTER TABLE outbound_attempts ALTER COLUMN purpose_category SET NOT NULL;
ALTER TABLE outbound_attempts ALTER COLUMN purpose_category SET DEFAULT 'card_security';

-- Not a read model: the reference each outbound or callback contact was given, as a keyed
-- digest (never the six digits). The code is the key: a code is taken again only once the
-- call that had it is over 14 days old, so no two calls of the last 14 days share one.
CREATE TABLE IF NOT EXISTS call_codes (
    code_key text PRIMARY KEY,
    contact_id uuid NOT NULL UNIQUE,
    case_id uuid NOT NULL,
    issued_at timestamptz NOT NULL
);

-- Not a read model: the call verifications asked for each number in the last hour
-- (the rate limit, and wrong references counted), kept here so it holds across processes.
CREATE TABLE IF NOT EXISTS call_verification_requests (
    subject text NOT NULL,
    at timestamptz NOT NULL,
    wrong_code boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS call_verification_requests_subject_idx ON call_verification_requests (subject, at);
CREATE INDEX IF NOT EXISTS call_verification_requests_at_idx ON call_verification_requests (at);

-- Not a read model: a number whose references stop matching for an hour (5 wrong ones).
CREATE TABLE IF NOT EXISTS call_code_locks (
    subject text PRIMARY KEY,
    locked_until timestamptz NOT NULL
);

-- Not a read model: requests per IVR token and minute (the per-token rate), counted in 16 rows
-- (`shard`) so concurrent checks of one token do not queue on one row lock.
CREATE TABLE IF NOT EXISTS call_verification_rates (
    subject text NOT NULL,
    minute timestamptz NOT NULL,
    shard smallint NOT NULL,
    requests integer NOT NULL,
    PRIMARY KEY (subject, minute, shard)
);

-- One call check in one round trip (the IVR's answer has a 10 ms budget at 200 checks a second):
-- count the token's minute and the number's hour (refusing past either, with the seconds to wait),
-- find our calls to the number in the last 14 days and the call the reference was given on, apply
-- the lock after 5 wrong references, and count this check. The per-number lock makes concurrent
-- checks of one number take turns, so no two both see "4 so far".
CREATE OR REPLACE FUNCTION casedesk_check_call(
    p_number text, p_token text, p_keys text[], p_code_key text, p_at timestamptz,
    p_token_per_minute integer, p_per_hour integer, p_wrong_before_lock integer, p_told integer,
    OUT refused text, OUT retry_after integer, OUT code_check text,
    OUT call_cases uuid[], OUT call_contacts uuid[], OUT call_ats timestamptz[],
    OUT call_departments text[], OUT call_categories text[],
    OUT fit_case uuid, OUT fit_contact uuid)
LANGUAGE plpgsql AS $$
DECLARE
    v_minute timestamptz := date_trunc('minute', p_at);
    v_asked integer;
    v_count integer;
    v_oldest timestamptz;
    v_wrong integer;
    v_locked timestamptz;
BEGIN
    DELETE FROM call_verification_rates r WHERE r.subject = p_token AND r.minute < v_minute;
    INSERT INTO call_verification_rates AS r (subject, minute, shard, requests)
        VALUES (p_token, v_minute, floor(random() * 16), 1)
        ON CONFLICT (subject, minute, shard) DO UPDATE SET requests = r.requests + 1;
    SELECT sum(r.requests) INTO v_asked FROM call_verification_rates r WHERE r.subject = p_token AND r.minute = v_minute;
    IF v_asked > p_token_per_minute THEN
        refused := 'this IVR token';
        retry_after := ceil(extract(epoch FROM v_minute + interval '1 minute' - p_at));
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(20, hashtext(p_number));
    -- This number's checks older than the hour go, and a few of any other number's, so none pile up.
    DELETE FROM call_verification_requests q
        WHERE (q.subject = p_number AND q.at <= p_at - interval '1 hour')
           OR q.ctid = ANY(ARRAY(SELECT s.ctid FROM call_verification_requests s
                                 WHERE s.at <= p_at - interval '1 hour' LIMIT 20));
    SELECT count(*), min(q.at), count(*) FILTER (WHERE q.wrong_code) INTO v_count, v_oldest, v_wrong
        FROM call_verification_requests q WHERE q.subject = p_number;
    IF v_count >= p_per_hour THEN
        refused := 'this number';
        retry_after := ceil(extract(epoch FROM v_oldest + interval '1 hour' - p_at));
        RETURN;
    END IF;
    SELECT array_agg(o.case_id ORDER BY o.at DESC), array_agg(o.contact_id ORDER BY o.at DESC),
           array_agg(o.at ORDER BY o.at DESC), array_agg(o.department ORDER BY o.at DESC),
           array_agg(o.purpose_category ORDER BY o.at DESC)
        INTO call_cases, call_contacts, call_ats, call_departments, call_categories
        FROM (SELECT * FROM outbound_attempts a WHERE a.phone_key = ANY(p_keys) AND a.at > p_at - interval '14 days'
              ORDER BY a.at DESC LIMIT p_told) o;
    IF p_code_key IS NULL THEN
        code_check := 'not_given';
    ELSE
        SELECT o.case_id, o.contact_id INTO fit_case, fit_contact
            FROM call_codes c JOIN outbound_attempts o ON o.contact_id = c.contact_id
            WHERE c.code_key = p_code_key AND o.phone_key = ANY(p_keys) AND o.at > p_at - interval '14 days';
        SELECT l.locked_until INTO v_locked FROM call_code_locks l WHERE l.subject = p_number;
        IF v_locked > p_at THEN
            code_check := 'locked';
        ELSIF fit_contact IS NOT NULL THEN
            code_check := 'matched';
        ELSE
            code_check := 'wrong';
            IF v_wrong + 1 >= p_wrong_before_lock THEN
                INSERT INTO call_code_locks AS l (subject, locked_until) VALUES (p_number, p_at + interval '1 hour')
                    ON CONFLICT (subject) DO UPDATE SET locked_until = excluded.locked_until;
            END IF;
        END IF;
    END IF;
    INSERT INTO call_verification_requests (subject, at, wrong_code) VALUES (p_number, p_at, code_check = 'wrong');
END
$$;
