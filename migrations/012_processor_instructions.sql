-- Card-processor instructions (services/effects/processor_instructions.py): the
-- outbox between the case log and the processor. The follower inserts one row
-- per call an event causes, in the same transaction as its tracking position
-- (projection_tracking, 'processor_instructions'), so a crash loses or doubles
-- none; the sender posts `body` (the exact JSON, sent the same every time,
-- with its idempotency token) and marks the row once the answer is a case event.
-- Not a read model: `casedesk rebuild` leaves it alone.
CREATE TABLE IF NOT EXISTS processor_instructions (
    token text PRIMARY KEY,
    case_id uuid NOT NULL,
    card_id text NOT NULL,
    instruction text NOT NULL,
    path text NOT NULL,
    body bytea NOT NULL,
    position bigint NOT NULL,   -- notification id of the causing event
    seq smallint NOT NULL,      -- its n-th call (a replacement: new card 1, old card terminated 2)
    requested_at timestamptz NOT NULL,     -- the causing event's time
    recorded_at timestamptz NOT NULL DEFAULT now(),  -- when the follower picked it up
    state text NOT NULL DEFAULT 'pending',  -- pending, confirmed, rejected
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    answered_at timestamptz
);
CREATE INDEX IF NOT EXISTS processor_instructions_pending_idx
    ON processor_instructions (case_id, position, seq) WHERE state = 'pending';
