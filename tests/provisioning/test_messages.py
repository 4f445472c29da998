"""Stored messages: an id and parameters rendered in the reader's language, older text as it is,
and every id the code stores has its Japanese."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polib
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy, gettext_noop

from provisioning.errors import PermanentError
from provisioning.messages import Message, joined, render, to_json

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "wizard" / "locale" / "ja" / "LC_MESSAGES" / "django.po"
# Where the messages an admin reads later are written.
SOURCES = ["provisioning", "wizard"]
TRANSLATING = {"_", "gettext", "gettext_lazy", "gettext_noop"}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
WORDS = re.compile(r"[A-Za-z]{2,}")


def _literal(node: ast.AST) -> str | None:
    """The msgid of `_("...")` / `gettext_noop("...")`."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in TRANSLATING
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def stored_msgids() -> set[str]:
    """Every msgid the code hands to Message(...) or marks with gettext_noop (which marks only
    messages rendered later)."""
    return set(stored_messages()) | {plural for plural in stored_messages().values() if plural}


def stored_messages() -> dict[str, str]:
    """Each msgid stored, with its plural msgid ("" for a message without one)."""
    found: dict[str, str] = {}
    plurals: dict[str, str] = {}
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                if isinstance(func, ast.Name) and func.id == "gettext_noop":
                    found.setdefault(str(_literal(node)), "")
                is_message = (isinstance(func, ast.Name) and func.id == "Message") or (
                    isinstance(func, ast.Attribute) and func.attr == "counted"
                )
                if is_message and node.args:
                    msgid = _literal(node.args[0])
                    if msgid is not None:
                        found.setdefault(msgid, "")
                    plural = _literal(node.args[1]) if len(node.args) > 1 else None
                    if msgid is not None and plural is not None:
                        plurals[msgid] = plural
    for plural in plurals.values():
        found.pop(plural, None)
    return {**found, **plurals}


def test_every_stored_msgid_has_japanese() -> None:
    catalogue = {}
    for entry in polib.pofile(str(CATALOGUE)):
        if not entry.obsolete:
            catalogue[entry.msgid] = entry
            if entry.msgid_plural:
                catalogue[entry.msgid_plural] = entry
    msgids = stored_msgids()

    missing = sorted(
        msgid
        for msgid in msgids
        if msgid not in catalogue
        or not (catalogue[msgid].msgstr or any(catalogue[msgid].msgstr_plural.values()))
    )

    assert len(msgids) > 150
    assert missing == []


def test_every_stored_msgid_renders_in_both_languages() -> None:
    for msgid, plural in stored_messages().items():
        message = Message(msgid, plural=plural, n=1)
        with translation.override("en"):
            assert message.render() == msgid
        if not WORDS.search(PLACEHOLDER.sub("", msgid)):
            continue  # "%(check)s: %(detail)s" reads the same in Japanese
        with translation.override("ja"):
            assert message.render() != msgid, msgid


def test_it_renders_in_the_language_active_when_read() -> None:
    stored = to_json(
        PermanentError(
            Message(gettext_noop("Unexpected error: %(error)s"), {"error": "boom"}),
            hint=gettext_lazy("Retry the step."),
        ).as_dict()
    )

    with translation.override("en"):
        assert render(stored["message"]) == "Unexpected error: boom"
        assert render(stored["hint"]) == "Retry the step."
    with translation.override("ja"):
        assert render(stored["message"]).endswith("boom")
        assert render(stored["message"]) != "Unexpected error: boom"
        assert render(stored["hint"]) != "Retry the step."
    assert stored["message"] == {
        "msgid": "Unexpected error: %(error)s",
        "params": {"error": "boom"},
    }


def test_it_renders_parameters_that_are_messages_in_the_same_language() -> None:
    message = Message(
        gettext_noop("Step “%(step)s” waits for its input."),
        {"step": Message(gettext_noop("absent"))},
    ).to_json()

    with translation.override("ja"):
        text = render(message)
    with translation.override("ja"):
        absent = render(Message(gettext_noop("absent")))
    assert absent in text
    assert "absent" not in text


def test_it_shows_an_older_rows_plain_text_as_it_is() -> None:
    with translation.override("ja"):
        assert render("The worker running this step stopped 3 times.") == (
            "The worker running this step stopped 3 times."
        )
        assert render(None) == ""


def test_it_joins_names_and_counts_plurals() -> None:
    names = joined(["alice", Message(gettext_noop("(empty username)"))])
    message = Message.counted(
        gettext_noop("and %(count)d more"), gettext_noop("and %(count)d more"), 3, {"count": 3}
    )

    with translation.override("en"):
        assert render(names) == "alice, (empty username)"
        assert render(Message.from_json(message.to_json())) == "and 3 more"


def test_every_plural_entry_has_the_one_form_japanese_has() -> None:
    catalogue = polib.pofile(str(CATALOGUE))
    assert catalogue.metadata["Plural-Forms"] == "nplurals=1; plural=0;"
    plural_entries = [entry for entry in catalogue if entry.msgid_plural and not entry.obsolete]

    wrong = [
        entry.msgid
        for entry in plural_entries
        if set(entry.msgstr_plural) != {0} or not entry.msgstr_plural[0] or entry.msgstr
    ]

    assert len(plural_entries) > 30
    assert wrong == []
