"""Small synchronous helpers over the Graph SDK for the Entra steps: a read that may find nothing,
and every page of a collection up to a cap."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from django.utils.translation import gettext_noop
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from provisioning.entra.client import run_graph
from provisioning.errors import PermanentError
from provisioning.messages import Message

T = TypeVar("T")


def get_or_none(call: Awaitable[T]) -> T | None:
    """The object, or None when Graph answers 404 (absent, or not replicated yet)."""

    async def read() -> T | None:
        try:
            return await call
        except APIError as exc:
            if exc.response_status_code == 404:
                return None
            raise

    return run_graph(read())


def all_pages_json(builder: Any, request: Any, *, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Like all_pages, as plain JSON objects: for thousands of objects, where the SDK's models
    cost too much (msgraph-sdk builds each User's field table anew, importing its ~200 field
    types: about 18 ms an object, over half a minute for 2,000 group members). `request` is the
    builder's RequestInformation (to_get_request_information). Auth, retries and the audit rows
    are the SDK's as for any call; a next page is only fetched from Graph's own host."""
    adapter = builder.request_adapter
    errors: dict[str, Any] = {"XXX": ODataError}
    items: list[dict[str, Any]] = []
    while True:
        body = run_graph(adapter.send_primitive_async(request, "bytes", errors))
        page = json.loads(body or b"{}")
        items.extend(page.get("value") or [])
        next_link = str(page.get("@odata.nextLink") or "")
        if not next_link or len(items) > limit:
            return items[:limit], bool(next_link) or len(items) > limit
        if not next_link.startswith(str(adapter.base_url).rstrip("/") + "/"):
            raise PermanentError(
                Message(
                    gettext_noop(
                        "Graph sent a next page on another host; the wizard does not follow it."
                    )
                ),
                code="graph_next_link_elsewhere",
            )
        following = builder.with_url(next_link).to_get_request_information()
        # A next page needs the first request's headers too (ConsistencyLevel on an advanced
        # query: Graph refuses the page without it).
        following.headers.add_all(request.headers)
        request = following


def all_pages(builder: Any, first_page: Awaitable[Any], *, limit: int) -> tuple[list[Any], bool]:
    """Items of a collection, following @odata.nextLink until `limit` items; and whether more
    remained."""
    return rest_of_pages(builder, run_graph(first_page), limit=limit)


def rest_of_pages(builder: Any, page: Any, *, limit: int) -> tuple[list[Any], bool]:
    """all_pages() from a first page already read (by run_graph_together, say)."""
    items = list(page.value or [])
    while page.odata_next_link and len(items) < limit:
        page = run_graph(builder.with_url(page.odata_next_link).get())
        items.extend(page.value or [])
    return items[:limit], bool(page.odata_next_link) or len(items) > limit
