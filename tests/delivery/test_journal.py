"""The outcome journal: results the database cannot take are kept on disk and written by the
next worker before it claims; a worker that stops with results unwritten says so and fails;
sends cut off by the end of the shutdown grace are recorded sent, unconfirmed, never sent again.

In-process workers against a real database (SQLite and PostgreSQL) on the real clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ses_sender.composition import Runtime
from ses_sender.delivery import repository
from ses_sender.delivery.emails import Failed, Requeued, SendResult, Sent, Unconfirmed
from ses_sender.delivery.journal import OutcomeJournal, read
from ses_sender.delivery.recorder import OutcomesNotRecorded
from ses_sender.models import RequestStatus
from tests.support.polling import wait_until, while_running
from tests.support.rows import queue_emails, requests_by_id
from tests.support.switchable_database import SwitchableSessionmaker
from tests.support.workers import RecordingTransport, WorkerFactory

AT = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


@pytest.fixture
async def switchable(live_runtime: Runtime) -> AsyncIterator[SwitchableSessionmaker]:
    sessionmaker = SwitchableSessionmaker(live_runtime.sessionmaker)
    yield sessionmaker
    await sessionmaker.close()


def journal_files(runtime: Runtime) -> list[Path]:
    return sorted(runtime.settings.outcome_journal_dir.glob("*.jsonl"))


class TestJournalFile:
    def test_every_kind_of_result_reads_back_as_written(self, tmp_path: Path) -> None:
        results: list[SendResult] = [
            Sent(1, "m-1", AT, 11),
            Failed(2, "MessageRejected: bad address", 12),
            Requeued(3, AT, None, False, 13),
            Requeued(4, AT, "HTTP 503", True, 14),
            Unconfirmed(5, AT, 15),
        ]
        journal = OutcomeJournal(tmp_path)
        journal.open()
        journal.append(results)
        assert journal.path is not None

        assert read(journal.path.read_bytes(), journal.path) == results
        journal.close()
        assert journal.path.exists()  # it holds results: left for the next start

    def test_a_line_cut_short_by_a_crash_is_skipped(self, tmp_path: Path) -> None:
        journal = OutcomeJournal(tmp_path)
        journal.open()
        journal.append([Sent(1, "m-1", AT, 11)])
        assert journal.path is not None
        with journal.path.open("ab") as file:
            file.write(b'{"sent": 2, "tok')

        assert read(journal.path.read_bytes(), journal.path) == [Sent(1, "m-1", AT, 11)]
        journal.close()

    def test_an_empty_journal_is_removed_and_a_running_workers_is_not_replayed(
        self, tmp_path: Path
    ) -> None:
        running = OutcomeJournal(tmp_path)
        running.open()
        running.append([Sent(1, "m-1", AT, 11)])
        starting = OutcomeJournal(tmp_path)
        starting.open()

        with starting.left_behind() as journals:
            assert journals == []  # locked by a live worker
        running.close()
        with starting.left_behind() as journals:
            assert [results for _path, results in journals] == [[Sent(1, "m-1", AT, 11)]]
        starting.close()
        assert list(tmp_path.iterdir()) == [running.path]


async def test_outcomes_the_database_cannot_take_are_written_at_the_next_start(
    live_runtime: Runtime,
    make_worker: WorkerFactory,
    switchable: SwitchableSessionmaker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(4)])
    transport = RecordingTransport(latency_s=1.0)
    worker = make_worker(transport, sessionmaker=switchable, concurrency=4)
    task = asyncio.create_task(worker.run())

    async def all_on_the_wire() -> bool:
        return transport.begun == len(ids)

    await wait_until(while_running(task, all_on_the_wire), "every email on the wire")
    switchable.down = True  # the database goes away before any outcome is written
    worker.stop()
    with pytest.raises(OutcomesNotRecorded, match="4 kept in the outcome journal"):
        await asyncio.wait_for(task, 30)
    assert len(transport.sent) == len(ids)
    assert len(journal_files(live_runtime)) == 1

    switchable.down = False
    restarted_transport = RecordingTransport()
    restarted = make_worker(restarted_transport)
    restarted_task = asyncio.create_task(restarted.run())

    async def recorded() -> bool:
        rows = await requests_by_id(live_runtime)
        return all(rows[i].status == RequestStatus.SENT for i in ids)

    await wait_until(while_running(restarted_task, recorded), "the journal written")
    restarted.stop()
    await asyncio.wait_for(restarted_task, 10)

    rows = await requests_by_id(live_runtime)
    assert {rows[i].message_id for i in ids} == {f"ses-{i}" for i in ids}
    assert restarted_transport.sent == []  # nothing sent twice
    assert journal_files(live_runtime) == []
    assert any("had journaled" in record.getMessage() for record in caplog.records)


async def test_sends_cut_off_by_the_end_of_the_grace_are_sent_unconfirmed_not_again(
    live_runtime: Runtime, make_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await queue_emails(live_runtime, [f"u{i}@example.com" for i in range(3)])
    transport = RecordingTransport(latency_s=60.0)
    worker = make_worker(transport, concurrency=3, shutdown_grace_s=0.0)
    task = asyncio.create_task(worker.run())

    async def all_on_the_wire() -> bool:
        return transport.begun == len(ids)

    await wait_until(while_running(task, all_on_the_wire), "every email on the wire")
    worker.stop()
    await asyncio.wait_for(task, 30)

    rows = await requests_by_id(live_runtime)
    assert {(rows[i].status, rows[i].message_id, rows[i].error) for i in ids} == {
        (RequestStatus.SENT, None, repository.UNCONFIRMED_ERROR)
    }
    assert any("still on the wire" in record.getMessage() for record in caplog.records)
