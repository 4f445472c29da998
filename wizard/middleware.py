"""Middleware of our own: a page and its htmx fragment never stand in for each other in a cache."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers, patch_vary_headers


def wants_fragment(request: HttpRequest) -> bool:
    """True when htmx asks for a part of a page; False for a whole page — also when htmx
    restores history after a cache miss (it sends `HX-History-Restore-Request` and swaps the
    whole body, https://htmx.org/docs/#history)."""
    details = getattr(request, "htmx", None)
    return bool(details) and not details.history_restore_request


class HtmxCacheMiddleware:
    """`Vary: HX-Request` on every GET, and no caching at all of a fragment.

    Some of our URLs answer a whole page to the browser and a fragment to htmx's poll (the audit
    export's progress, for one). Keyed on the URL alone, a cache — the browser's own, which serves
    the Back button — can hand the bare fragment back as the page. htmx's documentation asks for
    `Vary: HX-Request` in exactly this case (https://htmx.org/docs/#caching); the fragment is also
    marked uncacheable, since browsers' back-forward handling does not always honour Vary."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.method in ("GET", "HEAD"):
            patch_vary_headers(response, ("HX-Request",))
            if getattr(request, "htmx", None):
                add_never_cache_headers(response)
        return response
