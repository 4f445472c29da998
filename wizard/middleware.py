"""Middleware of our own: a page and its htmx fragment never stand in for each other in a cache,
and times show in the viewer's own time zone."""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_vary_headers


def wants_fragment(request: HttpRequest) -> bool:
    """True when htmx asks for a part of a page; False for a whole page — also when htmx
    restores history after a cache miss (it sends `HX-History-Restore-Request` and swaps the
    whole body, https://htmx.org/docs/#history)."""
    details = getattr(request, "htmx", None)
    return details is not None and bool(details) and not details.history_restore_request


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


# The cookie static/js/timezone.js sets to the browser's IANA zone name (e.g. "Asia/Tokyo").
TIME_ZONE_COOKIE = "tz"


def viewer_time_zone(request: HttpRequest) -> zoneinfo.ZoneInfo | None:
    """The zone named by the viewer's `tz` cookie, or None when it is absent or names no zone.

    The cookie is the browser's to write, so it is never trusted: only a name in the IANA
    database on this machine is accepted (no paths, no files read outside it)."""
    name = request.COOKIES.get(TIME_ZONE_COOKIE, "")
    if not name or len(name) > 64 or name not in _available_time_zones():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


@functools.cache
def _available_time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class TimeZoneMiddleware:
    """Shows every time in the viewer's own zone: activates the zone from the `tz` cookie for
    the request, else settings.TIME_ZONE (Django's documented recipe,
    https://docs.djangoproject.com/en/5.2/topics/i18n/timezones/#selecting-the-current-time-zone)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = viewer_time_zone(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
