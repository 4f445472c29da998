"""Rows as CSV lines that open cleanly in Excel and can't smuggle a formula into a spreadsheet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if value is None:
        return ""
    # Names and messages come from the clouds; a cell starting like a formula would run in a
    # spreadsheet (OWASP "CSV injection"), so it is quoted as text.
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def csv_lines(columns: Iterable[str], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    columns = list(columns)
    writer = csv.writer(_Echo())
    # The byte order mark makes Excel (as most Japanese admins open CSV) read the file as UTF-8.
    yield "\ufeff" + writer.writerow(columns)
    for row in rows:
        yield writer.writerow([csv_cell(row[column]) for column in columns])
