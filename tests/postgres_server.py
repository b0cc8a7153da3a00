"""A throwaway PostgreSQL server for the test session, from the Debian packages if installed.

``.ci/run`` installs the ``postgresql`` package; on a developer's machine without it the
PostgreSQL half of the storage, ingest and migration tests is skipped (or fails, when
``NFTLENS_TEST_REQUIRE_POSTGRES`` is set), and ``NFTLENS_TEST_DATABASE_URL`` may name any
server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "nftlens"


def server_binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


@contextmanager
def running_server(binaries: Path) -> Iterator[str]:
    """Start a server in a temporary directory on a free loopback port; yield an admin URL."""
    root = Path(tempfile.mkdtemp(prefix="nftlens-pg-"))
    # The server refuses to run as root; the Debian package creates a postgres user for it.
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = root / "data"

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(binaries / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o", options,
        "start")  # fmt: skip
    try:
        yield f"postgresql://{USER}@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _version(path: str) -> tuple[int, ...]:
    part = Path(path).parents[1].name
    return tuple(int(n) for n in part.split(".") if n.isdigit())
