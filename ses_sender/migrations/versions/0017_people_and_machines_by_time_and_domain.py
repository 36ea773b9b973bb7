"""stats: our own opens and clicks a machine made, by time; the emails people opened, by domain

A timeline bucket's opens and clicks split between people and machines
(`counters.MACHINE_EVENT_RULES`), and a domain counts the emails a person opened and clicked
(`counters.HUMAN_SCOPES`). Their counters are built in SQL: the machines' buckets from the
event log (`stats.build.machine_event_statements`), the domains' from what each request keeps
of its opens and clicks (`stats.build.domain_totals_statement`); whatever of them a rebuild
made before is replaced. Nothing changes shape.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 14:30:00
"""

from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa
from alembic import op

from ses_sender.models import CounterScope, StatCounter, StatDelta
from ses_sender.stats import build
from ses_sender.stats.counters import HUMAN_CLICKED, HUMAN_OPENED, MACHINE_EVENT_RULES

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMED = [int(CounterScope.TOPIC_TIME), int(CounterScope.ACCOUNT_TIME)]
_MACHINE_METRICS = [metric for metric, _types in MACHINE_EVENT_RULES]
_HUMAN_METRICS = [HUMAN_OPENED, HUMAN_CLICKED]


def upgrade() -> None:
    _drop_built()
    connection = op.get_bind()
    dialect = connection.dialect.name
    counters = cast(sa.Table, StatCounter.__table__)
    for statement in build.machine_event_statements(dialect, counters):
        connection.execute(statement)
    connection.execute(build.domain_totals_statement(dialect, counters, _HUMAN_METRICS))


def downgrade() -> None:
    # Counters the code before never reads: dropped; upgrading again builds them anew.
    _drop_built()


def _drop_built() -> None:
    for model in (StatCounter, StatDelta):
        table = cast(sa.Table, model.__table__)
        op.execute(
            table.delete().where(
                sa.or_(
                    sa.and_(table.c.scope.in_(_TIMED), table.c.metric.in_(_MACHINE_METRICS)),
                    sa.and_(
                        table.c.scope == int(CounterScope.DOMAIN),
                        table.c.metric.in_(_HUMAN_METRICS),
                    ),
                )
            )
        )
