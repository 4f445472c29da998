"""The people picker's search reads the stored directory snapshot and keeps ticked boxes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from provisioning.directory_picker import PeoplePickerForm, directory_snapshot, read_choice
from provisioning.models import SetupRun, StepRun

pytestmark = pytest.mark.django_db


def _run_with_directory(admin_client: Client) -> StepRun:
    run = SetupRun.objects.create(idp="entra", flow_key="entra", region="ap-northeast-1")
    directory = directory_snapshot(
        [
            {"id": "u1", "login": "keiko@example.com", "name": "Keiko McDonald", "email": ""},
            {"id": "u2", "login": "ren@example.com", "name": "Ren Sato", "email": ""},
        ],
        [{"id": "g1", "name": "Connect Admins", "member_count": 3}],
        more_users=False,
        more_groups=False,
    )
    return StepRun.objects.create(
        run=run, key="entra_assignments", position=0, plan={"directory": directory}
    )


def test_it_returns_matching_users_and_keeps_ticked_ones(admin_client: Client) -> None:
    step = _run_with_directory(admin_client)
    url = f"/runs/{step.run_id}/steps/entra_assignments/directory/"
    response = admin_client.get(
        url, {"q": "keiko", "step-entra_assignments-picked": ["group:g1"]}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Keiko McDonald" in html and "Ren Sato" not in html
    assert 'value="group:g1" checked' in html


def test_it_reads_the_choice_from_the_picker_and_the_text_box() -> None:
    form = PeoplePickerForm(
        {
            "p-picked": ["user:u1", "group:g1", "evil:x"],
            "p-principals_text": "Connect Agents\n",
            "p-exclude_offenders": "on",
        },
        prefix="p",
    )
    assert form.is_valid(), form.errors
    choice = read_choice(form.cleaned_data)
    assert (choice.user_ids, choice.group_ids, choice.names) == (["u1"], ["g1"], ["Connect Agents"])


def test_it_asks_for_at_least_one_user_or_group() -> None:
    form: Any = PeoplePickerForm({}, prefix="p")
    assert not form.is_valid()
