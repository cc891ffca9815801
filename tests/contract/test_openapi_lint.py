"""The served OpenAPI document passes the linters integrators run, with no warning.

Spectral (`spectral:oas`) and Redocly (`recommended`) come from npm, pinned in
this folder's package.json; `make test` and `.ci/run` install them with
`npm ci --prefix tests/contract` when they are missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from casedesk.services.http.operation_texts import DESCRIPTIONS
from casedesk.services.http.routes import ROUTES

HERE = Path(__file__).parent
BIN = HERE / "node_modules" / ".bin"


def linter(name: str) -> Path:
    path = BIN / name
    if not path.exists() or shutil.which("node") is None:
        pytest.skip(f"{name} is not installed: run `npm ci --prefix tests/contract` (make test does)")
    return path


@pytest.fixture
async def served_document(client: Any, tmp_path: Path) -> Path:
    r = await client.get("/v1/openapi.json")
    assert r.status == 200
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(await r.json()))
    return path


async def test_spectral_finds_nothing(served_document: Path) -> None:
    found = await asyncio.to_thread(
        subprocess.run, [linter("spectral"), "lint", served_document, "-r", HERE / ".spectral.yaml", "--fail-severity=warn",
         "--format=text"], capture_output=True, text=True, timeout=180)
    assert found.returncode == 0, found.stdout + found.stderr


async def test_redocly_finds_nothing(served_document: Path) -> None:
    found = await asyncio.to_thread(
        subprocess.run, [linter("redocly"), "lint", served_document, "--config", HERE / "redocly.yaml", "--format=stylish"],
        capture_output=True, text=True, timeout=180)
    assert found.returncode == 0 and " warning " not in found.stdout, found.stdout + found.stderr


def test_every_route_has_a_description_of_its_own() -> None:
    missing = [f"{r.method} {r.path}" for r in ROUTES if (r.method, r.path) not in DESCRIPTIONS]
    assert missing == [], f"add them to services/http/operation_texts.py: {missing}"
    stale = set(DESCRIPTIONS) - {(r.method, r.path) for r in ROUTES}
    assert stale == set(), f"descriptions of routes that no longer exist: {stale}"
