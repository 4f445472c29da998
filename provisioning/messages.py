"""Messages an admin reads later (step errors, hints, findings, plan warnings, audit lines): stored
as a gettext message id with its parameters, and rendered in the language of whoever reads them.

A run started in English reads in Japanese for a Japanese admin: nothing is translated when the
message is written, only when it is shown. The message id is the English source string, marked
with gettext_lazy or gettext_noop where it is written so it stays in the catalogue
(wizard/locale/ja/LC_MESSAGES/django.po). Rows written before messages were stored this way hold
finished text; `render` shows those as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext, ngettext

# A stored message: {"msgid": ..., "params": {...}} (and "plural"/"n" for a counted one), or the
# plain text an older row holds.
StoredMessage = dict[str, Any] | str


def _msgid(text: str | Promise) -> str:
    """The untranslated id of a lazy translation (evaluated with no catalogue active), or the
    text itself."""
    if isinstance(text, Promise):
        with translation.override(None):
            return str(text)
    return text


class Message:
    """One message id and its parameters. Parameters may be messages themselves (a status name,
    a reason): they are rendered in the same language as the message."""

    def __init__(
        self,
        msgid: str | Promise,
        params: Mapping[str, Any] | None = None,
        *,
        plural: str | Promise = "",
        n: int | None = None,
    ) -> None:
        self.msgid = _msgid(msgid)
        self.params = dict(params or {})
        self.plural = _msgid(plural)
        self.n = n

    @classmethod
    def counted(
        cls, singular: str | Promise, plural: str | Promise, n: int, params: Mapping[str, Any]
    ) -> Message:
        """A message with a singular and a plural form, chosen by `n` when rendered."""
        return cls(singular, params, plural=plural, n=n)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"msgid": self.msgid, "params": to_json(self.params)}
        if self.plural:
            data["plural"], data["n"] = self.plural, self.n
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            str(data["msgid"]),
            data.get("params") or {},
            plural=str(data.get("plural") or ""),
            n=data.get("n"),
        )

    def render(self) -> str:
        """The message in the active language."""
        if self.plural:
            text = ngettext(self.msgid, self.plural, int(self.n or 0))
        else:
            text = gettext(self.msgid) if self.msgid else ""
        params = {key: render(value) for key, value in self.params.items()}
        if not params:
            return text
        if "%(" not in self.msgid:
            # Some messages name their parameters the str.format way ("{login}").
            return text.format_map(params)
        return text % params

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Message({self.msgid!r}, {self.params!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash((self.msgid, self.plural))

    def __bool__(self) -> bool:
        return bool(self.msgid)


def joined(items: list[Any], separator: str = ", ") -> dict[str, Any]:
    """Several messages (or names) as one parameter, each rendered, then joined."""
    return {"joined": to_json(list(items)), "separator": separator}


def is_message(value: Any) -> bool:
    """A stored message (the JSON form of a Message)."""
    return isinstance(value, Mapping) and "msgid" in value


def to_json(value: Any) -> Any:
    """`value` ready for a JSON field: messages (and lazy translations) become their stored form,
    inside lists and dicts too; anything else is left as it is."""
    if isinstance(value, Message):
        return value.to_json()
    if isinstance(value, Promise):
        return Message(value).to_json()
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def render_within(value: Any) -> Any:
    """`value` (a step's outputs, a change's details) with every stored message inside it
    rendered in the active language."""
    if is_message(value) or (isinstance(value, Mapping) and "joined" in value):
        return render(value)
    if isinstance(value, Mapping):
        return {key: render_within(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render_within(item) for item in value]
    return value


def render(value: Any) -> Any:
    """A stored message, a Message or a lazy translation as text in the active language; plain
    text (an older row, a cloud's own words, a name) as it is; None as ""."""
    if value is None:
        return ""
    if isinstance(value, Message):
        return value.render()
    if is_message(value):
        return Message.from_json(value).render()
    if isinstance(value, Mapping) and "joined" in value:
        return str(value.get("separator", ", ")).join(str(render(i)) for i in value["joined"])
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, list | tuple):
        # Several findings that failed, several fixes: one line, each in turn.
        return "; ".join(str(render(item)) for item in value)
    return value
