-- Read model: work queues. One row per (queue, case) while the case waits in
-- that queue; kept by the work_queues projection from each case's view.
CREATE TABLE IF NOT EXISTS queue_items (
    queue text NOT NULL,
    case_id uuid NOT NULL,
    priority smallint NOT NULL,
    reason text NOT NULL,
    due_at timestamptz,
    enqueued_at timestamptz NOT NULL,
    amount_at_risk jsonb,
    PRIMARY KEY (queue, case_id)
);
CREATE INDEX IF NOT EXISTS queue_items_order_idx
    ON queue_items (queue, priority, due_at NULLS LAST, enqueued_at, case_id);
CREATE INDEX IF NOT EXISTS queue_items_case_idx ON queue_items (case_id);

-- Claims and resolutions, counted per queue and hour (the supervisor dashboard).
CREATE TABLE IF NOT EXISTS queue_activity (
    queue text NOT NULL,
    hour timestamptz NOT NULL,
    claims integer NOT NULL DEFAULT 0,
    resolutions integer NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, hour)
);

-- Not a read model: a short hold an agent's claim puts on a case while its
-- CaseAssigned is written, so 50 agents claiming at once never pick the same case.
CREATE TABLE IF NOT EXISTS claim_holds (
    case_id uuid PRIMARY KEY,
    agent_id text NOT NULL,
    until timestamptz NOT NULL
);

-- Read model: who the customer of each case is (by keyed digests), for lookup.
CREATE TABLE IF NOT EXISTS case_customers (
    case_id uuid PRIMARY KEY,
    customer_id text NOT NULL,
    name_masked text NOT NULL,
    name_key text NOT NULL,
    phone_key text NOT NULL,
    last4s text[] NOT NULL,
    reason text NOT NULL,
    opened_at timestamptz NOT NULL,
    status text NOT NULL
);
CREATE INDEX IF NOT EXISTS case_customers_phone_idx ON case_customers (phone_key);
CREATE INDEX IF NOT EXISTS case_customers_name_idx ON case_customers (name_key);

-- Read model: every outbound or callback attempt, for the returning caller.
CREATE TABLE IF NOT EXISTS outbound_attempts (
    contact_id uuid PRIMARY KEY,
    case_id uuid NOT NULL,
    at timestamptz NOT NULL,
    phone_key text NOT NULL,
    department text NOT NULL,
    purpose text,
    agent_name text NOT NULL
);
CREATE INDEX IF NOT EXISTS outbound_attempts_phone_idx ON outbound_attempts (phone_key, at DESC);

-- The dashboard lists agents holding cases by name.
ALTER TABLE case_files ADD COLUMN IF NOT EXISTS assignee_name text;
