"""`ses-sender stats verify [TOPIC]`: recount from the rows and compare with the counters."""

from __future__ import annotations

from typing import TextIO

from ses_sender.db.engine import create_engine, create_sessionmaker
from ses_sender.db.migrate import ensure_schema
from ses_sender.stats import service

# Differences printed one by one; beyond this, only how many more.
SHOWN_DIFFERENCES = 50


async def verify(url: str, topic_id: str | None, *, out: TextIO) -> int:
    """0 when every counter equals its recount, 1 otherwise (each difference printed)."""
    await ensure_schema(url, migrate_sqlite=False)
    engine = create_engine(url)
    try:
        # One transaction: on PostgreSQL the recount and the counters read one snapshot only at
        # REPEATABLE READ, which a live service's writes would otherwise slip between.
        async with create_sessionmaker(engine)() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            report = await service.verify(session, topic_id)
    finally:
        await engine.dispose()
    what = "every topic" if topic_id is None else f"topic {topic_id!r}"
    if not report.differences:
        print(f"{what}: {report.requests} requests recounted; every counter matches", file=out)
        return 0
    print(
        f"{what}: {report.requests} requests recounted; "
        f"{len(report.differences)} counters differ (kept, recounted):",
        file=out,
    )
    for difference in report.differences[:SHOWN_DIFFERENCES]:
        print(f"  {difference.counter}: {difference.kept} != {difference.recounted}", file=out)
    if len(report.differences) > SHOWN_DIFFERENCES:
        print(f"  ... and {len(report.differences) - SHOWN_DIFFERENCES} more", file=out)
    return 1
