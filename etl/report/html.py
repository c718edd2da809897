"""The data-quality report as one self-contained HTML file: inline CSS, inline SVG, no scripts.

`render` turns the dict of `etl.report.data.collect` into HTML, one section each, built from
the blocks of :mod:`etl.report.blocks` (which escape every value from the warehouse).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any

from etl.report.blocks import (
    SECTIONS,
    Html,
    badge,
    fmt,
    key_values,
    metres,
    note,
    observed,
    percent,
    raw_record,
    seconds,
    section,
    status_badge,
    table,
    usd,
    yes_no,
)
from etl.report.chart import daily_charts
from etl.report.model import model_section

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1d232a; margin: 0 auto; max-width: 1600px; padding: 0 16px 48px; }
h1 { font-size: 22px; margin: 24px 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d5dbe1; padding-bottom: 4px; }
nav a { margin-right: 12px; display: inline-block; }
table.kv th { background: none; font-weight: normal; color: #5a6570; }
p.meta, p.note { color: #5a6570; margin: 4px 0 8px; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums;
        max-width: 100%; }
/* break-word, not anywhere: a long path still breaks, but a short word is not counted as
   breakable when the table sizes its columns, so `source` is never split into `sourc e`. */
th, td { border: 1px solid #d5dbe1; padding: 3px 8px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: #f1f4f7; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
tr.bad td { background: #fde2e2; }
tr.warn td { background: #fff4d6; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; font-weight: 600;
         white-space: nowrap; }
.badge.ok { background: #dcf2e3; color: #14532d; }
.badge.bad { background: #fde2e2; color: #7f1d1d; }
.badge.warn { background: #fff4d6; color: #713f12; }
.badge.plain { background: #eef1f4; color: #33404d; font-weight: normal; }
pre.raw { white-space: pre-wrap; word-break: break-all; background: #f6f8fa; margin: 0;
          padding: 6px 8px; min-width: 24em; max-width: 760px; font-size: 12px; }
figure.chart { margin: 12px 0; display: flex; flex-wrap: wrap; gap: 4px 12px; }
figure.chart figcaption { font-weight: 600; flex-basis: 100%; }
figure.chart svg { overflow: visible; max-width: 100%; height: auto; }
svg text { font-size: 10px; fill: #5a6570; }
svg line.axis { stroke: #9aa5b1; stroke-width: 1; }
/* A phone or a narrow window: each row of a table becomes a card of `label: value` items
   that wrap, so nothing scrolls sideways and a raw record gets the whole width. */
@media (max-width: 760px) {
  table.rows, table.rows tbody { display: block; }
  table.rows thead { display: none; }
  table.rows tr { display: flex; flex-wrap: wrap; gap: 0 14px; border: 1px solid #d5dbe1;
                  margin: 0 0 6px; padding: 3px 6px; }
  table.rows td { display: block; border: 0; padding: 1px 0; text-align: left;
                  overflow-wrap: anywhere; }
  table.rows td::before { content: attr(data-label) ": "; color: #5a6570; }
  table.rows td:has(pre.raw) { flex-basis: 100%; }
  tr.bad { background: #fde2e2; }
  tr.warn { background: #fff4d6; }
  pre.raw { min-width: 0; }
}
"""


def run_label(run_id: str | None, started_at: datetime | None = None) -> str:
    if run_id is None:
        return "—"
    return f"run {run_id}" + (f" (started {fmt(started_at)})" if started_at else "")


# -- sections -------------------------------------------------------------------------------------


def last_run_section(run: dict[str, Any] | None) -> Html:
    """Section 1: what the newest run did."""
    if run is None:
        return section("last-run", note("No runs yet: run `etl run` to load the warehouse."))
    took = None
    if run["started_at"] and run["finished_at"]:
        took = run["finished_at"] - run["started_at"]
    rows = [
        ["run", run["run_id"]],
        ["started", run["started_at"]],
        ["finished", run["finished_at"]],
        ["took", str(took - timedelta(microseconds=took.microseconds)) if took else None],
        ["status", status_badge(run["status"])],
        ["exit code", run["exit_code"]],
        ["published", yes_no(run["published"])],
        ["files loaded", run["files_loaded"]],
        ["files unchanged", run["files_skipped"]],
        ["files failed", run["files_failed"]],
        ["rows read", run["rows_read"]],
        ["rows staged", run["rows_staged"]],
        ["rows flagged (staged with a flag)", run["rows_flagged"]],
        ["rows quarantined", run["rows_quarantined"]],
        ["message", run["message"]],
    ]
    return section("last-run", key_values(rows))


def failed_files_section(failed: dict[str, Any]) -> Html:
    """Section 2: files that could not be read or failed their run's audit."""
    files = failed["files"]
    scope = f"In the last {failed['runs']} runs"
    if not files:
        return section("failed-files", note(f"No file failed {scope.lower()}."))
    rows = [
        [f["run_id"], f["source"], f["path"], f["status"], f["rows_read"], f["reason"]]
        for f in files
    ]
    classes = ["bad" if f["status"] == "failed" else "warn" for f in files]
    return section(
        "failed-files",
        note(f"{scope}: {len(files):,} file(s) not published."),
        table(["run", "source", "file", "status", "rows read", "reason"], rows, classes),
    )


def quarantine_section(q: dict[str, Any]) -> Html:
    """Section 3: quarantined rows per source and reason, with an example per top reason."""
    by_reason = q["by_source_and_reason"]
    if not by_reason:
        return section("quarantine", note("The quarantine is empty."))
    counts = table(
        ["source", "reason", "rows (all runs)", "rows (last run)"],
        [[r["source"], r["reason"], r["rows"], r["rows_last_run"]] for r in by_reason],
    )
    examples = table(
        ["source", "reason", "rows", "file", "line", "raw record"],
        [
            [e["source"], e["reason"], e["rows"], e["file"], e["line"], raw_record(e["raw"])]
            for e in q["examples"]
        ],
    )
    return section(
        "quarantine",
        note(
            "A row with several reasons counts under each. Rows of every run on record count, "
            "so a file loaded again counts again."
        ),
        counts,
        Html("<h3>An example for each of the top reasons</h3>"),
        note("The first line of the newest run with that reason, as it was read."),
        examples,
    )


def checks_section(c: dict[str, Any]) -> Html:
    """Section 4: batch checks, failures first, failed errors in red."""
    if not c["checks"]:
        return section("checks", note("No batch checks on record."))
    which = run_label(c["run_id"])
    if not c["is_last_run"]:
        which += " — the last run checked no batch (no new or changed files)"
    summary = (
        f"{which}: {len(c['checks']):,} check(s), {c['failed_errors']:,} failed error(s), "
        f"{c['failed_warnings']:,} failed warning(s)."
    )
    rows, classes = [], []
    for r in c["checks"]:
        # A severity is coloured only when its check failed: a passing error check is not red.
        failed_kind = "bad" if r["severity"] == "error" else "warn"
        severity = badge(r["severity"], "plain" if r["success"] else failed_kind)
        outcome = badge("pass", "ok") if r["success"] else badge("FAIL", "bad")
        value = observed(r["observed_value"])
        rows.append([r["source"], r["expectation"], severity, outcome, value])
        failed = not r["success"]
        classes.append(("bad" if r["severity"] == "error" else "warn") if failed else "")
    return section(
        "checks",
        note(summary),
        table(["source", "expectation", "severity", "result", "observed"], rows, classes),
    )


def control_totals_section(t: dict[str, Any]) -> Html:
    """Section 5: rows and fares from the files to curated.trips, per source."""
    if not t["sources"]:
        return section("control-totals", note("No published run yet: nothing to reconcile."))
    verdict = badge("reconciles", "ok") if t["reconciles"] else badge("does not reconcile", "bad")
    headers = [
        "source", "read", "quarantined", "staged", "excluded", "excluded because", "merged",
        "curated", "fare staged", "fare excluded", "fare merged", "fare curated", "reconciles",
    ]  # fmt: skip
    rows = [
        [
            s["source"],
            s["rows_read"],
            s["rows_quarantined"],
            s["rows_staged"],
            s["rows_excluded"],
            s["excluded_causes"],
            s["rows_merged"],
            s["rows_curated"],
            usd(s["fare_staged_usd"]),
            usd(s["fare_excluded_usd"]),
            usd(s["fare_merged_usd"]),
            usd(s["fare_curated_usd"]),
            yes_no(s["reconciles"]),
        ]
        for s in t["sources"]
    ]
    classes = ["" if s["reconciles"] else "bad" for s in t["sources"]]
    return section(
        "control-totals",
        Html(f'<p class="meta">{escape(run_label(t["run_id"], t["started_at"]))}: {verdict}</p>'),
        note(
            "read = quarantined + staged; staged = excluded + merged (kept once under the other "
            "silo) + curated, for rows and for fares."
        ),
        table(headers, rows, classes),
    )


def matches_section(m: dict[str, Any]) -> Html:
    """Section 6: how many trips two silos both logged, and how close the pairs are."""
    if not m["pairs"]:
        return section("matches", note("No cross-silo matches on record."))
    rows = [
        [
            f"{p['left_source']} ↔ {p['right_source']}",
            p["matches"],
            seconds(p["time_gap_median_s"]),
            seconds(p["time_gap_p95_s"]),
            seconds(p["time_gap_max_s"]),
            metres(p["distance_gap_median_m"]),
            metres(p["distance_gap_p95_m"]),
            metres(p["distance_gap_max_m"]),
            f"{p['score_median']:.3f}" if p["score_median"] is not None else None,
        ]
        for p in m["pairs"]
    ]
    headers = [
        "sources", "matches", "time gap median", "time gap p95", "time gap max",
        "distance gap median", "distance gap p95", "distance gap max", "median score",
    ]  # fmt: skip
    return section(
        "matches",
        note(f"{run_label(m['run_id'])}: {m['total']:,} trip(s) logged by two silos."),
        table(headers, rows),
    )


def curated_section(c: dict[str, Any]) -> Html:
    """Section 7: published trips per source, the flagged share, and daily volume charts."""
    if not c["published"]:
        return section("curated", note("Nothing published yet: curated.trips does not exist."))
    if not c["sources"]:
        return section("curated", note("curated.trips is empty."))
    rows = [
        [
            s["source"],
            s["trips"],
            s["flagged"],
            percent(s["flagged_share"]),
            s["first_day"],
            s["last_day"],
        ]
        for s in c["sources"]
    ]
    order = [s["source"] for s in c["sources"]]
    return section(
        "curated",
        note(f"{c['trips']:,} published trip(s). A flagged trip passed its checks with a flag."),
        table(["source", "trips", "flagged", "flagged share", "first day", "last day"], rows),
        Html("<h3>Trips per day (local time)</h3>"),
        Html(daily_charts(c["daily"], order)) if c["daily"] else note("No daily volumes."),
    )


def history_section(runs: list[dict[str, Any]]) -> Html:
    """Section 8: the newest runs, like `etl status`."""
    if not runs:
        return section("history", note("No runs yet."))
    rows = [
        [
            r["run_id"],
            r["started_at"],
            status_badge(r["status"]),
            r["exit_code"],
            f"{r['files_loaded'] or 0:,} new, {r['files_skipped'] or 0:,} same, "
            f"{r['files_failed'] or 0:,} failed",
            r["rows_read"],
            r["rows_staged"],
            r["rows_flagged"],
            r["rows_quarantined"],
            "; ".join(r["failed_checks"]) or "—",
            r["published"],
            r["message"],
        ]
        for r in runs
    ]
    headers = [
        "run", "started", "status", "exit", "files", "read", "staged", "flagged",
        "quarantined", "failed checks", "published", "message",
    ]  # fmt: skip
    return section("history", table(headers, rows))


# -- the page -------------------------------------------------------------------------------------


def summary_line(data: dict[str, Any]) -> Html:
    """Badges at the top: the last run's status, whether it published, whether totals add up."""
    run = data["last_run"]
    if run is None:
        return Html('<p class="meta">No runs yet.</p>')
    published = "" if run["published"] else badge("nothing published", "bad")
    reconciles = data["control_totals"]["reconciles"]
    totals = (
        badge("no published control totals", "warn")
        if reconciles is None
        else badge("totals reconcile", "ok")
        if reconciles
        else badge("totals do not reconcile", "bad")
    )
    return Html(
        f'<p class="meta">Last run {escape(run["run_id"])}: {status_badge(run["status"])} '
        f"{published} {totals}</p>"
    )


def render(data: dict[str, Any]) -> str:
    """The whole report as one HTML document."""
    nav = " ".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    body = [
        last_run_section(data["last_run"]),
        failed_files_section(data["failed_files"]),
        quarantine_section(data["quarantine"]),
        checks_section(data["checks"]),
        control_totals_section(data["control_totals"]),
        matches_section(data["matches"]),
        curated_section(data["curated"]),
        history_section(data["history"]),
        model_section(data.get("model")),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Data-quality report</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
        "<h1>Data-quality report</h1>\n"
        f'<p class="meta">Warehouse {escape(data["warehouse"])}, '
        f"generated {escape(fmt(data['generated_at']))}</p>\n"
        f"{summary_line(data)}\n<nav>{nav}</nav>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def write_report(data: dict[str, Any], out: Path) -> Path:
    """Render the report into `out` (its folder is created). Returns `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data), encoding="utf-8")
    return out
