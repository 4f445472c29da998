"""Sends Okta management API calls through the SDK's own request executor (auth, audit, error
mapping), for bodies the SDK's models can't express: its SamlApplication drops `name` and has no
`settings.app`, so the amazon_aws app is created and read as plain JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from okta.client import Client as OktaClient

from provisioning.okta.client import run_okta

# Okta paginates with `Link: <url>; rel="next"` (Okta API reference, "Pagination").
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
# Stop following pages after this many: a directory snapshot is capped anyway.
MAX_PAGES = 50


def okta_call(
    client: OktaClient,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    params: dict[str, Any] | None = None,
    accept: str = "application/json",
) -> Any:
    """One call; the parsed JSON (or the text for XML), None for an empty body. Errors come back
    as the project's errors (provisioning.okta.client.map_okta_error)."""
    text, _ = _send(client, method, _with_query(path, params), body, accept)
    if accept != "application/json":
        return text
    return json.loads(text) if text else None


def okta_pages(
    client: OktaClient, path: str, *, params: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Every item of a list endpoint, following Okta's `Link: rel="next"` pages."""
    url = _with_query(path, params)
    for _page in range(MAX_PAGES):
        text, next_url = _send(client, "GET", url, None, "application/json")
        yield from json.loads(text) if text else []
        if not next_url:
            return
        url = next_url


def send_page(client: OktaClient, url: str) -> tuple[str, str | None]:
    """One page of a list endpoint: its JSON text and the next page's URL (None on the last), for
    readers that must see every page or fail (okta_pages stops quietly after MAX_PAGES)."""
    text, next_url = _send(client, "GET", url, None, "application/json")
    return text, next_url or None


def _with_query(path: str, params: dict[str, Any] | None) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _send(
    client: OktaClient, method: str, url: str, body: dict[str, Any] | None, accept: str
) -> tuple[str, str]:
    executor = client.get_request_executor()

    async def call() -> tuple[tuple[str, str] | None, Any]:
        request, error = await executor.create_request(
            method, url, body, {"Accept": accept}, keep_empty_params=True
        )
        if error is not None:
            return None, error
        response, text, error = await executor.execute(request)
        if error is not None:
            return None, error
        match = _NEXT_LINK.search(response.headers.get("Link", "")) if response else None
        return (text or "", match.group(1) if match else ""), None

    return run_okta(call())
