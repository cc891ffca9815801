-- Read model: flagged merchant descriptors and disputes per merchant, kept by
-- the case_files projection in log order (so priorities are reproducible).
CREATE TABLE IF NOT EXISTS merchant_flags (
    merchant_key text PRIMARY KEY,
    merchant text NOT NULL,
    reason text NOT NULL,
    flagged_at timestamptz NOT NULL,
    flagged_by text NOT NULL
);
CREATE TABLE IF NOT EXISTS merchant_disputes (
    dispute_id uuid PRIMARY KEY,
    case_id uuid NOT NULL,
    merchant_key text NOT NULL,
    merchant text NOT NULL,
    amount text NOT NULL,
    currency text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS merchant_disputes_merchant_idx ON merchant_disputes (merchant_key);
CREATE INDEX IF NOT EXISTS merchant_disputes_case_idx ON merchant_disputes (case_id);
