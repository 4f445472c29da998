"""The run page of a finished run as an admin reads it in Japanese: which of its value labels
(the <dt> of plans' details and steps' outputs) were left in English."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import translation

from provisioning.models import SetupRun
from wizard.roles import ADMIN, role_group


class _Terms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.terms: list[str] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "dt":
            self._open = True
            self.terms.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "dt":
            self._open = False

    def handle_data(self, data: str) -> None:
        if self._open:
            self.terms[-1] += data


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for inner in value.values() for key in _keys(inner)}
    if isinstance(value, list):
        return {key for inner in value for key in _keys(inner)}
    return set()


def labels_left_in_english(run: SetupRun) -> list[str]:
    """The labels on the run page, in Japanese, that are one of the run's own snake_case keys
    ("tenant_id") spelled out in English ("Tenant id") for want of a label."""
    admin, _created = User.objects.get_or_create(username="run-page-reader")
    admin.groups.add(role_group(ADMIN))
    client = Client(HTTP_ACCEPT_LANGUAGE="ja")
    client.force_login(admin)
    # The page's language stays with the page: what this thread renders next is as before.
    with translation.override(translation.get_language()):
        page = client.get(reverse("run_detail", kwargs={"run_id": run.pk}))
    assert page.status_code == 200
    parser = _Terms()
    parser.feed(page.content.decode())
    keys = set()
    for step in run.steps.all():
        keys |= _keys(step.plan) | _keys(step.outputs)
    spelled_out = {
        key.replace("_", " ").capitalize() for key in keys if re.fullmatch(r"[a-z0-9_]+", key)
    }
    return sorted({term.strip() for term in parser.terms} & spelled_out)
