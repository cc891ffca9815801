"""Every history read is logged with who read it and why, in a log nobody can rewrite."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from casedesk.services.access_log import record_access
from casedesk.services.tokens import Principal
from tests.audit.conftest import open_case_with_story


async def test_a_history_read_leaves_exactly_one_row_naming_the_reader(
    client, auth, own_pool: asyncpg.Pool
) -> None:
    case_id = await open_case_with_story(client, auth())
    reader = auth(role="auditor", sub="aud-1", name="E. Mori") | {"X-Access-Reason": "complaint #4411 review"}
    assert (await client.get(f"/v1/cases/{case_id}/history?version=3", headers=reader)).status == 200
    rows = await own_pool.fetch("SELECT agent_id, agent_name, role, what, why FROM access_log WHERE case_id = $1",
                                case_id)
    assert [tuple(r) for r in rows] == [("aud-1", "E. Mori", "auditor", "history version=3", "complaint #4411 review")]


async def test_a_read_without_a_reason_is_logged_as_not_given(client, auth, own_pool: asyncpg.Pool) -> None:
    case_id = await open_case_with_story(client, auth())
    assert (await client.get(f"/v1/cases/{case_id}/history", headers=auth(role="supervisor"))).status == 200
    assert await own_pool.fetchval("SELECT why FROM access_log WHERE case_id = $1", case_id) == "not given"


async def test_a_card_number_in_the_reason_is_redacted(client, auth, own_pool: asyncpg.Pool) -> None:
    case_id = await open_case_with_story(client, auth())
    headers = auth(role="auditor") | {"X-Access-Reason": "chargeback on 4111 1111 1111 1111"}
    assert (await client.get(f"/v1/cases/{case_id}/history", headers=headers)).status == 200
    why = await own_pool.fetchval("SELECT why FROM access_log WHERE case_id = $1", case_id)
    assert "4111 1111 1111 1111" not in why and why.endswith("1111]")


async def test_a_refused_or_failed_read_is_not_logged_as_a_view(client, auth, own_pool: asyncpg.Pool) -> None:
    case_id = await open_case_with_story(client, auth())
    assert (await client.get(f"/v1/cases/{case_id}/history", headers=auth())).status == 403
    assert (await client.get(f"/v1/cases/{case_id}/history?version=x", headers=auth(role="admin"))).status == 422
    assert await own_pool.fetchval("SELECT count(*) FROM access_log WHERE case_id = $1", case_id) == 0


async def test_the_access_log_lists_reads_newest_first_in_pages(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    for n in range(3):
        headers = auth(role="auditor", sub=f"aud-{n}") | {"X-Access-Reason": f"reason {n}"}
        assert (await client.get(f"/v1/cases/{case_id}/history", headers=headers)).status == 200
    r = await client.get(f"/v1/cases/{case_id}/access-log?limit=2", headers=auth(role="auditor"))
    page = await r.json()
    assert [i["agent_id"] for i in page["items"]] == ["aud-2", "aud-1"] and page["next_cursor"]
    r = await client.get(f"/v1/cases/{case_id}/access-log?limit=2&cursor={page['next_cursor']}",
                         headers=auth(role="admin"))
    last = await r.json()
    assert [(i["agent_id"], i["why"], i["what"]) for i in last["items"]] == [("aud-0", "reason 0", "history")]
    assert last["next_cursor"] is None


async def test_the_access_log_is_for_auditors_and_admins(client, auth) -> None:
    case_id = await open_case_with_story(client, auth())
    for role, status in (("agent", 403), ("supervisor", 403), ("auditor", 200), ("admin", 200)):
        assert (await client.get(f"/v1/cases/{case_id}/access-log", headers=auth(role=role))).status == status
    assert (await client.get(f"/v1/cases/{uuid.uuid4()}/access-log", headers=auth(role="auditor"))).status == 404
    r = await client.get(f"/v1/cases/{case_id}/access-log?cursor=bogus", headers=auth(role="auditor"))
    assert r.status == 422


@pytest.mark.parametrize("change", ["UPDATE access_log SET why = 'nothing to see'", "DELETE FROM access_log",
                                    "TRUNCATE access_log"])
async def test_the_access_log_cannot_be_changed(own_pool: asyncpg.Pool, change: str) -> None:
    reader = Principal(sub="aud-9", name="E. Mori", role="auditor", departments=(), exp=2**40)
    await record_access(own_pool, reader, uuid.uuid4(), "history", "spot check")
    with pytest.raises(asyncpg.PostgresError, match="append-only"):
        await own_pool.execute(change)
    assert await own_pool.fetchval("SELECT why FROM access_log") == "spot check"
