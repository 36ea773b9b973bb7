"""A topic's progress and funnel, drawn in the terminal from `GET /v1/topics/{topicId}`."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table

from ses_sender.stats.schemas import TopicStats


def finished(stats: TopicStats) -> bool:
    """Nothing of the topic is left to send (a paused topic's held emails count as left)."""
    return stats.request.created + stats.request.processing == 0


def topic_view(topic_id: str, stats: TopicStats) -> RenderableType:
    request = stats.request
    done = request.sent + request.failed + request.stopped
    progress = Table.grid(padding=(0, 1))
    progress.add_row(
        f"[bold]{topic_id}[/bold]",
        ProgressBar(total=max(request.total, 1), completed=done, width=40),
        f"{done:,} of {request.total:,} done",
    )
    requests = Table(title="emails", title_justify="left", show_header=False, box=None)
    for name, count in (
        ("queued", request.created),
        ("sending", request.processing),
        ("sent", request.sent),
        ("failed", request.failed),
        ("stopped", request.stopped),
        ("  of which suppressed", request.suppressed),
    ):
        requests.add_row(name, f"{count:,}")
    return Group(progress, requests, _funnel(stats))


def _funnel(stats: TopicStats) -> Table:
    """Of the emails sent, how many got each far; every share is of `sent`. Opened and clicked
    count people; the emails only machines opened (clicked) follow them."""
    statuses = stats.result.statuses
    outcomes = stats.result.outcomes
    opens, clicks = stats.opens, stats.clicks
    sent = stats.request.sent
    table = Table(title="funnel", title_justify="left", show_header=False, box=None)
    for name, count in (
        ("sent", sent),
        ("delivered", statuses.get("Delivery", 0)),
        ("opened", opens.unique_human),
        ("  by machines only", opens.unique - opens.unique_human),
        ("clicked", clicks.unique_human),
        ("  by machines only", clicks.unique - clicks.unique_human),
        ("bounced", outcomes.bounced),
        ("complained", outcomes.complained),
        ("unsubscribed", statuses.get("Unsubscribe", 0)),
    ):
        share = f"{count / sent:.1%}" if sent else "-"
        table.add_row(
            name, ProgressBar(total=max(sent, 1), completed=count, width=30), f"{count:,}", share
        )
    return table
