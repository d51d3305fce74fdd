"""What the commands print: one JSON document with ``--json``, Rich tables and text without.

Markup and emoji codes are off on both consoles: names, reasons and messages are printed exactly
as they are.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import typer
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = ["arrow_rows", "cell", "emit", "err", "fields", "out", "plain", "print_json",
           "records", "simple_table"]

out = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def emit(as_json: bool, data: Any, human: RenderableType) -> None:
    """Print ``data`` as JSON, or ``human`` for a person."""
    if as_json:
        print_json(data)
    else:
        out.print(human, soft_wrap=isinstance(human, str))


def cell(value: Any) -> str:
    """A value as one table cell: times in UTC to the second, floats to 3 digits, ``-`` for
    nothing."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Mapping):
        return "\n".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value) or "-"
    return str(value)


def simple_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                 empty: str = "Nothing to show.") -> RenderableType:
    """A table of ``rows``, or the text ``empty`` when there are none."""
    table = Table(header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")  # wrap long values, never cut them
    for row in rows:
        table.add_row(*(cell(v) for v in row))
    return table if table.row_count else Text(empty)


def plain(value: Any) -> Any:
    """A value as JSON can hold it: times in ISO 8601 (UTC), ids as text, NaN as null."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).isoformat()
    if isinstance(value, date | uuid.UUID):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def records(table: pa.Table) -> list[dict[str, Any]]:
    """The rows of an Arrow table as JSON-ready dictionaries."""
    return [{k: plain(v) for k, v in row.items()} for row in table.to_pylist()]


def arrow_rows(table: pa.Table, columns: Sequence[str] | None = None, *, limit: int = 50,
               empty: str = "No rows.") -> RenderableType:
    """The first ``limit`` rows of an Arrow table, saying how many more there are."""
    columns = list(columns or table.column_names)
    shown = table.slice(0, limit)
    values = [shown.column(i).to_pylist() for i in
              (table.column_names.index(c) for c in columns)]
    rendered = simple_table(columns, zip(*values, strict=True), empty=empty)
    more = table.num_rows - shown.num_rows
    if more <= 0:
        return rendered
    return Group(rendered, Text(f"… and {more:,} more rows; use --json or --csv for all."))


def fields(values: Mapping[str, Any]) -> RenderableType:
    """Name-value pairs, one per line."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for key, value in values.items():
        table.add_row(key, cell(value))
    return table
