"""CSV downloads that open cleanly in Excel and can't smuggle a formula into a spreadsheet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header

from provisioning.csv_rows import csv_lines


def csv_download(
    columns: Iterable[str], rows: Iterator[dict[str, Any]], filename: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        csv_lines(columns, rows), content_type="text/csv; charset=utf-8"
    )
    # Django quotes and, where needed, RFC 5987-encodes the name: nothing in it can break out.
    response["Content-Disposition"] = content_disposition_header(True, filename)
    return response
