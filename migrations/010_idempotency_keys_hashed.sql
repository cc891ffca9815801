-- Idempotency-Keys are stored as keyed digests from now on (a client's key may
-- hold a card number, and PCI DSS 3.4 forbids keeping one in clear). The rows
-- written before kept the key as sent; they cannot be digested here (the key is
-- not in the database), so they go: a retry of a command sent before the
-- upgrade, with the same key, is then taken as new. Every process is stopped
-- for an upgrade, so no such retry is in flight.
DELETE FROM idempotency_keys;
