"""CSV downloads that open cleanly in Excel and can't smuggle a formula into a spreadsheet."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

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


def csv_download(
    columns: Iterable[str], rows: Iterator[dict[str, Any]], filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(columns, rows), content_type="text/csv; charset=utf-8"
    )
    # Django quotes and, where needed, RFC 5987-encodes the name: nothing in it can break out.
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
