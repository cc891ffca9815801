-- Webhook subscriptions (CONTRACT.md "Effects"): each follows the event log from a
-- position of its own, moved only once every event up to it was delivered (a 2xx).
-- The signing secret is kept sealed (AES-GCM, key derived from CASEDESK_PII_KEY).
CREATE TABLE webhooks (
    webhook_id       uuid PRIMARY KEY,
    url              text NOT NULL,
    event_types      text[] NOT NULL,
    description      text,
    secret_sealed    bytea NOT NULL,
    state            text NOT NULL DEFAULT 'active'
                     CHECK (state IN ('active', 'paused', 'failing', 'disabled')),
    position         bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text NOT NULL,
    last_delivery_at timestamptz,
    last_error       text,
    -- When the event at the head of the subscription first failed: the retry window
    -- (CASEDESK_WEBHOOK_RETRY_HOURS) counts from here, across sender restarts.
    failing_since    timestamptz,
    -- Bumped by every admin change (pause, resume, replay): the sender restarts the
    -- subscription's follower from its row, e.g. out of a failing one's hourly wait.
    revision         bigint NOT NULL DEFAULT 0
);

-- Every attempt to deliver one event to one subscription (kept a day: "recent deliveries").
CREATE TABLE webhook_attempts (
    attempt_id      bigserial PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks ON DELETE CASCADE,
    event_id        uuid NOT NULL,
    position        bigint NOT NULL,
    attempt         integer NOT NULL,
    status          integer NOT NULL,  -- the receiver's HTTP status; 0: no answer (timeout, refused)
    error           text,
    at              timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz
);
CREATE INDEX webhook_attempts_newest ON webhook_attempts (webhook_id, attempt_id DESC);
CREATE INDEX webhook_attempts_at ON webhook_attempts (at);
