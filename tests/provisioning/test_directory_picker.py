"""The people picker's typed names: checked before any lookup, and never put into a URL path."""

from __future__ import annotations

import pytest

from provisioning.directory_picker import MAX_NAME_LENGTH, PeoplePickerForm, read_choice
from provisioning.steps.entra_assignments import _find_user_by_login
from sandbox.server import ENTRA_DOMAIN, Sandbox
from tests.sandbox.entra_graph import graph_client


def _errors(**data: str) -> dict[str, list[str]]:
    form = PeoplePickerForm(data)
    form.is_valid()
    return form.errors


def test_it_refuses_a_name_longer_than_any_directory_holds() -> None:
    errors = _errors(principals_text="a" * 100_000 + "@example.com")

    assert errors["principals_text"] == [
        f"“{'a' * 40}…” is longer than {MAX_NAME_LENGTH} characters: no directory holds such a "
        "name."
    ]


@pytest.mark.parametrize("character", ["\u202e", "\u200f", "\x1b"])
def test_it_refuses_control_and_direction_characters(character: str) -> None:
    errors = _errors(exclude_logins=f"admin{character}@example.com")

    assert "control or direction characters" in errors["exclude_logins"][0]


def test_it_keeps_only_directory_ids_among_the_picked_values() -> None:
    choice = read_choice(
        {"picked": ["user:0a1b2c3d-0000-4000-8000-000000000001", "user:../../me", "group:a/b"]}
    )

    assert choice.user_ids == ["0a1b2c3d-0000-4000-8000-000000000001"]
    assert choice.group_ids == []


def test_it_finds_a_user_by_sign_in_name_with_a_filter_not_a_path(sandbox: Sandbox) -> None:
    client = graph_client(sandbox.endpoints)
    tenant = sandbox.apps["entra"].tenant
    known = next(iter(tenant.users.values()))["userPrincipalName"]

    assert _find_user_by_login(client, known).user_principal_name == known
    # As a path this would have asked Graph for /users/user/slash@…: here it is a name no one has.
    assert _find_user_by_login(client, f"user/slash@{ENTRA_DOMAIN}") is None
    assert _find_user_by_login(client, f"o'brien@{ENTRA_DOMAIN}") is None
