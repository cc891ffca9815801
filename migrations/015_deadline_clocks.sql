-- Deadline clocks (issue 18): the case view now carries `clocks`, its file column the
-- clock book they are derived from, and queue_items a `deadlines` row per case with a
-- running clock. Rows folded before this migration have none of them: the read model
-- is derived, so it is emptied and rebuilt from the events under the configured
-- CASEDESK_CLOCK_POLICY (the projection starts again from position 0 when it next runs).
TRUNCATE case_files, timeline_parts, queue_items, queue_activity, case_customers, outbound_attempts,
    merchant_flags, merchant_disputes;
DELETE FROM projection_tracking WHERE application_name = 'case_files';

-- Every clock of every case, one row each, for the dashboard's and /metrics' counts per rule
-- (clocks at risk and breached) without reading every case's view.
CREATE TABLE IF NOT EXISTS case_clocks (
    case_id uuid NOT NULL,
    n smallint NOT NULL,
    rule text NOT NULL,
    state text NOT NULL,
    due_at timestamptz NOT NULL,
    met_at timestamptz,
    PRIMARY KEY (case_id, n)
);
CREATE INDEX IF NOT EXISTS case_clocks_running_idx ON case_clocks (rule, due_at) WHERE state = 'running';
