-- Erasure by crypto-shredding (issue 21): each customer's personal data in events is
-- sealed (AES-GCM) under a data key of their own; the key is kept wrapped by the
-- master key (CASEDESK_MASTER_KEY, never in the database). Erasure sets `wrapped` to
-- NULL: the key is gone, and with it every sealed field. The row stays as the record
-- of when, by whom and why. A customer has at most one live key; data written after
-- an erasure gets a new one.
CREATE TABLE IF NOT EXISTS customer_keys (
    key_id uuid PRIMARY KEY,
    customer_id text NOT NULL,
    wrapped bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    erased_by text,
    erasure_reason text
);
CREATE UNIQUE INDEX IF NOT EXISTS customer_keys_live_idx ON customer_keys (customer_id) WHERE erased_at IS NULL;
CREATE INDEX IF NOT EXISTS customer_keys_customer_idx ON customer_keys (customer_id);

-- Whose cases are whose, written when a case's first personal data is sealed (not a
-- read model: erasure must find every case at once, whatever a projection's lag).
CREATE TABLE IF NOT EXISTS customer_cases (
    case_id uuid PRIMARY KEY,
    customer_id text NOT NULL
);
CREATE INDEX IF NOT EXISTS customer_cases_customer_idx ON customer_cases (customer_id);

-- The one-time sealing of personal data stored before keys existed (`casedesk
-- seal-stored`): the only rewrite of stored events there is. Each rewritten event is
-- recorded with its chain hash before and after, and the digest of its skeleton (the
-- event with its personal fields blanked) taken before: `audit verify` recomputes the
-- skeleton of the stored event and proves nothing but personal fields changed.
CREATE TABLE IF NOT EXISTS sealing_epochs (
    epoch integer PRIMARY KEY,
    sealed_at timestamptz NOT NULL,
    events bigint NOT NULL,
    streams bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS sealing_epoch_events (
    epoch integer NOT NULL REFERENCES sealing_epochs (epoch),
    originator_id uuid NOT NULL,
    originator_version bigint NOT NULL,
    position bigint NOT NULL,
    old_hash bytea NOT NULL,
    new_hash bytea NOT NULL,
    old_state_digest bytea NOT NULL,  -- SHA-256 of the state before: the whole-log seal's input
    skeleton bytea NOT NULL,
    PRIMARY KEY (originator_id, originator_version, epoch)
);

-- Retention (`casedesk erase --resolved-before`) runs from when a case was last resolved.
-- Rows folded before this are filled by the next rebuild; until then they are not picked.
ALTER TABLE case_customers ADD COLUMN IF NOT EXISTS resolved_at timestamptz;
