"""A disk that fills up: a small tmpfs mounted for one test, filled and emptied at will.

The kernel answers ENOSPC as a full disk does, so SQLite fails where it really would: when a
commit appends to its write-ahead log. Mounting needs root (CAP_SYS_ADMIN); elsewhere the test
skips, saying so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SIZE_BYTES = 16 * 1024 * 1024  # room for a migrated database and a test's rows
FILLER_NAME = "filler"
FILL_CHUNK_BYTES = 64 * 1024


class SmallDisk:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / FILLER_NAME

    def fill(self) -> None:
        """Take every free byte: the next write that needs space fails with ENOSPC."""
        chunk = b"\0" * FILL_CHUNK_BYTES
        with self._filler.open("ab", buffering=0) as filler:
            while True:
                try:
                    filler.write(chunk)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        return
                    chunk = chunk[: len(chunk) // 2]  # fill the last partial block too

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(mount_point: Path, size_bytes: int = SIZE_BYTES) -> Iterator[SmallDisk]:
    """A tmpfs of `size_bytes` at `mount_point` (made if missing), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root")
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount_point)],
        check=True,
        capture_output=True,
    )
    try:
        yield SmallDisk(mount_point)
    finally:
        # Lazy: a file a process still holds open must not keep the mount past the test.
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True, capture_output=True)
