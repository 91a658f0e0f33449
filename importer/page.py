"""report.html: the report as a page a person opens from the report folder, offline.

One self-contained file: inline CSS and inline SVG, no script, no external reference (a
Content-Security-Policy meta forbids fetching anything at all), and every text that came from
the input or a server escaped, so an imported name is only ever text. It shows:

- the same counts as summary.json, each in an element ``data-count="<status>"`` (and
  ``rows_total``), whatever statuses the summary has;
- the reasons rows were invalid, failed or duplicates, as a bar chart with the first rows
  each one hit;
- for a run, creates per second over the run against the write limit, 429s and retries, and
  the send span against T* (the time the write limit alone needs);
- how phones were read (region source, number type);
- the first ``MAX_ROWS`` invalid and failed rows (failures.csv has them all);
- the closing lines, versions, and options (fields with ``repr=False``, the API key, never).

``Facts`` collects, batch by batch and bounded, what the report's counts do not keep;
``render`` builds the page. The report writes it (``Report.finish``).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from importer.options import WRITE_PER_MINUTE, PlanOptions, RunOptions
from importer.records import Status
from importer.timeline import Sample

MAX_ROWS = 1_000  # invalid and failed rows shown in the table
EXAMPLES = 5  # first rows shown per reason
_BINS = 400  # at most this many columns in the timeline
_FAILURES = (Status.INVALID.value, Status.FAILED.value)
_SHOWN = ("row_number", "raw_phone", "name", "error_code", "error_message")
#: Every phonenumbers ``PhoneNumberType`` (results.csv's ``number_type``) in words.
NUMBER_TYPES = {
    "fixed_line": "fixed line",
    "mobile": "mobile",
    "fixed_line_or_mobile": "fixed line or mobile",
    "toll_free": "toll free",
    "premium_rate": "premium rate",
    "shared_cost": "shared cost",
    "voip": "internet telephony (VoIP)",
    "personal_number": "personal number",
    "pager": "pager",
    "uan": "universal access number",
    "voicemail": "voicemail",
    "unknown": "unknown type",
}
_COLOURS = {
    "valid": "#2e9d5b",
    "created": "#2e9d5b",
    "updated": "#2a8c9e",
    "exists": "#6c8ebf",
    "unchanged": "#a9b6c8",
    "duplicate_in_file": "#9aa3ad",
    "invalid": "#e08a1e",
    "failed": "#d2453b",
}
_SOURCES = {
    "plus_sign": "plus sign (+…)", "idd_00": "00 prefix", "default": "--default-region",
    "country_code": "first digits, without +",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Context:
    """What the page shows beyond the report's own counts, given by the pipeline."""

    options: PlanOptions | RunOptions | None = None
    write_per_minute: float = WRITE_PER_MINUTE  # the write budget (a plan's guess; a run's limit)
    journal: Path | None = None
    settings: Mapping[str, object] = field(default_factory=dict)  # what a run resolved
    timeline: Sequence[Sample] = ()


class Facts:
    """What the page needs and the counts do not keep, collected batch by batch, bounded."""

    def __init__(self) -> None:
        self.examples: dict[str, list[int]] = {}  # reason -> its first rows
        self.rows: list[tuple[Any, ...]] = []  # the first MAX_ROWS invalid or failed rows
        self.region_sources: Counter[str] = Counter()
        self.number_types: Counter[str] = Counter()

    def add(self, merged: pl.DataFrame) -> None:
        """One batch of the report's rows (validated, merged with what became of them)."""
        firsts = (
            merged.filter(pl.col("error_code").is_not_null())
            .group_by("error_code", maintain_order=True)
            .agg(pl.col("row_number").head(EXAMPLES))
        )
        for code, rows in firsts.iter_rows():
            seen = self.examples.setdefault(code, [])
            seen.extend(rows[: EXAMPLES - len(seen)])
        if len(self.rows) < MAX_ROWS:
            bad = merged.filter(pl.col("status").is_in(_FAILURES))
            self.rows.extend(bad.head(MAX_ROWS - len(self.rows)).select(_SHOWN).iter_rows())
        for counter, column in (
            (self.region_sources, "region_source"),
            (self.number_types, "number_type"),
        ):
            counter.update(dict(merged[column].drop_nulls().value_counts().iter_rows()))


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _bdi(value: object) -> str:
    """Text from the input or a server, isolated: its direction (right-to-left, or forced by
    an override character) never reorders what stands around it."""
    return f"<bdi>{_e(value)}</bdi>"


def _n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def render(
    *,
    summary: Mapping[str, Any],
    counts: Mapping[str, int],
    facts: Facts,
    context: Context,
    closing: str,
) -> str:
    """The page, as text. ``counts``: rows_total and every status the summary has."""
    dry_run = "valid" in counts
    command = "plan" if dry_run else "run"
    options = context.options
    file = options.input.path.name if options is not None else ""
    if options is not None and options.input.sql is not None:
        file = "SQL query"  # its text and URI are in the journal and the closing lines
    parts = [
        _head(f"kirim-import {command}{': ' + file if file else ''}"),
        "<main>",
        _header(command, file, summary),
        _counts(counts),
        _by_account(summary.get("accounts")),
        _reasons(summary.get("reasons", {}), facts.examples),
    ]
    if summary.get("labels"):
        parts.append(_labels(summary["labels"]))
    if not dry_run:
        writes = counts.get("created", 0) + counts.get("updated", 0)
        parts.append(_timeline(context.timeline, context.write_per_minute, writes))
    parts += [
        _phones(facts),
        _rows(facts.rows, sum(counts.get(s, 0) for s in _FAILURES)),
        _details(summary, counts, context, closing),
        "</main></body></html>\n",
    ]
    return "\n".join(parts)


_CSS = """
:root{--fg:#1d2430;--muted:#5b6675;--line:#d8dee6}
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:var(--fg);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1060px;margin:0 auto;padding:20px}
header{margin:0 0 14px}
h1{font-size:22px;margin:0 0 6px}
h1 .file{font-weight:400;color:var(--muted)}
h2{font-size:16px;margin:0 0 10px}
h3{font-size:14px;margin:6px 0}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 18px;
 margin:0 0 14px}
.verdict{display:inline-block;padding:2px 12px;border-radius:12px;font-weight:600}
.ok{background:#e2f3e8;color:#145c2c}.warn{background:#fff0d4;color:#774800}
.bad{background:#fde1df;color:#8a1c14}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:0 0 12px}
.card{border:1px solid var(--line);border-left:6px solid var(--c);border-radius:6px;
 padding:6px 12px;min-width:118px}
.card .n{display:block;font-size:24px;font-weight:650;font-variant-numeric:tabular-nums}
.card .k{color:var(--muted)}
.note{color:var(--muted);margin:8px 0 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;background:#f7f9fb}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.cell{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;
 overflow-wrap:anywhere}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>div{flex:1 1 300px}
svg{display:block;width:100%;height:auto}
svg text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#1d2430}
svg text.small{font-size:11px;fill:#5b6675}
pre{white-space:pre-wrap;background:#f4f6f9;padding:10px;border-radius:6px;margin:0 0 10px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
@media print{
 body{background:#fff;font-size:11px}main{max-width:none;padding:0}
 section{border:none;border-top:1px solid var(--line);border-radius:0;padding:8px 0;
  break-inside:avoid}
 section.long{break-inside:auto}tr{break-inside:avoid}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
@page{margin:14mm}
"""


def _head(title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style></head><body>"
    )


def _header(command: str, file: str, summary: Mapping[str, Any]) -> str:
    code = summary.get("exit_code")
    if summary.get("stopped"):
        verdict, tone = f"Stopped early: {summary['stopped']}", "bad"
    elif code == 0:
        verdict, tone = "Every row is fine", "ok"
    elif summary.get("labels", {}).get("failed") and not any(
        summary.get(s) for s in ("invalid", "failed")
    ):
        verdict, tone = "Some labels could not be attached: see Labels", "warn"
    else:
        verdict, tone = "Some rows are invalid or failed: see failures.csv", "warn"
    return (
        f'<header><h1>kirim-import {_e(command)} <span class="file">{_bdi(file)}</span></h1>'
        f'<span class="verdict {tone}">exit {_e(code)}: {_bdi(verdict)}</span></header>'
    )


def _counts(counts: Mapping[str, int]) -> str:
    cards = "".join(
        f'<div class="card" style="--c:{_COLOURS.get(k, "#4a5563")}">'
        f'<span class="n" data-count="{_e(k)}">{int(v)}</span>'
        f'<span class="k">{_e("rows" if k == "rows_total" else k.replace("_", " "))}</span></div>'
        for k, v in counts.items()
    )
    total = counts.get("rows_total", 0)
    bar, x = [], 0.0
    for k, v in counts.items():
        if k == "rows_total" or not v:
            continue
        w = 1000 * v / total
        bar.append(
            f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="22" '
            f'fill="{_COLOURS.get(k, "#4a5563")}"><title>{_e(k)}: {v}</title></rect>'
        )
        x += w
    svg = (
        '<svg class="chart" id="status-bar" viewBox="0 0 1000 22" preserveAspectRatio="none" '
        f'role="img" aria-label="rows by status">{"".join(bar)}</svg>'
        if bar
        else ""
    )
    return f'<section id="counts"><h2>Rows</h2><div class="cards">{cards}</div>{svg}</section>'


def _by_account(accounts: Mapping[str, Mapping[str, int]] | None) -> str:
    """The counts per account (a file with an account column), each cell in an element
    ``data-account-count="<account> <status>"``; nothing for a file without one."""
    if not accounts:
        return ""
    statuses = list(next(iter(accounts.values())))
    head = "".join(f'<th class="num">{_e(k.replace("_", " "))}</th>' for k in statuses)
    body = "".join(
        f"<tr><td>{_bdi(account or '(none)')}</td>"
        + "".join(
            f'<td class="num" data-account-count="{_e(account)} {_e(k)}">{int(counts.get(k, 0))}'
            "</td>"
            for k in statuses
        )
        + "</tr>"
        for account, counts in accounts.items()
    )
    return (
        '<section id="accounts"><h2>Rows per account</h2><table><thead><tr><th>account</th>'
        f"{head}</tr></thead><tbody>{body}</tbody></table></section>"
    )


def _reasons(reasons: Mapping[str, int], examples: Mapping[str, list[int]]) -> str:
    head = '<section id="reasons"><h2>Why rows were not imported</h2>'
    if not reasons:
        return head + "<p>No row was invalid, failed, or a duplicate.</p></section>"
    ordered = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    top, step, label_w, bar_w = max(reasons.values()), 44, 240, 600
    rows = []
    for i, (code, n) in enumerate(ordered):
        y = i * step
        w = max(2.0, bar_w * n / top)
        first = examples.get(code, [])
        more = "…" if n > len(first) else ""
        hit = f"first rows: {', '.join(str(r) for r in first)}{more}" if first else ""
        rows.append(
            f'<text x="0" y="{y + 15}">{_e(code)}</text>'
            f'<text class="small" x="0" y="{y + 32}">{_e(hit)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="16" rx="2" '
            f'fill="{"#9aa3ad" if code == "duplicate_in_file" else "#e08a1e"}">'
            f"<title>{_e(code)}: {n}</title></rect>"
            f'<text x="{label_w + w + 8:.1f}" y="{y + 16}">{n:,}</text>'
        )
    height = step * len(ordered)
    return (
        f'{head}<svg class="chart" id="reasons-chart" viewBox="0 0 1000 {height}" role="img" '
        f'aria-label="rows by reason">{"".join(rows)}</svg></section>'
    )


def _labels(labels: Mapping[str, Any]) -> str:
    """The wanted labels: attached, already in place, failed by reason (summary.json's
    ``labels``)."""
    cells = "".join(
        f'<div class="card" style="--c:{colour}"><span class="n" data-labels="{_e(key)}">'
        f'{int(labels.get(key, 0))}</span><span class="k">{_e(name)}</span></div>'
        for key, name, colour in (
            ("attached", "attached", "#2e9d5b"), ("already_in_place", "already in place",
            "#a9b6c8"), ("failed", "failed", "#d2453b"),
        )
    )  # fmt: skip
    reasons = labels.get("failed_by_reason", {})
    rows = "".join(
        f'<tr><td>{_e(k)}</td><td class="num" data-label-reason="{_e(k)}">{int(v):,}</td></tr>'
        for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    failed = (
        f'<table><tr><th>why a label was not attached</th><th class="num">labels</th></tr>'
        f'{rows}</table><p class="note">Each failed row says which label and why in its '
        "<code>warning</code> (results.csv); the next run tries again, and the exit code is 1."
        "</p>"
        if rows
        else "<p>Every wanted label is on its contact.</p>"
    )
    return (
        '<section id="labels"><h2>Labels</h2><p class="note">Per contact and label wanted '
        f'(--label and the labels column).</p><div class="cards">{cells}</div>{failed}</section>'
    )


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [step * i for i in range(math.ceil(top / step - 1e-9) + 1)]


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    """The ticks as text, with as few decimals as show each exactly, so no two read the same
    (ticks 0.05 s apart are 0.00, 0.05, 0.10, ..., never 0.0, 0.1, 0.1, ...)."""
    decimals = next(
        (d for d in range(7) if all(abs(round(t, d) - t) < 1e-9 * max(1.0, t) for t in ticks)), 6
    )
    return [f"{t:,.{decimals}f}" for t in ticks]


#: The write limit is drawn on the chart when it is at most this many times the fastest
#: rate the run reached; above, the chart is scaled to the run and the limit told in words.
LIMIT_IN_VIEW = 2.0


def _bins(samples: Sequence[Sample]) -> list[tuple[float, float, int, int, int]]:
    """(start, end, creates, 429s, retries) per interval, merged to at most ``_BINS``."""
    per = max(1, math.ceil((len(samples) - 1) / _BINS))
    out = []
    for i in range(0, len(samples) - 1, per):
        a, b = samples[i], samples[min(i + per, len(samples) - 1)]
        out.append(
            (a.t, b.t, b.created - a.created, b.http_429 - a.http_429, b.retries - a.retries)
        )
    return out


def _timeline(samples: Sequence[Sample], per_minute: float, writes: int) -> str:
    head = '<section id="timeline"><h2>The run over time</h2>'
    bins = [b for b in _bins(samples) if b[1] > b[0]]
    if not bins:
        return head + "<p>Nothing was sent.</p></section>"
    limit = per_minute / 60
    rates = [c / (t1 - t0) for t0, t1, c, _, _ in bins]
    end = bins[-1][1]
    peak = max(rates)
    shown_limit = limit <= LIMIT_IN_VIEW * peak  # else scaled to what happened, not the limit
    y_ticks = _ticks(max(peak, limit if shown_limit else 0.0) * 1.05)
    x_ticks = _ticks(end, 8)
    left, right, top, base = 60, 985, 24, 224
    x_max, y_max = x_ticks[-1], y_ticks[-1]

    def x(t: float) -> float:
        return left + (right - left) * t / x_max

    def y(v: float) -> float:
        return base - (base - top) * v / y_max

    area = [f"M{x(bins[0][0]):.1f},{base}"]
    for (t0, t1, _, _, _), r in zip(bins, rates, strict=True):
        area.append(f"L{x(t0):.1f},{y(r):.1f}L{x(t1):.1f},{y(r):.1f}")
    area.append(f"L{x(end):.1f},{base}Z")
    out = [
        f'<path d="{"".join(area)}" fill="#2e9d5b" fill-opacity="0.75" stroke="#1f7a44" '
        'stroke-width="1"/>',
        f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#5b6675"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#5b6675"/>',
    ]
    for v, label in zip(y_ticks, _tick_labels(y_ticks), strict=True):
        out.append(
            f'<text class="small" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" '
            f'data-tick="y">{label}</text>'
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{right}" y2="{y(v):.1f}" stroke="#d8dee6" '
            'stroke-width="0.5"/>'
        )
    for t, label in zip(x_ticks, _tick_labels(x_ticks), strict=True):
        out.append(
            f'<text class="small" x="{x(t):.1f}" y="{base + 16}" text-anchor="middle" '
            f'data-tick="x">{label} s</text>'
        )
    if shown_limit:
        out.append(
            f'<line id="write-limit" x1="{left}" y1="{y(limit):.1f}" x2="{right}" '
            f'y2="{y(limit):.1f}" stroke="#1d2430" stroke-width="1.5" stroke-dasharray="6 4"/>'
            f'<text x="{right}" y="{y(limit) - 5:.1f}" text-anchor="end">write limit '
            f"{_n(limit)}/s</text>"
        )
    above = (
        ""
        if shown_limit
        else f'<p id="write-limit-above">The write limit, {_n(limit)}/s, is far above what the '
        f"run reached (at most {_n(peak)}/s): the chart is scaled to the run.</p>"
    )
    # two lanes under the axis, one bar per interval: 429s (red) and retries (orange)
    lanes = ((base + 44, 3, "#d2453b", "429s"), (base + 70, 4, "#e08a1e", "retries"))
    for lane, i, colour, name in lanes:
        worst = max(max(b[i] for b in bins), 1)
        out.append(
            f'<text class="small" x="{left - 6}" y="{lane}" text-anchor="end">{name}</text>'
            f'<line x1="{left}" y1="{lane}" x2="{right}" y2="{lane}" stroke="#d8dee6"/>'
        )
        for b in bins:
            if b[i]:
                h = 3 + 15 * b[i] / worst
                out.append(
                    f'<rect x="{x(b[0]):.1f}" y="{lane - h:.1f}" '
                    f'width="{max(1.0, x(b[1]) - x(b[0]) - 0.5):.1f}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{b[i]} {name}, {b[0]:.0f}-{b[1]:.0f} s</title></rect>'
                )
    span, note = _span(bins, per_minute, writes)
    if span is not None:
        start, stop, t_star = span
        marks = [(start, "first"), (stop, "last")]
        if t_star > 0:
            marks.append((start + t_star, "T*"))
        for t, label in marks:
            out.append(
                f'<line x1="{x(t):.1f}" y1="{top - 8}" x2="{x(t):.1f}" y2="{base}" '
                f'stroke="#3d5a80" stroke-width="1.5" stroke-dasharray="3 3">'
                f"<title>{_e(label)} at {t:.1f} s</title></line>"
                f'<text class="small" x="{x(t) + 3:.1f}" y="{top - 10}">{_e(label)}</text>'
            )
    svg = (
        f'<svg class="chart" id="timeline-chart" viewBox="0 0 1000 {base + 78}" role="img" '
        f'aria-label="creates per second, 429s and retries over the run">{"".join(out)}</svg>'
    )
    legend = (
        '<p class="note">Green: rows created per second (sampled every second). Dashed: the '
        "write limit (when it is near the run's rates; the chart is scaled to the run). Red: "
        "429 answers; orange: retries, per interval. Dotted: the first and last create, and "
        "T*: when the write limit alone would have let the last one go.</p>"
    )
    return f"{head}{svg}{above}<p>{_e(note)}</p>{legend}</section>"


def _span(
    bins: Sequence[tuple[float, float, int, int, int]], per_minute: float, writes: int
) -> tuple[tuple[float, float, float] | None, str]:
    """(first create, last create, T*) to within a sample, and the sentence that says it."""
    created = [b for b in bins if b[2]]
    if not created:
        return None, "No contact was created."
    start, stop = created[0][0], created[-1][1]
    rate = per_minute / 60
    t_star = max(0.0, writes - per_minute) / rate
    span = stop - start
    if t_star <= 0:
        return (start, stop, 0.0), (
            f"{writes:,} writes fit in the bucket's first burst of {_n(per_minute)}, so the "
            f"write limit alone needs no time (T* = 0): creates took about {span:.0f} s, "
            "bounded by round trips."
        )
    return (start, stop, t_star), (
        f"Creates ran for about {span:.0f} s (first to last, to within a second). The write "
        f"limit of {_n(per_minute)}/min alone needs T* = {t_star:.0f} s for {writes:,} writes "
        f"(after the first burst of {_n(per_minute)}): {span / t_star:.2f} T*."
    )


def _bars_table(title: str, counter: Counter[str], labels: Mapping[str, str]) -> str:
    total = sum(counter.values())
    if not total:
        return f"<div><h3>{_e(title)}</h3><p>No phone was read.</p></div>"
    rows = "".join(
        f'<tr><td>{_bdi(labels.get(k, k.replace("_", " ")))}</td><td class="num">{v:,}</td>'
        f'<td class="num">{100 * v / total:.1f}%</td></tr>'
        for k, v in counter.most_common()
    )
    return (
        f'<div><h3>{_e(title)}</h3><table><tr><th></th><th class="num">rows</th>'
        f'<th class="num">share</th></tr>{rows}</table></div>'
    )


def _phones(facts: Facts) -> str:
    return (
        '<section id="phones"><h2>How phones were read</h2><div class="cols">'
        + _bars_table("Country taken from", facts.region_sources, _SOURCES)
        + _bars_table("Number type", facts.number_types, NUMBER_TYPES)
        + "</div></section>"
    )


def _rows(rows: Sequence[tuple[Any, ...]], total: int) -> str:
    head = '<section id="rows" class="long"><h2>Invalid and failed rows</h2>'
    if not rows:
        return head + "<p>None.</p></section>"
    body = "".join(
        "<tr>"
        + f'<td class="num">{_e(r[0])}</td>'
        + "".join(f'<td class="cell">{_bdi("" if v is None else v)}</td>' for v in r[1:3])
        + "".join(f"<td>{_bdi('' if v is None else v)}</td>" for v in r[3:])
        + "</tr>"
        for r in rows
    )
    shown = (
        f"The first {len(rows):,} of {total:,}; failures.csv has them all."
        if total > len(rows)
        else f"All {total:,}; failures.csv has them with the input's own columns."
    )
    return (
        f'{head}<table><thead><tr><th class="num">row</th><th>phone cell</th><th>name</th>'
        f"<th>error</th><th>message</th></tr></thead><tbody>{body}</tbody></table>"
        f'<p class="note">{_e(shown)}</p></section>'
    )


def _describe(options: object) -> dict[str, str]:
    """The options as a person set them; a field with ``repr=False`` (the key) never shows."""
    out: dict[str, str] = {}
    for f in dataclasses.fields(options):  # type: ignore[arg-type]
        if not f.repr:
            continue
        value = getattr(options, f.name)
        if dataclasses.is_dataclass(value):
            out.update(_describe(value))
        elif isinstance(value, Mapping):
            out[f.name] = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, tuple):
            out[f.name] = ", ".join(map(str, value)) or "-"
        else:
            out[f.name] = "-" if value is None else str(value)
    return out


def _plain(value: object) -> object:
    if value is None:
        return "-"
    if isinstance(value, Mapping):  # a summary object (``guards``): its fields in a line
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "-"
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _details(
    summary: Mapping[str, Any], counts: Mapping[str, int], context: Context, closing: str
) -> str:
    figures = {
        k: v for k, v in summary.items() if k not in counts and k not in ("reasons", "labels")
    }
    options = _describe(context.options) if context.options is not None else {}
    blocks: list[tuple[str, Mapping[str, object]]] = [
        ("Figures", figures),
        ("Resolved", dict(context.settings)),
        ("Options", options),
    ]
    dls = "".join(
        f"<div><h3>{_e(title)}</h3><dl>"
        + "".join(f"<dt>{_e(k)}</dt><dd>{_bdi(_plain(v))}</dd>" for k, v in items.items())
        + "</dl></div>"
        for title, items in blocks
        if items
    )
    return (
        f'<section id="details"><h2>Details</h2><pre id="closing">{_e(closing)}</pre>'
        f'<div class="cols">{dls}</div></section>'
    )
