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

-- Not a read model: requests per IVR token and minute (the per-token rate).
CREATE TABLE IF NOT EXISTS call_verification_rates (
    subject text NOT NULL,
    minute timestamptz NOT NULL,
    requests integer NOT NULL,
    PRIMARY KEY (subject, minute)
);
