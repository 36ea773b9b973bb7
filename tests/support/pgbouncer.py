"""A PgBouncer of the test's own, in transaction mode, in front of the test PostgreSQL server.

Debian's `pgbouncer` package provides the binary (CI installs it). Its pool is kept small so
that clients take turns on few server connections: a statement prepared in one transaction and
used in another then fails, as it would in production.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import POSTGRES_ADMIN_DSN
from tests.support.ports import HOST, free_port

SERVER_CONNECTIONS = 4  # per database and user
STOP_TIMEOUT_S = 10.0
STARTUP_CHECKS = 300
STARTUP_CHECK_S = 0.1
# PgBouncer refuses to run as root; started by root, it runs as this user instead.
UNPRIVILEGED_USER = "postgres"


@dataclass(frozen=True)
class PgBouncer:
    port: int
    log: Path

    def url_for(self, database_url: str) -> str:
        """`database_url` (on the test server) reached through this PgBouncer instead."""
        return (
            make_url(database_url)
            .set(host=HOST, port=self.port)
            .render_as_string(hide_password=False)
        )

    def output(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def run_pgbouncer() -> Iterator[PgBouncer]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        pytest.fail("pgbouncer is not installed (apt-get install pgbouncer)")
    server = make_url(POSTGRES_ADMIN_DSN)
    # A directory the unprivileged user can read: pytest's tmp_path is root's alone.
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as directory:
        root = Path(directory)
        root.chmod(0o755)
        port = free_port()
        users = root / "userlist.txt"
        users.write_text(f'"{server.username}" ""\n')
        config = root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={server.host} port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = {HOST}\n"
            f"listen_port = {port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {SERVER_CONNECTIONS}\n"
            "max_client_conn = 500\n"
        )
        for path in (users, config):
            path.chmod(0o644)
        command = [binary, str(config)]
        if os.geteuid() == 0:
            command[1:1] = ["-u", UNPRIVILEGED_USER]
        log = root / "pgbouncer.log"
        with log.open("w") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait_listening(process, port, log)
            yield PgBouncer(port, log)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Until PgBouncer says it listens on `port` (it starts in milliseconds)."""
    expected = f"listening on {HOST}:{port}"
    for _ in range(STARTUP_CHECKS):
        if process.poll() is not None:
            pytest.fail(f"pgbouncer exited at start:\n{log.read_text()}")
        if expected in log.read_text():
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STARTUP_CHECK_S)
    pytest.fail(f"pgbouncer did not listen on {port}:\n{log.read_text()}")
