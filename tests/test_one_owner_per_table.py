"""One owner per table (issue 16): SQL naming a table lives in that table's owner module.

A change to a table then means reading one module. A statement that spans
tables (a claim's one round trip, a heartbeat's access check) is composed from
parts each spelled by its table's owner (`*_sql` functions, `EVENT_ROWS`).
Tables are found from the migrations; SQL is found as a table name after
FROM, JOIN, INTO, UPDATE, TABLE, TRUNCATE, LIKE or COPY, or as the table of
asyncpg's copy_records_to_table. `migrations/` itself (the schema) is exempt.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("services", "projections", "domain")

OWNERS: dict[str, str] = {
    "access_log": "services/access_log.py",
    "audit_seals": "services/store/audit_seal.py",
    "call_codes": "services/call_codes.py",
    "call_code_locks": "services/call_codes.py",
    "call_verification_rates": "services/call_codes.py",
    "call_verification_requests": "services/call_codes.py",
    "case_approvals": "projections/approvals.py",
    "case_clocks": "projections/deadline_clocks.py",
    "case_customers": "projections/customer_lookup.py",
    "case_event_hashes": "services/store/event_store.py",
    "case_events": "services/store/event_store.py",
    "case_files": "projections/timeline/rows.py",
    "case_presence": "services/presence.py",
    "case_snapshots": "services/store/snapshots.py",
    "claim_holds": "projections/work_queues.py",
    "customer_cases": "services/privacy/customer_keys.py",
    "customer_keys": "services/privacy/customer_keys.py",
    "idempotency_keys": "services/store/idempotency_keys.py",
    "merchant_disputes": "projections/merchant_intelligence.py",
    "merchant_flags": "projections/merchant_intelligence.py",
    "outbound_attempts": "projections/customer_lookup.py",
    "processor_instructions": "services/effects/instruction_calls.py",
    "projection_tracking": "services/store/tracking.py",
    "projection_versions": "projections/served_versions.py",
    "queue_activity": "projections/work_queues.py",
    "sealing_epoch_events": "services/privacy/sealing_epoch.py",
    "sealing_epochs": "services/privacy/sealing_epoch.py",
    "queue_items": "projections/work_queues.py",
    "timeline_parts": "projections/timeline/rows.py",
    "webhook_attempts": "services/effects/webhook_subscriptions.py",
    "webhooks": "services/effects/webhook_subscriptions.py",
}


def _tables() -> set[str]:
    made = re.compile(r"CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_]+)", re.I)
    return {m.group(1).lower() for sql in (ROOT / "migrations").glob("*.sql") for m in made.finditer(sql.read_text())}


def _named_in_sql(tables: set[str]) -> set[tuple[str, str]]:
    names = "|".join(sorted(tables, key=len, reverse=True))
    sql = re.compile(rf"\b(?:FROM|JOIN|INTO|UPDATE|TABLE|TRUNCATE|LIKE|COPY)\s+(?:ONLY\s+)?"
                     rf"(?:[{{}}\w\"]+\.)?\"?({names})\b", re.I)
    copied = re.compile(rf"copy_(?:records_)?to_table\(\s*[\"']({names})[\"']")
    found = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            # Python's own `from x.webhooks import ...` is not SQL.
            text = re.sub(r"^\s*from\s+[\w.]+\s+import\b.*$", "", path.read_text(), flags=re.M)
            for match in (*sql.finditer(text), *copied.finditer(text)):
                found.add((str(path.relative_to(ROOT)), match.group(1).lower()))
    return found


def test_every_table_has_an_owner() -> None:
    assert _tables() - OWNERS.keys() == set(), "a new table: name its owner module in OWNERS"
    for table, module in OWNERS.items():
        assert (ROOT / module).is_file(), f"{table}'s owner {module} does not exist"


def test_only_a_tables_owner_names_it_in_sql() -> None:
    named = _named_in_sql(_tables())
    strangers = {(module, table) for module, table in named if OWNERS[table] != module}
    assert strangers == set(), ("SQL on a table outside its owner: call the owner instead, or, inside one"
                                " statement, compose the part its owner spells (e.g. timeline/rows.readable_sql)")


def test_the_http_layer_names_no_table() -> None:
    assert not any(module.startswith("services/http/") for module, _ in _named_in_sql(_tables()))


def test_the_check_sees_sql() -> None:
    # ...and only SQL: the module importing standardwebhooks.webhooks names no table.
    assert not any(module == "services/effects/webhook_sender.py" for module, _ in _named_in_sql(_tables()))
    # The finder must find what it is meant to: the event store's own read of its table.
    assert ("services/store/event_store.py", "case_events") in _named_in_sql(_tables())
    assert ("projections/deadline_clocks.py", "case_clocks") in _named_in_sql(_tables())
