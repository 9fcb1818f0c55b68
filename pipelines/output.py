"""Tables on stdout for the CLI: `--format table|json|tsv`, never hard-wrapped when piped.

rich wraps at 80 columns when stdout is not a terminal; a pipe, a file or `less` then gets rows and
Cypher broken mid-line. Here a terminal gets rich tables at its width, anything else gets the same
tables with soft wrapping (lines as long as they need) — or JSON / TSV for programs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

# Wide enough that no table row wraps; rich tables do not expand to it (expand=False).
PIPE_WIDTH = 100_000


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    tsv = "tsv"


@dataclass(frozen=True)
class OutTable:
    name: str  # key in JSON output
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    right_aligned: tuple[str, ...] = ()

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def stdout_console(file=None) -> Console:
    """A console for results: the terminal's width on a TTY, no wrapping otherwise."""
    file = file or sys.stdout
    if file.isatty():
        return Console(file=file)
    return Console(file=file, width=PIPE_WIDTH, soft_wrap=True, no_color=True, highlight=False)


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _tsv_cell(value: Any) -> str:
    return cell_text(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def emit(tables: Sequence[OutTable], fmt: OutputFormat | str = OutputFormat.table, *, extra: dict | None = None,
         text: str = "", console: Console | None = None) -> None:
    """Print tables in the format; `extra` (JSON only) adds keys, `text` (table format only) follows the tables."""
    fmt = OutputFormat(fmt)
    out = console or stdout_console()
    if fmt is OutputFormat.json:
        payload: dict[str, Any] = {t.name: t.records() for t in tables}
        payload.update(extra or {})
        out.file.write(json.dumps(payload, default=str, indent=1) + "\n")
        return
    if fmt is OutputFormat.tsv:
        for i, t in enumerate(tables):
            lines = ([""] if i else []) + [f"# {t.title}", "\t".join(t.columns)]
            lines += ["\t".join(_tsv_cell(v) for v in row) for row in t.rows]
            out.file.write("\n".join(lines) + "\n")
        return
    for t in tables:
        # Text, not str: a cell (Cypher's [r:TYPE], a gene list) must not be read as rich markup.
        table = Table(title=Text(t.title) if t.title else None)
        for col in t.columns:
            table.add_column(Text(col), justify="right" if col in t.right_aligned else "left")
        for row in t.rows:
            table.add_row(*(Text(cell_text(v)) for v in row))
        out.print(table)
    if text:
        out.print(text, markup=False, highlight=False)
