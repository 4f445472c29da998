"""Template filters for the wizard's pages: status symbols, elapsed times and readable JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.formats import number_format
from django.utils.html import conditional_escape, format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from provisioning.messages import render
from provisioning.models import RunStatus, StepStatus

register = template.Library()

# A symbol beside every status word, so a status never depends on colour alone.
STATUS_SYMBOLS = {
    "pending": "○",
    "planning": "◔",
    "planned": "◑",
    "applying": "◕",
    "running": "◕",
    "waiting": "‖",
    "needs_you": "!",
    "succeeded": "✓",
    "ok": "✓",
    "failed": "✕",
    "error": "✕",
    "cancelled": "⊘",
    "rolling_back": "↺",
    "rolled_back": "↺",
    "skipped": "–",
    "started": "…",
}

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600


@register.filter
def status_symbol(status: str) -> str:
    return STATUS_SYMBOLS.get(status, "•")


@register.filter
def status_label(status: str) -> str:
    """The admin's word for a run or step status ("rolled_back" -> "Rolled back")."""
    for choices in (RunStatus, StepStatus):
        if status in choices.values:
            return str(choices(status).label)
    return status


# The admin's word for a planned change's action (the plan list on the run page says the same).
CHANGE_ACTIONS = {
    "create": gettext_lazy("Create"),
    "update": gettext_lazy("Update"),
    "adopt": gettext_lazy("Use existing"),
    "delete": gettext_lazy("Delete"),
    "nothing": gettext_lazy("No change"),
}


@register.filter
def change_action_label(actions: str) -> str:
    """ "create" -> "Create"; several ("create, nothing") each; none ("") -> "not in the plan"."""
    if not actions:
        return _("not in the plan")
    return ", ".join(str(CHANGE_ACTIONS.get(action, action)) for action in actions.split(", "))


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


# A text output longer than this (IdP metadata, a policy document) is folded away on the run page.
LONG_OUTPUT_CHARS = 120


@register.filter
def is_structured(value: Any) -> bool:
    return isinstance(value, dict | list)


@register.filter
def is_long_text(value: Any) -> bool:
    return isinstance(value, str) and (len(value) > LONG_OUTPUT_CHARS or "\n" in value)


@register.filter
def elapsed(seconds: int | float | dt.timedelta | None) -> str:
    """A duration the way an admin says it: "45 s", "3 min 05 s", "1 h 12 min"."""
    if seconds is None:
        return ""
    if isinstance(seconds, dt.timedelta):
        seconds = seconds.total_seconds()
    total = int(seconds)
    hours, rest = divmod(total, SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, SECONDS_PER_MINUTE)
    if hours:
        return _("%(hours)d h %(minutes)02d min") % {"hours": hours, "minutes": minutes}
    if minutes and not secs:
        return _("%(minutes)d min") % {"minutes": minutes}
    if minutes:
        return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": secs}
    return _("%(seconds)d s") % {"seconds": secs}


@register.simple_tag
def from_now(delta: dt.timedelta) -> dt.datetime:
    """The moment `delta` from now, e.g. when a sign-in lockout ends."""
    return timezone.now() + delta


@register.filter
def count(value: int | float | None) -> str:
    """A count with thousands grouped the way the page's language writes it ("1,985")."""
    if value is None:
        return ""
    return number_format(value, force_grouping=True)


@register.filter
def per_second(value: float | None) -> str:
    """A rate: one decimal ("19.8"), none when it is whole ("2", "10,000")."""
    if value is None:
        return ""
    decimals = 0 if float(value).is_integer() else 1
    return number_format(value, decimals, force_grouping=True)


OUTCOME_LABELS = {
    "created": gettext_lazy("created"),
    "updated": gettext_lazy("updated"),
    "deleted": gettext_lazy("deleted"),
    "gone": gettext_lazy("already deleted"),
    "existed": gettext_lazy("already there (left alone)"),
    "failed": gettext_lazy("failed"),
}
ATTRIBUTE_LABELS = {
    "security_profiles": gettext_lazy("Security profiles"),
    "routing_profile": gettext_lazy("Routing profile"),
    "phone": gettext_lazy("Phone"),
    "name": gettext_lazy("Name"),
}


@register.filter
def outcome_label(outcome: str) -> str:
    """How a change ended, in the admin's words."""
    return str(OUTCOME_LABELS.get(outcome, outcome))


@register.filter
def attribute_label(name: str) -> str:
    return str(ATTRIBUTE_LABELS.get(name, name))


@register.filter
def listed(value: Any) -> str:
    """A list as "a, b", a phone setting as its values, anything else as text."""
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, dict):
        return ", ".join(str(item) for item in value.values())
    return str(value)


# The chain diagram's drawing: a row of boxes in a viewBox this wide, joined by arrows.
CHAIN_WIDTH = 1200
CHAIN_BOX_HEIGHT = 92
CHAIN_GAP = 28
# A fact longer than this is cut with an ellipsis in its box (its link's tooltip has it whole).
CHAIN_FACT_CHARS = 24
# A label's room in its box; a label estimated wider is squeezed to fit (SVG's textLength).
CHAIN_LABEL_PADDING = 16


def _bold_label_width(text: str) -> float:
    """An estimate of a 14 px bold label's width: a CJK character is about one em, a Latin
    character about 0.58 em. SVG cannot wrap text, so an estimate is all the server has."""
    return sum(14.0 if ord(char) >= 0x2E80 else 8.1 for char in text)


@register.inclusion_tag("chain.html")
def chain_diagram(links: list[Any], caption: str = "", title: str = "") -> dict[str, Any]:
    """The federation chain as a server-rendered SVG: one box per link, coloured by its state,
    with its state's word and symbol and its key fact, each box a link to its step. `title`
    replaces the run page's ("The federation chain this run builds"), for a checked chain."""
    count = max(len(links), 1)
    width = (CHAIN_WIDTH - CHAIN_GAP * (count - 1)) / count
    boxes = []
    for index, link in enumerate(links):
        x = index * (width + CHAIN_GAP)
        fact = link.fact
        short = fact if len(fact) <= CHAIN_FACT_CHARS else fact[: CHAIN_FACT_CHARS - 1] + "…"
        room = width - CHAIN_LABEL_PADDING
        boxes.append(
            {
                "link": link,
                "x": round(x, 1),
                "middle": round(x + width / 2, 1),
                "arrow_from": round(x + width, 1),
                "arrow_to": round(x + width + CHAIN_GAP - 4, 1),
                "short_fact": short,
                "label_length": round(room, 1)
                if _bold_label_width(str(link.label)) > room
                else None,
                "last": index == len(links) - 1,
            }
        )
    return {
        "boxes": boxes,
        "box_width": round(width, 1),
        "box_height": CHAIN_BOX_HEIGHT,
        "view_width": CHAIN_WIDTH,
        "arrow_y": CHAIN_BOX_HEIGHT / 2,
        "caption": caption,
        "title": title,
    }


@register.filter
def when(value: Any) -> str:
    """One format for every absolute time: `2026-12-04 21:05:09 JST` in the viewer's zone (the
    one TimeZoneMiddleware activated), inside `<time datetime="…">` carrying the ISO instant.
    The zone shows as its abbreviation, or as an offset (`+03`) where the zone has none."""
    value = _as_datetime(value) if isinstance(value, str) else value
    if not isinstance(value, dt.datetime):
        return "" if value in (None, "") else conditional_escape(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}">{}</time>',
        local.isoformat(timespec="seconds"),
        date_format(local, "Y-m-d H:i:s T"),
    )


@register.filter
def when_title(value: Any) -> str:
    """The plain text of `when`, for a `title` attribute beside a relative time ("2 min ago")."""
    value = _as_datetime(value) if isinstance(value, str) else value
    if not isinstance(value, dt.datetime):
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return date_format(timezone.localtime(value), "Y-m-d H:i:s T")


def _as_datetime(text: str) -> dt.datetime | str:
    """An ISO 8601 string (CloudTrail's `eventTime`, `2026-12-04T12:00:00Z`) as a datetime;
    anything else unchanged."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return text


@register.filter(name="message")
def message_text(value: Any) -> str:
    """A stored message (an error, hint, warning or finding; provisioning/messages.py) in the
    reader's language; older rows' plain text as it is."""
    return str(render(value))
