"""The `ses-sender` console script, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.moto_server import subprocess_env

SCRIPT = Path(sys.executable).with_name("ses-sender")


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`ses-sender *args` in `cwd`, its environment this one's with fake AWS and `env`."""
    return run_cli_within(60, args, cwd, **env)


def run_cli_within(
    timeout_s: float, args: list[str], cwd: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """`run_cli`, for a command that may take longer than a minute."""
    environment = subprocess_env()
    environment.update(env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
