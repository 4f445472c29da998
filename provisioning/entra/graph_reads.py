"""Small synchronous helpers over the Graph SDK for the Entra steps: a read that may find nothing,
and every page of a collection up to a cap."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from kiota_abstractions.api_error import APIError

from provisioning.entra.client import run_graph

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


def all_pages(builder: Any, first_page: Awaitable[Any], *, limit: int) -> tuple[list[Any], bool]:
    """Items of a collection, following @odata.nextLink until `limit` items; and whether more
    remained."""
    page = run_graph(first_page)
    items = list(page.value or [])
    while page.odata_next_link and len(items) < limit:
        page = run_graph(builder.with_url(page.odata_next_link).get())
        items.extend(page.value or [])
    return items[:limit], bool(page.odata_next_link) or len(items) > limit
