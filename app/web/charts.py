"""Inline SVG charts drawn on the server: no script, no external fonts or images.

Every chart is an `<svg role="img">` with a `<title>` and `<desc>` for screen readers and
scales to its container through `viewBox` (the CSS sets `width: 100%`). Colours come from
CSS classes, not inline styles, so the pages' strict CSP (no 'unsafe-inline') holds.
Text is escaped here; the result is safe to mark up in a template.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

from markupsafe import Markup, escape

_ids = itertools.count(1)


@dataclass(frozen=True)
class Point:
    """One x position of a time series: label, value (None = no data), and a note for the tooltip."""

    label: str
    value: float | None
    note: str = ""


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, title: str, desc: str, body: list[str], css: str) -> Markup:
    ident = f"chart-{next(_ids)}"
    return Markup(
        f'<svg class="chart {css}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" preserveAspectRatio="xMidYMid meet">'
        f'<title id="{ident}-t">{escape(title)}</title><desc id="{ident}-d">{escape(desc)}</desc>'
        + "".join(body) + "</svg>")


def progress_bar(value: int, target: int, *, title: str, unit: str = "") -> Markup:
    """A horizontal gauge of value against a target, the target marked by a vertical line."""
    width, height, pad = 320, 36, 2
    share = value / target if target else 0
    scale = max(value, target, 1)  # past the target the bar runs on and the target mark moves left
    inner = width - 2 * pad
    filled = inner * value / scale
    mark = pad + inner * target / scale
    css = "met" if share >= 1 else "short"
    body = [f'<rect class="track" x="{pad}" y="8" width="{inner}" height="20" rx="4"/>',
            f'<rect class="fill {css}" x="{pad}" y="8" width="{_num(filled)}" height="20" rx="4"/>',
            f'<line class="target" x1="{_num(mark)}" y1="3" x2="{_num(mark)}" y2="33"/>']
    desc = f"{value}{unit}，目标 {target}{unit}（{round(share * 100)}%）"
    return _svg(width, height, title, desc, body, "gauge")


def bar_chart(items: list[tuple[str, int]], *, title: str, unit: str = "件") -> Markup:
    """Vertical bars with the value above each and the label below (statuses, ratings)."""
    width, height = 360, 220
    left, right, top, bottom = 8, 8, 24, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = max([value for _, value in items] + [1])
    slot = plot_w / max(len(items), 1)
    bar_w = min(48.0, slot * 0.6)
    body = [f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}"/>']
    for index, (label, value) in enumerate(items):
        x = left + slot * index + (slot - bar_w) / 2
        h = plot_h * value / top_value
        y = top + plot_h - h
        cx = x + bar_w / 2
        body.append(f'<rect class="bar bar-{index % 6}" x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w)}" '
                    f'height="{_num(h)}"><title>{escape(label)}：{value}{escape(unit)}</title></rect>')
        body.append(f'<text class="value" x="{_num(cx)}" y="{_num(y - 6)}" text-anchor="middle">{value}</text>')
        body.append(f'<text class="label" x="{_num(cx)}" y="{top + plot_h + 18}" text-anchor="middle">'
                    f'{escape(_short(label, 6))}</text>')
    desc = "；".join(f"{label} {value}{unit}" for label, value in items)
    return _svg(width, height, title, desc, body, "bars")


def hbar_chart(items: list[tuple[str, float, str]], *, title: str, max_value: float = 100.0) -> Markup:
    """Horizontal bars, one row per item: (label, value 0..max_value, text shown at the end)."""
    row, label_w, width = 28, 150, 360
    height = row * max(len(items), 1) + 8
    plot_w = width - label_w - 56
    body = []
    for index, (label, value, shown) in enumerate(items):
        y = 4 + index * row
        w = plot_w * max(0.0, min(value, max_value)) / max_value if max_value else 0
        body.append(f'<text class="label" x="{label_w - 6}" y="{y + 17}" text-anchor="end">'
                    f'{escape(_short(label, 11))}<title>{escape(label)}</title></text>')
        body.append(f'<rect class="track" x="{label_w}" y="{y + 4}" width="{plot_w}" height="16" rx="3"/>')
        body.append(f'<rect class="fill {_level(value, max_value)}" x="{label_w}" y="{y + 4}" width="{_num(w)}" '
                    f'height="16" rx="3"/>')
        body.append(f'<text class="value" x="{label_w + plot_w + 6}" y="{y + 17}">{escape(shown)}</text>')
    desc = "；".join(f"{label} {shown}" for label, _, shown in items)
    return _svg(width, height, title, desc, body, "hbars")


def line_chart(points: list[Point], *, title: str, unit: str = "%", max_value: float = 100.0) -> Markup:
    """A line over time (0..max_value); periods without data break the line and show no dot."""
    width, height = 360, 220
    left, right, top, bottom = 34, 26, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    step = plot_w / max(len(points) - 1, 1)
    body = []
    for tick in (0, 25, 50, 75, 100):
        y = top + plot_h - plot_h * tick / 100
        body.append(f'<line class="grid" x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}"/>')
        body.append(f'<text class="tick" x="{left - 4}" y="{_num(y + 4)}" text-anchor="end">'
                    f'{_num(max_value * tick / 100)}</text>')
    segments, current = [], []
    coords = []
    for index, point in enumerate(points):
        x = left + step * index if len(points) > 1 else left + plot_w / 2
        if point.value is None:
            if current:
                segments.append(current)
            current = []
            coords.append((x, None))
            continue
        y = top + plot_h - plot_h * max(0.0, min(point.value, max_value)) / max_value
        current.append((x, y))
        coords.append((x, y))
    if current:
        segments.append(current)
    for segment in segments:
        if len(segment) > 1:
            path = " ".join(f"{_num(x)},{_num(y)}" for x, y in segment)
            body.append(f'<polyline class="line" points="{path}"/>')
    every = max(1, -(-len(points) // 6))  # at most ~6 labels so they stay readable on a phone
    for index, (point, (x, y)) in enumerate(zip(points, coords)):
        if y is not None:
            tip = f"{point.label}：{_num(point.value)}{unit}" + (f"（{point.note}）" if point.note else "")
            body.append(f'<circle class="dot" cx="{_num(x)}" cy="{_num(y)}" r="4"><title>{escape(tip)}</title></circle>')
        if (len(points) - 1 - index) % every == 0:  # counted from the newest, which is always labelled
            body.append(f'<text class="label" x="{_num(x)}" y="{top + plot_h + 18}" text-anchor="middle">'
                        f'{escape(point.label)}</text>')
    desc = "；".join(f"{p.label} " + (f"{_num(p.value)}{unit}" if p.value is not None else "无数据") for p in points)
    return _svg(width, height, title, desc, body, "line-chart")


def _level(value: float, max_value: float) -> str:
    share = value / max_value if max_value else 0
    return "good" if share >= 0.9 else "fair" if share >= 0.7 else "poor"


def _short(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"
