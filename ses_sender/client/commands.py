"""What `ses-sender send` and `ses-sender status` do, once the command line has said with what.
Problems are raised (InputProblem, ServiceProblem); `cli.py` turns them into exit codes."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live

from ses_sender.client.progress_view import finished, topic_view
from ses_sender.client.recipients import InputProblem
from ses_sender.client.sending import Campaign, SendReport, check, send
from ses_sender.client.service_api import ServiceApi


def send_campaign(campaign: Campaign, api: ServiceApi, console: Console) -> None:
    total = check(campaign, console)
    if total == 0:
        raise InputProblem(f"{campaign.recipients}: no addresses in column {campaign.column!r}")
    report = SendReport()
    try:
        send(campaign, api, console, total=total, report=report)
    except BaseException:
        console.print(
            f"stopped: {report.emails:,} of {total:,} emails ({report.chunks} chunks) are "
            "queued. Run the same command again to send the rest: what is queued already is "
            "not queued twice."
        )
        raise
    console.print(f"queued {total:,} emails in {report.chunks} chunks on {api.base_url}")
    console.print(topic_view(campaign.topic_id, api.topic(campaign.topic_id)))


def show_status(
    api: ServiceApi, topic_id: str, console: Console, *, watch: bool, interval_s: float
) -> None:
    """The topic's progress; with `watch`, redrawn every `interval_s` until nothing is left
    to send."""
    stats = api.topic(topic_id)
    if not watch:
        console.print(topic_view(topic_id, stats))
        return
    with Live(topic_view(topic_id, stats), console=console, auto_refresh=False) as live:
        while not finished(stats):
            time.sleep(interval_s)
            stats = api.topic(topic_id)
            live.update(topic_view(topic_id, stats), refresh=True)
