"""The Japanese catalogue: all translated, none fuzzy, and the committed .mo built from it."""

from __future__ import annotations

import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

CATALOGUE = Path(settings.BASE_DIR) / "wizard" / "locale" / "ja" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%\(\w+\)02d|\{\w+\}")


def _po() -> polib.POFile:
    return polib.pofile(str(CATALOGUE / "django.po"))


def _translations(catalogue: polib._BaseFile) -> dict[tuple[str, str], tuple[str, ...]]:
    result = {}
    for entry in catalogue:
        if entry.obsolete or not entry.msgid:
            continue
        if entry.msgid_plural:
            values = tuple(entry.msgstr_plural[index] for index in sorted(entry.msgstr_plural))
        else:
            values = (entry.msgstr,)
        result[(entry.msgctxt or "", entry.msgid)] = values
    return result


def test_it_has_no_untranslated_or_fuzzy_entries() -> None:
    po = _po()

    assert po.untranslated_entries() == []
    assert po.fuzzy_entries() == []
    assert not po.metadata_is_fuzzy


def test_it_keeps_every_placeholder_in_the_translation() -> None:
    for entry in _po().translated_entries():
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        # Japanese has one plural form: it says what the plural msgid says, count included.
        expected = set(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
        for translation in translations:
            assert set(PLACEHOLDER.findall(translation)) == expected, entry.msgid


def test_it_ships_a_compiled_catalogue_that_matches_the_po() -> None:
    mo = polib.mofile(str(CATALOGUE / "django.mo"))

    assert _translations(mo) == _translations(_po())


@pytest.mark.django_db
def test_it_renders_japanese_after_the_language_switch(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("set_language"), {"language": "ja", "next": reverse("dashboard")}, follow=True
    )
    html = response.content.decode()

    assert '<html lang="ja">' in html
    assert "セットアップ一覧" in html
    assert "サンドボックスモード" in html
    assert "Setup runs" not in html


@pytest.mark.django_db
def test_it_picks_the_language_from_accept_language(admin_client: Client) -> None:
    japanese = admin_client.get(reverse("connections"), HTTP_ACCEPT_LANGUAGE="ja-JP,ja;q=0.9")
    english = admin_client.get(reverse("connections"), HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")

    assert "接続" in japanese.content.decode()
    assert "Connections" in english.content.decode()
