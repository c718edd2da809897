"""The building blocks of the report's HTML: values as text, tables, notes and sections.

Every value from the warehouse goes through `cell`, which escapes it; only the markup built
here and in the sections is wrapped in `Html`. :mod:`etl.report.html` puts the sections
together; :mod:`etl.report.model` builds the model section from the same blocks.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from html import escape
from typing import Any

SECTIONS = {
    "last-run": "The last run",
    "failed-files": "Failed files",
    "quarantine": "Quarantine",
    "checks": "Batch checks",
    "control-totals": "Control totals",
    "matches": "Cross-silo matches",
    "curated": "Curated trips",
    "history": "Run history",
    "model": "ETA and fare models",
}
RAW_MAX_CHARS = 2000  # an example record longer than this is cut


class Html(str):
    """Markup built by this module: `cell` passes it through unescaped."""


# -- values ---------------------------------------------------------------------------------------


def fmt(value: Any) -> str:
    """A warehouse value as text for a reader: thousands separators, UTC times, a dash for null."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    return str(value)


def cell(value: Any) -> str:
    """Escaped text of a value, or the markup itself when it is Html."""
    return value if isinstance(value, Html) else escape(fmt(value))


def usd(value: float | None) -> str:
    return "—" if value is None else f"${value:,.2f}"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.1%}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} s"


def metres(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} m"


def observed(value: str | None) -> str:
    """An observed value of a check, numbers to 4 significant digits: quantiles as
    `p10 0.9196, p50 2.71, ...`, other JSON with its numbers rounded, anything else as is."""
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        pass
    try:
        parsed = json.loads(value) if value is not None else None
    except ValueError:
        return fmt(value)
    if isinstance(parsed, dict) and {"quantiles", "values"} <= parsed.keys():
        pairs = zip(parsed["quantiles"], parsed["values"], strict=False)
        return ", ".join(f"p{round(q * 100):d} {observed(v)}" for q, v in pairs)
    return json.dumps(_round(parsed), ensure_ascii=False) if parsed is not None else fmt(value)


def _round(value: Any) -> Any:
    """Floats to 4 significant digits, inside lists and dicts too."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, list):
        return [_round(v) for v in value]
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    return value


def raw_record(raw: str | None) -> Html:
    """A quarantined record's raw JSON, compact and escaped, in a <pre>."""
    try:
        parsed = json.loads(raw) if raw is not None else None
    except ValueError:
        parsed = raw
    text = parsed if isinstance(parsed, str) else json.dumps(parsed, ensure_ascii=False)
    if len(text) > RAW_MAX_CHARS:
        text = text[:RAW_MAX_CHARS] + " …"
    return Html(f'<pre class="raw">{escape(text)}</pre>')


def badge(text: str, kind: str) -> Html:
    """A coloured label: kind is ok, warn or bad."""
    return Html(f'<span class="badge {kind}">{escape(text)}</span>')


def yes_no(flag: bool | None) -> Html:
    """A green yes or a red no."""
    return badge("yes", "ok") if flag else badge("no", "bad")


def status_badge(status: str | None) -> Html:
    kind = {"published": "ok", "running": "warn", "partial": "warn"}.get(status or "", "bad")
    return badge(status or "unknown", kind)


# -- building blocks ------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> Html:
    """An HTML table; numbers are right-aligned, a row may carry a class (bad, warn).

    Each cell carries its column's name (`data-label`): on a narrow screen a row is shown as a
    card of labelled lines (see CSS)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    labels = [escape(h, quote=True) for h in headers]
    body = []
    for index, row in enumerate(rows):
        css = classes[index] if classes else ""
        cells = "".join(
            f'<td class="num" data-label="{label}">{cell(v)}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f'<td data-label="{label}">{cell(v)}</td>'
            for label, v in zip(labels, row, strict=True)
        )
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return Html(
        f'<table class="rows"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )


def key_values(rows: list[list[Any]]) -> Html:
    """A two-column table of labels and values, without a header."""
    body = "".join(f"<tr><th>{escape(k)}</th><td>{cell(v)}</td></tr>" for k, v in rows)
    return Html(f'<table class="kv"><tbody>{body}</tbody></table>')


def note(text: str) -> Html:
    return Html(f'<p class="note">{escape(text)}</p>')


def section(key: str, *parts: str) -> Html:
    return Html(f'<section id="{key}"><h2>{escape(SECTIONS[key])}</h2>{"".join(parts)}</section>')
