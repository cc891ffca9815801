"""A client that stalls is answered 408 and let go; one address cannot hold every connection.

Against the real `casedesk serve`, with short limits set through its environment,
over raw sockets: headers dribbled a byte at a time, a body that never reaches
its Content-Length, a chunked body never finished; and a slow but steady upload,
which must still be served.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casedesk.services.tokens import issue_token
from tests.api.conftest import SECRET, with_schema
from tests.cli.test_commands import free_port, serve, stop
from tests.conftest import new_schema

LIMITS = {"CASEDESK_TOKEN_SECRET": SECRET, "CASEDESK_HEADER_TIMEOUT": "1", "CASEDESK_BODY_IDLE_TIMEOUT": "1", "CASEDESK_MAX_CONNECTIONS_PER_IP": "4",
          "CASEDESK_PROJECTIONS": "off"}


@pytest.fixture
def server(tmp_path: Path, database_dsn: str) -> Iterator[int]:
    schema = asyncio.run(new_schema(database_dsn))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CASEDESK_")}
    port = free_port()
    process: subprocess.Popen[str] = serve({**environ, **LIMITS, "CASEDESK_DATA_DIR": str(tmp_path / "data"),
                                            "DATABASE_URL": with_schema(database_dsn, schema)}, port)
    try:
        yield port
    finally:
        stop(process)


def bearer(role: str) -> bytes:
    return b"Authorization: Bearer " + issue_token(SECRET, sub="s1", name="S. Ono", role=role,
                                                   departments=["fraud"], ttl=600).encode() + b"\r\n"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def answer_after(sock: socket.socket, parts: list[bytes], pause: float) -> tuple[bytes, int]:
    """Send the parts with a pause between them until the server answers or hangs up.

    Returns what came back and how many parts were sent before it did. The
    socket's 10 s timeout ends a read the server never answers: that is a failure
    (b"", all parts), since every test here expects the server to act first.
    """
    sent = 0
    for part in parts:
        if select.select([sock], [], [], 0)[0]:
            break  # the server spoke (or hung up) before the client finished
        try:
            sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1
        time.sleep(pause)
    received = b""
    with sock:
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        except TimeoutError:
            return b"", len(parts)
    return received, sent


def status_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0].split(b" ")[1] if answer.startswith(b"HTTP/1.1 ") else answer[:40]


def test_headers_dribbled_a_byte_at_a_time_get_408(server: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60 + b"\r\n\r\n"
    got, sent = answer_after(connect(server), [bytes([b]) for b in head], pause=0.1)
    assert status_of(got) == b"408" and b"application/problem+json" in got, got[:200]
    assert sent < len(head), "the server waited for the whole dribbled head"


def test_a_body_that_never_reaches_its_length_gets_408(server: int) -> None:
    head = (b"POST /v1/cases HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + bearer("agent")
            + b"Content-Length: 1000\r\n\r\n{\"a\": ")
    got, _ = answer_after(connect(server), [head], pause=0.1)
    assert status_of(got) == b"408", got[:200]


def test_an_unfinished_chunked_body_is_let_go(server: int) -> None:
    head = (b"POST /v1/breaches HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + bearer("supervisor")
            + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n")
    got, _ = answer_after(connect(server), [head], pause=0.1)
    assert status_of(got) == b"408", got[:200]


def test_a_slow_but_steady_head_is_served(server: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # Three pieces, 0.4 s apart: slower than a program, well inside the 1 s head deadline.
    pieces = [head[:10], head[10:30], head[30:]]
    got, sent = answer_after(connect(server), pieces, pause=0.4)
    assert status_of(got) == b"200" and sent == len(pieces), got[:200]


def test_one_address_holds_at_most_the_cap_of_connections(server: int) -> None:
    held = [connect(server) for _ in range(4)]
    try:
        time.sleep(0.3)
        extra = connect(server)
        extra.settimeout(5)
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = extra.recv(100) == b""
        except (ConnectionResetError, BrokenPipeError):
            refused = True
        extra.close()
        assert refused, "a fifth connection from one address was served"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)  # the server saw them go: a new connection is served again
    got, _ = answer_after(connect(server), [b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"], 0.1)
    assert status_of(got) == b"200", got[:200]
