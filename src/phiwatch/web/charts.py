"""Charts drawn on the server as inline SVG: numbers in, shapes out (rendered by the templates with
autoescape), so the dashboard needs no JavaScript and loads nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WIDTH, HEIGHT, PAD = 640, 180, 32
COLOURS = {"critical": "#8b0000", "high": "#d9480f", "medium": "#e0a800", "low": "#2b8a3e", "info": "#5c7cfa",
           "total": "#222222", "exposed_services": "#d9480f", "studies": "#5c7cfa", "files": "#2b8a3e",
           "new": "#d9480f", "fixed": "#2b8a3e"}


@dataclass
class Line:
    name: str
    colour: str
    points: str  # "x,y x,y ..." for <polyline points=...>
    last: int


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str


@dataclass
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    top: int = 0  # the largest value (the y axis' top label)
    lines: list[Line] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    labels: list[tuple[float, str, str]] = field(default_factory=list)  # x axis: (x, text, anchor)
    empty: bool = True


def _nice(top: float) -> int:
    return max(1, int(top))


def lines(title: str, series: dict[str, list[int]], labels: list[str]) -> Chart:
    """One polyline per series over the same x positions (oldest left)."""
    chart = Chart(title=title)
    count = max((len(v) for v in series.values()), default=0)
    if count == 0:
        return chart
    chart.empty = False
    chart.top = _nice(max((max(v) for v in series.values() if v), default=1))
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    step = inner_w / max(1, count - 1)
    for name, values in series.items():
        coords = " ".join(f"{PAD + i * step:.1f},{PAD + inner_h - inner_h * v / chart.top:.1f}"
                          for i, v in enumerate(values))
        chart.lines.append(Line(name, COLOURS.get(name, "#444444"), coords, values[-1] if values else 0))
    for i in sorted({0, count // 2, count - 1}):
        if i < len(labels) and labels[i]:
            anchor = "start" if i == 0 else "end" if i == count - 1 else "middle"
            chart.labels.append((PAD + i * step, labels[i][:10], anchor))
    return chart


def bars(title: str, groups: list[dict[str, Any]], names: tuple[str, ...], label: str) -> Chart:
    """Grouped bars: one group per item (e.g. a week), one bar per name in it."""
    chart = Chart(title=title)
    if not groups:
        return chart
    chart.empty = False
    chart.top = _nice(max(max(int(g[n]) for n in names) for g in groups))
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    slot = inner_w / len(groups)
    width = max(1.0, slot * 0.8 / len(names))
    for i, group in enumerate(groups):
        for j, name in enumerate(names):
            height = inner_h * int(group[name]) / chart.top
            chart.bars.append(Bar(PAD + i * slot + j * width, PAD + inner_h - height, width, height,
                                  COLOURS.get(name, "#444444"), f"{group[label]} {name}: {group[name]}"))
        if i in (0, len(groups) // 2, len(groups) - 1):
            chart.labels.append((PAD + i * slot, str(group[label]), "start"))
    return chart


def overview_charts(data: dict[str, Any]) -> list[Chart]:
    trend = data["trend"]
    labels = [p["at"] or "" for p in trend]
    severities = [s for s in ("critical", "high", "medium", "low", "info")
                  if any(p["open_by_severity"].get(s) for p in trend)]
    open_series = {"total": [p["open_findings"] for p in trend]}
    open_series.update({s: [p["open_by_severity"].get(s, 0) for p in trend] for s in severities})
    exposure = {name: [p[name] for p in trend] for name in ("exposed_services", "studies", "files")}
    return [
        lines("Open findings by severity", open_series, labels),
        lines("Exposed services, studies and files", exposure, labels),
        bars("New and fixed per week", data["weekly"], ("new", "fixed"), "week"),
    ]
