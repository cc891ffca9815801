"""Histories made in the worker process (CASEDESK_HISTORY=process) are the ones made in the API's own."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient

from casedesk.services.http.app import create_app
from casedesk.services.http.app_keys import CASE_READER, CUSTOMER_KEYS, HISTORY_PROCESS
from casedesk.services.settings import Settings
from tests.api.conftest import with_schema
from tests.audit.conftest import open_case_with_story
from tests.number_settings import check_number_setting


async def test_the_history_process_answers_byte_for_byte_what_the_api_would(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth) -> None:
    app = create_app(msgspec.structs.replace(settings, history="process"), dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    assert HISTORY_PROCESS in client.app
    case_id = await open_case_with_story(client, auth())
    auditor, reader, keys = auth(role="auditor"), client.app[CASE_READER], client.app[CUSTOMER_KEYS]
    for query, version in (("", None), ("?version=3", 3)):
        r = await client.get(f"/v1/cases/{case_id}/history{query}", headers=auditor)
        assert r.status == 200
        from_process = await r.read()
        answer = msgspec.json.decode(from_process)
        assert [e["version"] for e in answer["events"]] == list(range(1, (version or 7) + 1))
        made_here = await keys.open_json(await reader.history(case_id, version=version))
        if version is None:  # the whole case's clocks stand at "now": compare all but the state
            from_process, made_here = from_process.split(b',"state":')[0], made_here.split(b',"state":')[0]
        assert from_process == made_here
    # Its refusals come back as the API's: a version never written, an unknown case
    r = await client.get(f"/v1/cases/{case_id}/history?version=99", headers=auditor)
    assert r.status == 404 and (await r.json())["current_version"] == 7
    r = await client.get("/v1/cases/00000000-0000-4000-8000-000000000000/history", headers=auditor)
    assert r.status == 404
    # The worker goes with the server
    executor = client.app[HISTORY_PROCESS]._processes
    assert executor is not None
    workers = list(executor._processes.values())
    assert workers and all(w.is_alive() for w in workers)
    await client.close()
    async with asyncio.timeout(20):
        while any(w.is_alive() for w in workers):
            await asyncio.sleep(0.1)


async def test_no_history_process_is_started_until_a_history_is_asked_for(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth) -> None:
    app = create_app(msgspec.structs.replace(settings, history="process"), dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    await open_case_with_story(client, auth())
    assert client.app[HISTORY_PROCESS]._processes is None  # no child (nor resource tracker) for a desk with no auditor


async def test_the_history_process_shows_erasure_at_once_and_opens_each_token_once(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth) -> None:
    app = create_app(msgspec.structs.replace(settings, history="process"), dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    agent, auditor = auth(), auth(role="auditor")
    case_id = await open_case_with_story(client, agent)
    shaped = "pasted: {{cd1." + "A" * 22 + "." + "B" * 40 + "}} end"
    r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": shaped}, headers=agent)
    assert r.status == 201
    before = await (await client.get(f"/v1/cases/{case_id}/history", headers=auditor)).text()
    assert "customer asked for a callback after 17:00" in before  # opened in the process
    assert shaped.replace('"', '\\"') in before  # and not opened again here: the token-shaped text stays
    customer = msgspec.json.decode(before)["state"]["customer"]["customer_id"]
    r = await client.post(f"/v1/customers/{customer}/erasure", json={"reason": "customer's request"},
                          headers=auth(role="admin"))
    assert r.status == 200
    after = await (await client.get(f"/v1/cases/{case_id}/history", headers=auditor)).text()
    assert "customer asked for a callback after 17:00" not in after and "[erased]" in after


async def test_a_history_process_that_died_is_replaced_and_the_history_still_answered(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth) -> None:
    app = create_app(msgspec.structs.replace(settings, history="process"), dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    case_id = await open_case_with_story(client, auth())
    auditor = auth(role="auditor")
    assert (await client.get(f"/v1/cases/{case_id}/history", headers=auditor)).status == 200
    executor = client.app[HISTORY_PROCESS]._processes
    assert executor is not None
    [worker] = list(executor._processes.values())
    worker.kill()  # out of memory, or an operator's kill
    worker.join(10)
    r = await client.get(f"/v1/cases/{case_id}/history", headers=auditor)
    assert r.status == 200, await r.text()
    assert len((await r.json())["events"]) == 7
    assert client.app[HISTORY_PROCESS]._processes is not executor  # a new worker took over


async def test_a_row_the_process_cannot_read_is_one_500_and_the_process_serves_on(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth, own_pool) -> None:
    app = create_app(msgspec.structs.replace(settings, history="process"), dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    broken, sound = await open_case_with_story(client, auth()), await open_case_with_story(client, auth())
    auditor = auth(role="auditor")
    assert (await client.get(f"/v1/cases/{sound}/history", headers=auditor)).status == 200
    executor = client.app[HISTORY_PROCESS]._processes
    # A row that no longer decodes (its error carries arguments of its own, which do not unpickle)
    await own_pool.execute("UPDATE case_events SET state = '{\"v\": 99}' WHERE originator_id = $1"
                           " AND originator_version = 3", broken)
    r = await client.get(f"/v1/cases/{broken}/history", headers=auditor)
    assert r.status == 500 and (await r.json())["type"].endswith("/internal")
    r = await client.get(f"/v1/cases/{sound}/history", headers=auditor)
    assert r.status == 200
    assert client.app[HISTORY_PROCESS]._processes is executor  # the same worker: nothing broke


async def test_the_history_process_runs_at_the_niceness_asked_for(
        database_dsn: str, schema: str, aiohttp_client: Any, settings: Settings, auth) -> None:
    # Given a server whose history process is to run niced by 6
    app = create_app(msgspec.structs.replace(settings, history="process", history_nice=6),
                     dsn=with_schema(database_dsn, schema))
    client: TestClient = await aiohttp_client(app)
    case_id = await open_case_with_story(client, auth())
    # When an auditor reads a history
    r = await client.get(f"/v1/cases/{case_id}/history", headers=auth(role="auditor"))
    assert r.status == 200
    # Then the worker that made it runs at this process's niceness plus 6 (the kernel stops at 19),
    # so the API's loop gets a core before an auditor's document does
    [worker] = list(client.app[HISTORY_PROCESS]._processes._processes.values())
    assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 6, 19)


def test_the_history_process_is_niced_by_ten_unless_told_otherwise(tmp_path: Path) -> None:
    check_number_setting(tmp_path, "CASEDESK_HISTORY_NICE", "history_nice", 10, ("0", 0), ("-1", "20", "low"))
