"""Leases: a worker renews what it holds, sends only while its lease surely outlasts the send,
and its writes about a row match its claim's token, so a row claimed again is never
overwritten by the claim that lost it.

Against a real database (SQLite and PostgreSQL), on a fake clock.
"""

from __future__ import annotations

from datetime import timedelta

from ses_sender.composition import Runtime
from ses_sender.control import repository as control_repository
from ses_sender.delivery import repository
from ses_sender.delivery.emails import (
    Failed,
    ProviderSend,
    Requeued,
    SendResult,
    Sent,
    Unconfirmed,
)
from ses_sender.delivery.housekeeping import Housekeeping
from ses_sender.models import RequestStatus
from ses_sender.ses_events.hooks import SesEventHooks
from ses_sender.stats.hooks import StatsHooks
from tests.support.clock import FakeClock
from tests.support.rows import CLAIM_TOKEN, add_requests, requests_by_id
from tests.support.workers import claimer_with_leases

C, P, S = RequestStatus.CREATED, RequestStatus.PROCESSING, RequestStatus.SENT
LEASE_S = 60.0
SEND_TIMEOUT_S = 5.0
NEW_TOKEN = 777


async def sweep(runtime: Runtime) -> tuple[int, int]:
    """What any worker's housekeeping does with expired leases now: (recorded sent, requeued)."""
    hooks = SesEventHooks(runtime.soft_bounces)
    housekeeping = Housekeeping(
        runtime.sessionmaker, evidence=hooks, counter=StatsHooks(), jobs=[], clock=runtime.clock
    )
    return await housekeeping.recover_expired_leases()


async def record(runtime: Runtime, results: list[SendResult]) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        await repository.record_outcomes(session, results, now=runtime.clock.now())


async def claim_again(runtime: Runtime, *, token: int) -> list[int]:
    now = runtime.clock.now()
    async with runtime.sessionmaker() as session, session.begin():
        claimed = await repository.claim_due(
            session,
            now=now,
            lease_until=now + timedelta(seconds=LEASE_S),
            lease_token=token,
            limit=10,
        )
    return [queued.request_id for queued in claimed]


class TestFencing:
    async def test_results_of_a_lost_claim_leave_the_row_claimed_again_alone(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        ids = await add_requests(runtime, [P, P, P, P])
        clock.advance(3 * 60)  # the worker was cut off past its lease
        assert await sweep(runtime) == (0, 4)
        assert sorted(await claim_again(runtime, token=NEW_TOKEN)) == ids

        sent, failed, requeued, unconfirmed = ids
        await record(
            runtime,
            [
                Sent(sent, "m-late", clock.now(), CLAIM_TOKEN),
                Failed(failed, "MessageRejected", CLAIM_TOKEN),
                Requeued(requeued, clock.now(), "HTTP 503", True, CLAIM_TOKEN),
                Unconfirmed(unconfirmed, clock.now(), CLAIM_TOKEN),
            ],
        )

        rows = await requests_by_id(runtime)
        assert {(rows[i].status, rows[i].lease_token, rows[i].message_id) for i in ids} == {
            (P, NEW_TOKEN, None)
        }

    async def test_results_under_the_claims_own_token_are_recorded(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        sent, unconfirmed = await add_requests(runtime, [P, P])

        await record(
            runtime,
            [
                Sent(sent, "m-1", clock.now(), CLAIM_TOKEN),
                Unconfirmed(unconfirmed, clock.now(), CLAIM_TOKEN),
            ],
        )

        rows = await requests_by_id(runtime)
        assert (rows[sent].status, rows[sent].message_id) == (S, "m-1")
        assert (rows[unconfirmed].status, rows[unconfirmed].message_id) == (S, None)
        assert rows[unconfirmed].error == repository.UNCONFIRMED_ERROR

    async def test_recording_the_same_results_twice_changes_nothing_more(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        sent, requeued = await add_requests(runtime, [P, P])
        results: list[SendResult] = [
            Sent(sent, "m-1", clock.now(), CLAIM_TOKEN),
            Requeued(requeued, clock.now(), "HTTP 503", True, CLAIM_TOKEN),
        ]
        await record(runtime, results)
        before = await requests_by_id(runtime)
        clock.advance(10)

        await record(runtime, results)

        after = await requests_by_id(runtime)
        assert [(r.status, r.attempts, r.updated_at) for r in after.values()] == [
            (r.status, r.attempts, r.updated_at) for r in before.values()
        ]

    async def test_an_unconfirmed_send_takes_the_message_id_ses_reports_later(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        [request_id] = await add_requests(runtime, [P])
        await record(runtime, [Unconfirmed(request_id, clock.now(), CLAIM_TOKEN)])

        async with runtime.sessionmaker() as session, session.begin():
            await repository.record_provider_sends(
                session,
                {request_id: ProviderSend("m-ses", clock.now(), clock.now())},
            )

        row = (await requests_by_id(runtime))[request_id]
        assert (row.status, row.message_id, row.error) == (S, "m-ses", None)


class TestRenewal:
    async def test_renewed_leases_keep_every_sweep_off_the_rows(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        ids = await add_requests(runtime, [C, C])
        claimer, leases = claimer_with_leases(runtime, [], lease_s=LEASE_S)
        assert sorted(queued.request_id for queued, _ in await claimer.claim(10)) == ids

        for _ in range(3):  # three leases long, renewed four times a lease
            for _ in range(4):
                clock.advance(LEASE_S / 4)
                await leases.renew()
            assert await sweep(runtime) == (0, 0)

        rows = await requests_by_id(runtime)
        assert {rows[i].status for i in ids} == {P}
        assert all(leases.may_send(i) for i in ids)

    async def test_without_renewal_the_sweep_takes_the_rows_back(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        ids = await add_requests(runtime, [C, C])
        claimer, leases = claimer_with_leases(runtime, [], lease_s=LEASE_S)
        await claimer.claim(10)

        clock.advance(LEASE_S)

        assert await sweep(runtime) == (0, 2)
        assert not any(leases.may_send(i) for i in ids)


class TestMaySend:
    async def test_only_while_the_lease_surely_outlasts_a_send(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        [request_id] = await add_requests(runtime, [C])
        claimer, leases = claimer_with_leases(runtime, [], lease_s=LEASE_S)
        await claimer.claim(10)

        clock.advance(LEASE_S - SEND_TIMEOUT_S - 1)  # renewals failed meanwhile
        assert leases.may_send(request_id)
        clock.advance(1)
        assert not leases.may_send(request_id)

        await leases.renew()  # the database is back, the row still ours
        assert leases.may_send(request_id)

    async def test_never_once_the_row_is_claimed_again(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        [request_id] = await add_requests(runtime, [C])
        claimer, leases = claimer_with_leases(runtime, [], lease_s=LEASE_S)
        await claimer.claim(10)
        clock.advance(LEASE_S)
        await sweep(runtime)
        assert await claim_again(runtime, token=NEW_TOKEN) == [request_id]

        await leases.renew()

        assert not leases.may_send(request_id)
        row = (await requests_by_id(runtime))[request_id]
        assert (row.lease_token, row.lease_expires_at) == (
            NEW_TOKEN,
            clock.now() + timedelta(seconds=LEASE_S),
        )

    async def test_a_row_cancelled_in_flight_is_not_sent(
        self, runtime: Runtime, clock: FakeClock
    ) -> None:
        [request_id] = await add_requests(runtime, [C])
        claimer, leases = claimer_with_leases(runtime, [], lease_s=LEASE_S)
        await claimer.claim(10)
        async with runtime.sessionmaker() as session, session.begin():
            await control_repository.stop_request(session, request_id, now=clock.now())

        await leases.renew()

        assert not leases.may_send(request_id)
