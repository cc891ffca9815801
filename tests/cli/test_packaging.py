"""The package configuration names every folder it ships, so installing prints no setuptools warning."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_folder_of_the_package_is_a_listed_package() -> None:
    # setuptools warns ("Package ... is absent from the `packages` configuration", 40 lines on every
    # `make serve`) for each folder under a package that is not listed, even one of data files only.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = set()
    for package, folder in config["package-dir"].items():
        for path in [ROOT / folder, *(p for p in (ROOT / folder).rglob("*") if p.is_dir())]:
            if "__pycache__" in path.parts:
                continue
            folders.add(".".join([package, *path.relative_to(ROOT / folder).parts]))
    assert folders - listed == set()


def test_the_pages_are_shipped_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["casedesk.services.http.static"]
    pages = sorted(p.name for p in (ROOT / "services/http/static").iterdir())
    assert pages and all(any(Path(page).match(pattern) for pattern in patterns) for page in pages)
