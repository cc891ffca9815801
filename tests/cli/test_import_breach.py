"""`casedesk import-breach`: a breach's list from the shell, the same intake as the HTTP route."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from casedesk.services.breaches import Breaches
from casedesk.services.personal_data import PersonalData
from casedesk.services.store.event_mapper import CaseEventMapper
from casedesk.services.store.event_store import EventStore
from casedesk.services.tokens import Principal
from tests.api.conftest import with_schema
from tests.cli.test_commands import run


async def test_import_breach_opens_the_cases_reports_rejects_and_is_idempotent(
        pool, database_dsn: str, shared_schema: str, tmp_path: Path) -> None:
    store = EventStore(pool)
    supervisor = Principal(sub="sup-1", name="Y. Kato", role="supervisor", departments=("fraud",), exp=2**31)
    breaches = Breaches(store, CaseEventMapper(), PersonalData("a key for the test"))
    breach, _ = await breaches.record(
        supervisor, merchant="ShopNet", window_start=datetime(2024, 1, 1, tzinfo=UTC),
        window_end=datetime(2024, 3, 1, tzinfo=UTC), data_exposed=("card_number",), reissue_fee_bearer="merchant")
    await store.close()
    tag = uuid.uuid4().hex[:8]
    listing = tmp_path / "affected.csv"
    listing.write_text("customer_id,name,registered_phone,card_id,last4,network\n"
                       + "".join(f"c{n},Name {n},+81 90 1111 000{n},card-{tag}-{n},000{n},visa\n" for n in range(1, 4))
                       + "c9,Name 9,+81 90 1111 0009,card-x,12,visa\n")
    env = {"DATABASE_URL": with_schema(database_dsn, shared_schema), "PATH": "/usr/bin:/bin",
           "CASEDESK_PII_KEY": "test-pii-key", "CASEDESK_DATA_DIR": str(tmp_path / "data")}

    first = run(["import-breach", str(listing), "--breach", str(breach.originator_id), "--by", "ops-1"], env)
    assert first.returncode == 1, first.stderr  # a line was rejected
    assert "3 accepted: 3 cases opened, 0 already known; 1 lines rejected" in first.stdout
    assert "line 5: last4 must be four digits" in first.stdout
    ids = [uuid.uuid5(breach.originator_id, f"card-{tag}-{n}") for n in range(1, 4)]
    actors = await pool.fetch("SELECT DISTINCT state FROM case_events WHERE originator_id = ANY($1::uuid[])", ids)
    assert len(actors) == 6 and all(b'"ops-1"' in bytes(r[0]) for r in actors)

    again = run(["import-breach", str(listing), "--breach", str(breach.originator_id)], env)
    assert "3 accepted: 0 cases opened, 3 already known" in again.stdout

    unknown = run(["import-breach", str(listing), "--breach", str(uuid.uuid4())], env)
    assert unknown.returncode == 2 and "no breach" in unknown.stderr
