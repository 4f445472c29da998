"""Shrinks SDK request parameters and responses to the small JSON summaries the audit log keeps."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

# Long values (SAML metadata, policy documents, certificates) are cut to this many characters:
# enough to recognise them in the audit log, small enough to keep every row small.
MAX_TEXT_CHARS = 200
# Lists and objects deeper than this are replaced by a marker: no summary needs more.
MAX_DEPTH = 4
MAX_ITEMS = 20
# Response keys worth keeping: what was created or found, never whole payloads.
ID_SUFFIXES = ("Id", "Arn", "ARN", "ID")
NEVER_KEPT = {"AccessKeyId", "ResponseMetadata"}


def json_safe(value: Any, *, depth: int = 0) -> Any:
    """A JSON-serialisable copy of `value` with long strings cut and deep structures elided."""
    if depth > MAX_DEPTH:
        return "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT_CHARS else value[:MAX_TEXT_CHARS] + "…"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = list(value.items())
        summary = {str(k): json_safe(v, depth=depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            summary["…"] = f"{len(items) - MAX_ITEMS} more"
        return summary
    if isinstance(value, list | tuple | set | frozenset):
        values = list(value)
        summary_list = [json_safe(v, depth=depth + 1) for v in values[:MAX_ITEMS]]
        if len(values) > MAX_ITEMS:
            summary_list.append(f"… {len(values) - MAX_ITEMS} more")
        return summary_list
    return json_safe(str(value), depth=depth)


def identifiers(payload: Any) -> dict[str, Any]:
    """The ids and ARNs at the top of a response (and one level down), e.g. InstanceId, Arn."""
    found: dict[str, Any] = {}
    if not isinstance(payload, Mapping):
        return found
    for key, value in payload.items():
        if key in NEVER_KEPT:
            continue
        if isinstance(value, str) and _is_identifier(str(key)):
            found[str(key)] = json_safe(value)
        elif isinstance(value, Mapping):
            for inner_key, inner in value.items():
                if inner_key in NEVER_KEPT:
                    continue
                if isinstance(inner, str) and _is_identifier(str(inner_key)):
                    found[f"{key}.{inner_key}"] = json_safe(inner)
    return found


def _is_identifier(key: str) -> bool:
    return key == "id" or key.endswith(ID_SUFFIXES)


def parse_json_body(content: bytes) -> Any:
    """The body as JSON when it is JSON, else None (binary uploads, XML, empty bodies)."""
    if not content:
        return None
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
