"""A large answer goes out a piece at a time, with turns of the event loop for others in between."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp.abc import AbstractStreamWriter

from casedesk.services.http import large_answers
from casedesk.services.http.large_answers import PIECE, PiecewiseBody
from tests.api.conftest import new_case_body
from tests.loop_turns import LoopTurns


class _Writes(AbstractStreamWriter):
    """A writer that keeps each write and how many loop turns others had had before it."""

    def __init__(self, turns: LoopTurns) -> None:
        self.turns = turns
        self.writes: list[tuple[bytes, int]] = []

    async def write(self, chunk: Any) -> None:
        self.writes.append((bytes(chunk), self.turns.count))

    async def write_eof(self, chunk: bytes = b"") -> None:
        raise AssertionError("the response writes the end, not the body")

    async def drain(self) -> None:
        raise AssertionError("not called by the body")

    def enable_compression(self, encoding: str = "deflate", strategy: int | None = None) -> None:
        raise AssertionError("not called by the body")

    def enable_chunking(self) -> None:
        raise AssertionError("not called by the body")

    async def write_headers(self, status_line: str, headers: Any) -> None:
        raise AssertionError("not called by the body")

    def send_headers(self) -> None:
        raise AssertionError("not called by the body")


async def test_a_body_of_several_pieces_is_written_piece_by_piece_with_a_turn_for_others_between() -> None:
    body = bytes(range(256)) * (PIECE * 3 // 256 + 7)  # three whole pieces and a part
    with LoopTurns() as turns:
        writes = _Writes(turns)
        await PiecewiseBody(body).write(writes)
    assert b"".join(chunk for chunk, _ in writes.writes) == body
    assert [len(chunk) for chunk, _ in writes.writes] == [PIECE, PIECE, PIECE, len(body) - 3 * PIECE]
    seen = [count for _, count in writes.writes]
    assert all(later > earlier for earlier, later in itertools.pairwise(seen))


async def test_a_length_cut_sends_only_that_many_bytes() -> None:
    with LoopTurns() as turns:
        writes = _Writes(turns)
        await PiecewiseBody(b"x" * (PIECE + 10)).write_with_length(writes, PIECE + 3)
    assert [len(chunk) for chunk, _ in writes.writes] == [PIECE, 3]


async def test_a_history_longer_than_a_piece_arrives_whole_and_opened(client, auth, monkeypatch) -> None:
    monkeypatch.setattr(large_answers, "PIECE", 512)  # a small case's history is then many pieces
    sent: list[int] = []
    write_in_pieces = PiecewiseBody.write_with_length

    async def counted(body: PiecewiseBody, writer: AbstractStreamWriter, length: int | None) -> None:
        sent.append(body.size or 0)
        await write_in_pieces(body, writer, length)

    monkeypatch.setattr(PiecewiseBody, "write_with_length", counted)
    agent = auth()
    r = await client.post("/v1/cases", json=new_case_body(), headers=agent)
    case_id = (await r.json())["case_id"]
    for n in range(5):
        r = await client.post(f"/v1/cases/{case_id}/notes", json={"text": f"customer called back, try {n}"},
                              headers=agent)
        assert r.status == 201, await r.text()
    # When an auditor reads the history
    r = await client.get(f"/v1/cases/{case_id}/history", headers=auth("auditor"))
    body = await r.read()
    # Then it went out in pieces and came whole (its length as announced), with personal data opened
    assert r.status == 200
    assert sent == [len(body)]
    assert int(r.headers["Content-Length"]) == len(body) > 4 * 512
    assert r.headers["Content-Type"].startswith("application/json")
    assert b"customer called back, try 4" in body
    assert b"{{cd1." not in body
