"""Every metric the service keeps is in the README's table and on the Grafana dashboard, which
asks for no metric that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY

import ses_sender.instruments  # noqa: F401 - registers the metrics

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = re.compile(r"_(total|bucket|count|sum)$")


def kept() -> set[str]:
    return {family.name for family in REGISTRY.collect() if family.name.startswith("ses_sender_")}


def named_in(text: str) -> set[str]:
    return {SUFFIXES.sub("", name) for name in re.findall(r"ses_sender_[a-z_]+", text)}


def test_the_readme_lists_every_metric() -> None:
    section = (ROOT / "README.md").read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    assert named_in(section) == kept()


def test_the_dashboard_shows_every_metric_and_only_those() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = " ".join(
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    )
    assert named_in(expressions) == kept()
