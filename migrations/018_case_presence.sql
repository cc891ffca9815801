-- Who has a case open right now (issue 19): not a case event, not history, not in the hash chain.
--
-- UNLOGGED: a heartbeat every 15 s from every open case page is the busiest write casedesk has, and
-- none of it is worth a WAL record: a crash forgets who was looking, which every client re-tells
-- within 15 s. A table (not NOTIFY alone with each process's memory) so that any API process,
-- including one started a second ago, answers GET .../presence fully; NOTIFY on channel
-- `case_presence` (payload: the case id) only tells the processes' case streams that it changed.
-- Unlogged tables are not replicated: presence is read on the primary, never on a standby.
CREATE UNLOGGED TABLE IF NOT EXISTS case_presence (
    case_id uuid NOT NULL,
    agent_id text NOT NULL,
    name text NOT NULL,
    activity text NOT NULL CHECK (activity IN ('viewing', 'editing')),
    since timestamptz NOT NULL,    -- when this activity began (kept across heartbeats)
    seen_at timestamptz NOT NULL,  -- the last heartbeat; gone `expiry` seconds later
    PRIMARY KEY (case_id, agent_id)
);
CREATE INDEX IF NOT EXISTS case_presence_seen_at ON case_presence (seen_at);
