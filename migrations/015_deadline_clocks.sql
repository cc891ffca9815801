-- Deadline clocks (issue 18): the case view now carries `clocks`, its file column the
-- clock book they are derived from, and queue_items a `deadlines` row per case with a
-- running clock. Rows folded before this migration have none of them: the read model
-- is derived, so it is emptied and rebuilt from the events under the configured
-- CASEDESK_CLOCK_POLICY (the projection starts again from position 0 when it next runs).
TRUNCATE case_files, timeline_parts, queue_items, queue_activity, case_customers, outbound_attempts,
    merchant_flags, merchant_disputes;
DELETE FROM projection_tracking WHERE application_name = 'case_files';
