-- The case state gained `open_escalations` (an escalation now ends with
-- EscalationConcluded). A snapshot taken before has it empty, so a case
-- escalated before this version could never conclude its escalation. Snapshots
-- are a cache of the replay, never the truth: forget those of every case ever
-- escalated; the next load folds the stream and the next hundredth event
-- snapshots it again.
DELETE FROM case_snapshots s
WHERE EXISTS (
    SELECT 1 FROM case_events e
    WHERE e.originator_id = s.originator_id AND e.topic = 'casedesk.domain.events:CaseEscalated'
);
