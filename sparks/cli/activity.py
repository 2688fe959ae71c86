"""`sparks activity`: requests, errors, tokens, latency and cost per model / ghost / principal /
backend over a time window, from the observer log (the figures are defined in `activity`)."""

from __future__ import annotations

import json
from typing import Any

import click

from sparks.cli.events import config_log_path, format_cost, since_ts
from sparks.cli.options import config_option, json_option
from sparks.observe.activity import GROUPINGS, ActivityReport, summarize
from sparks.observe.event_log import iter_raw_lines, log_files

MAX_CODES_SHOWN = 2
COLUMNS = (
    # title, row field, right-aligned
    ("requests", "requests", True),
    ("errors", "errors", False),
    ("tokens in", "tokens_in", True),
    ("tokens out", "tokens_out", True),
    ("upstream calls", "upstream_calls", True),
    ("p50 ms", "p50_ms", True),
    ("p95 ms", "p95_ms", True),
    ("ttft p50 ms", "ttft_p50_ms", True),
    ("cost", "cost", True),
)


def errors_text(row: dict[str, Any]) -> str:
    """`3 (upstream_error 2, invalid_value 1)`: the most frequent codes, then `+N` more codes."""
    if not row["errors"]:
        return "0"
    codes = list(row["errors_by_code"].items())
    shown = ", ".join(f"{code} {count}" for code, count in codes[:MAX_CODES_SHOWN])
    more = f", +{len(codes) - MAX_CODES_SHOWN}" if len(codes) > MAX_CODES_SHOWN else ""
    return f"{row['errors']} ({shown}{more})"


def _cell(row: dict[str, Any], field: str) -> str:
    value = row[field]
    if field == "errors":
        return errors_text(row)
    if field == "cost":
        return format_cost(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"
    return f"{value:,}"


def render_table(report: ActivityReport) -> list[str]:
    """The report as aligned text lines: one row per group, then the total."""
    key_title = report.by
    rows = [*report.rows, report.total] if report.rows else []
    table = [[row["key"], *(_cell(row, field) for _, field, _ in COLUMNS)] for row in rows]
    titles = [key_title, *(title for title, _, _ in COLUMNS)]
    widths = [max(len(line[i]) for line in [titles, *table]) for i in range(len(titles))]
    right = [False, *(r for _, _, r in COLUMNS)]

    def fit(cells: list[str]) -> str:
        padded = (
            cell.rjust(width) if is_right else cell.ljust(width)
            for cell, width, is_right in zip(cells, widths, right, strict=True)
        )
        return "  ".join(padded).rstrip()

    lines = [click.style(fit(titles), bold=True)]
    for index, cells in enumerate(table):
        if index == len(table) - 1:
            lines.append(click.style("-" * sum(widths) + "-" * 2 * (len(widths) - 1), dim=True))
            lines.append(click.style(fit(cells), bold=True))
            continue
        line = fit(cells)
        lines.append(click.style(line, fg="red") if rows[index]["errors"] else line)
    return lines


@click.command("activity")
@config_option
@click.option(
    "--since",
    default="24h",
    show_default=True,
    callback=since_ts,
    metavar="WHEN",
    help="Window start: 30m, 2h, 1d or a time (naive = UTC).",
)
@click.option(
    "--by",
    type=click.Choice(GROUPINGS),
    default="model",
    show_default=True,
    help="What to group requests by.",
)
@json_option
def activity(config_path: str | None, since: str, by: str, as_json: bool) -> None:
    """Requests, errors, tokens, latency and cost from the observer log."""
    path = config_log_path(config_path)
    files = log_files(path)
    report = summarize(iter_raw_lines(files), by, since)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    if not files:
        click.echo(f"no events yet: {path} does not exist", err=True)
        return
    when = since.replace("T", " ", 1)
    if not report.rows:
        click.echo(f"no requests since {when}")
    else:
        click.echo(f"requests since {when}, by {by}")
        for line in render_table(report):
            click.echo(line)
    if report.in_flight:
        click.echo(f"({report.in_flight} still in flight or never finished: not counted)")
