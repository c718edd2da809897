"""Small inline SVG line charts of trips per day, drawn in Python (no JavaScript, no fonts).

A source's days often come in separate periods (the sample's taxi data covers 2016 and 2023):
each period gets a panel of its own, so that a gap of years does not squeeze the data into a
corner. A day without trips inside a period is drawn as 0.
"""

from __future__ import annotations

from datetime import date, timedelta
from html import escape
from itertools import groupby
from typing import Any

MAX_GAP_DAYS = 31  # a longer gap between two days with trips starts a new panel
MAX_PANELS = 4  # more periods than this are drawn in one panel over the whole range
WIDTH, HEIGHT = 720, 120
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 20
# An edge day with fewer trips than this share of the period's median day is a partial day.
PARTIAL_SHARE = 0.1
MIN_DAYS_TO_TRIM = 7
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def daily_charts(daily: list[dict[str, Any]], order: list[str] | None = None) -> str:
    """One block per source (in `order`, then by name), each with one SVG panel per period."""
    rank = {source: k for k, source in enumerate(order or [])}
    rows = sorted(daily, key=lambda r: (rank.get(r["source"], len(rank)), r["source"], r["day"]))
    blocks = []
    for index, (source, group) in enumerate(groupby(rows, key=lambda r: r["source"])):
        counts = {r["day"]: int(r["trips"]) for r in group}
        blocks.append(source_block(source, counts, COLORS[index % len(COLORS)]))
    return "\n".join(blocks)


def source_block(source: str, counts: dict[date, int], color: str) -> str:
    """The panels of one source, sharing its y scale."""
    periods = split_periods(sorted(counts))
    if len(periods) > MAX_PANELS:
        periods = [[periods[0][0], periods[-1][-1]]]
    periods, partial = zip(*(trim_partial_edges(p, counts) for p in periods), strict=True)
    peak = max(counts.values())
    width = WIDTH if len(periods) == 1 else WIDTH // 2 - 8
    panels = [panel(source, counts, p[0], p[-1], peak, width, color) for p in periods]
    left_out = [day for days in partial for day in days]
    aside = (
        "; not drawn, a partial day at the edge of the data: "
        + ", ".join(f"{day} ({counts[day]:,} trips)" for day in left_out)
        if left_out
        else ""
    )
    return (
        f'<figure class="chart"><figcaption>{escape(source)}: trips per day '
        f"(peak {peak:,}{escape(aside)})</figcaption>{''.join(panels)}</figure>"
    )


def trim_partial_edges(days: list[date], counts: dict[date, int]) -> tuple[list[date], list[date]]:
    """A period without its first or last day when that day holds a sliver of a day's trips.

    Times rounded to the hour push the trips of the last minutes of a period into the next
    day (3-6 taxi trips on 1 January after a year of hundreds a day): drawn, the line would
    end in a drop to zero that is not in the data. Returns the days kept and those left out.
    """
    if len(days) < MIN_DAYS_TO_TRIM:
        return days, []
    typical = sorted(counts[d] for d in days)[len(days) // 2]
    kept, left_out = list(days), []
    for edge in (0, -1):
        if counts[kept[edge]] < PARTIAL_SHARE * typical:
            left_out.append(kept.pop(edge))
    return kept, left_out


def split_periods(days: list[date]) -> list[list[date]]:
    """Sorted days cut into runs where consecutive days are at most MAX_GAP_DAYS apart."""
    periods: list[list[date]] = []
    for day in days:
        if periods and (day - periods[-1][-1]).days <= MAX_GAP_DAYS:
            periods[-1].append(day)
        else:
            periods.append([day])
    return periods


def panel(
    source: str, counts: dict[date, int], first: date, last: date, peak: int, width: int, color: str
) -> str:
    """One SVG line chart of the days from first to last, 0 where a day has no trips."""
    span = (last - first).days
    plot_w, plot_h = width - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(offset: int) -> float:
        return LEFT + (offset / span * plot_w if span else plot_w / 2)

    def y(trips: int) -> float:
        return TOP + plot_h - (trips / peak * plot_h if peak else 0)

    values = [counts.get(first + timedelta(days=k), 0) for k in range(span + 1)]
    points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(values))
    line = (
        f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{points}"/>'
        if span
        else f'<circle cx="{x(0):.1f}" cy="{y(values[0]):.1f}" r="2.5" fill="{color}"/>'
    )
    title = f"{source}: trips per day, {first} to {last}"
    base = TOP + plot_h
    return (
        f'<svg role="img" width="{width}" height="{HEIGHT}" '
        f'viewBox="0 0 {width} {HEIGHT}"><title>{escape(title)}</title>'
        f'<line class="axis" x1="{LEFT}" y1="{base}" x2="{LEFT + plot_w}" y2="{base}"/>'
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{base}"/>'
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{peak:,}</text>'
        f'<text x="{LEFT - 4}" y="{base}" text-anchor="end">0</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 4}">{first}</text>'
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 4}" text-anchor="end">{last}</text>'
        f"{line}</svg>"
    )
