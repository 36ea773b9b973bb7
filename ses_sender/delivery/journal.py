"""The outcome journal: results the worker could not write to the database, kept on local disk
until it can.

A send's result that does not reach the database (it is down, its disk is full, the worker is
stopping) would be lost with the process, and its email sent again once its lease runs out. So
the recorder appends it here first (JSON lines, fsync'd), and writes it to the database when it
can; at the next start a worker writes every journal left behind before it claims anything.
Writing a result twice changes nothing more (each write matches the claim's lease token).

Each worker process keeps a file of its own in the folder, locked while it runs: several
workers may share a folder, and each replays only files whose writer is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from ses_sender.delivery.emails import Failed, Requeued, SendResult, Sent, Unconfirmed

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"


class OutcomeJournal:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: BinaryIO | None = None
        self._path: Path | None = None
        self._dirty = False

    @property
    def path(self) -> Path | None:
        return self._path

    def open(self) -> None:
        """Create this process's journal file, locked for as long as the process runs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._path = self.directory / f"outcomes-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
        self._file = self._path.open("ab")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def append(self, results: Sequence[SendResult]) -> None:
        """Durably: on disk when this returns. Raises OSError (a full disk, say)."""
        assert self._file is not None, "open() first"
        if not results:
            return
        self._file.write(b"".join(orjson.dumps(encode(result)) + b"\n" for result in results))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._dirty = True

    def clear(self) -> None:
        """Everything journaled is in the database now."""
        if self._file is None or not self._dirty:
            return
        self._file.truncate(0)
        os.fsync(self._file.fileno())
        self._dirty = False

    def close(self) -> None:
        """Release the lock; an empty journal is removed, one holding results is left for the
        next start."""
        if self._file is None or self._path is None:
            return
        if not self._dirty:
            self._path.unlink(missing_ok=True)
        self._file.close()
        self._file = None

    @contextlib.contextmanager
    def left_behind(self) -> Iterator[list[tuple[Path, list[SendResult]]]]:
        """The journals of workers that are gone, each with its results, locked meanwhile."""
        if not self.directory.is_dir():
            yield []
            return
        with contextlib.ExitStack() as held:
            found: list[tuple[Path, list[SendResult]]] = []
            for path in sorted(self.directory.glob(f"*{SUFFIX}")):
                if path == self._path:
                    continue
                file = held.enter_context(path.open("rb"))
                try:
                    fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its worker is running
                found.append((path, read(file.read(), path)))
            yield found


def read(data: bytes, path: Path) -> list[SendResult]:
    results: list[SendResult] = []
    for number, line in enumerate(data.splitlines(), start=1):
        try:
            results.append(decode(orjson.loads(line)))
        except (ValueError, KeyError, TypeError):
            # Only the last line can be cut short, by a crash in the middle of writing it.
            log.warning("skipping unreadable line %d of the outcome journal %s", number, path)
    return results


def encode(result: SendResult) -> dict[str, Any]:
    match result:
        case Sent(request_id, message_id, sent_at, token):
            return {"sent": request_id, "token": token, "message_id": message_id, "at": sent_at}
        case Failed(request_id, error, token):
            return {"failed": request_id, "token": token, "error": error}
        case Requeued(request_id, due_at, error, counts, token):
            return {
                "requeued": request_id,
                "token": token,
                "due_at": due_at,
                "error": error,
                "counts": counts,
            }
        case Unconfirmed(request_id, at, token):
            return {"unconfirmed": request_id, "token": token, "at": at}


def decode(entry: dict[str, Any]) -> SendResult:
    token = int(entry["token"])
    if "sent" in entry:
        return Sent(int(entry["sent"]), str(entry["message_id"]), _time(entry["at"]), token)
    if "failed" in entry:
        return Failed(int(entry["failed"]), str(entry["error"]), token)
    if "requeued" in entry:
        error = entry["error"]
        return Requeued(
            int(entry["requeued"]),
            _time(entry["due_at"]),
            None if error is None else str(error),
            bool(entry["counts"]),
            token,
        )
    return Unconfirmed(int(entry["unconfirmed"]), _time(entry["at"]), token)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("a journal time without its zone")
    return moment
