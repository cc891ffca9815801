"""The event store and what it stands on: the database, its migrations, the
event mapper, snapshots, idempotency keys and the hash chain with its seals.

Every table the write side owns (`case_events`, `case_event_hashes`,
`case_snapshots`, `idempotency_keys`, `audit_seals`) is named in SQL here.
"""
