-- Four-eyes approvals (issue 19): every waiver or credit above CASEDESK_APPROVAL_LIMIT that waited
-- for a supervisor, one row each, owned by projections/approvals.py and written in the case_files
-- projection's batches (as case_clocks is). GET /v1/approvals lists them; approve/reject find the case
-- of an approval id here; the expiry sweep finds the pending ones past expires_at.
CREATE TABLE IF NOT EXISTS case_approvals (
    approval_id uuid PRIMARY KEY,
    case_id uuid NOT NULL,
    kind text NOT NULL,                 -- liability_waiver, provisional_credit
    state text NOT NULL,                -- pending, approved, rejected, expired
    amount jsonb NOT NULL,              -- what it gives away (Money)
    approval_limit jsonb NOT NULL,      -- the limit for its currency it is above (Money)
    dispute_id uuid,
    command jsonb NOT NULL,             -- what the agent asked for, as asked
    requested_at timestamptz NOT NULL,
    requested_by jsonb NOT NULL,        -- {id, name, department}
    contact_id uuid,
    expires_at timestamptz NOT NULL,
    decided_at timestamptz,
    decided_by jsonb,
    decision_note text
);
CREATE INDEX IF NOT EXISTS case_approvals_pending_idx ON case_approvals (expires_at) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS case_approvals_state_idx ON case_approvals (state, requested_at);
