"""The Connect users step's form on the run page, in an SSO setup: it offers the instance's own
security and routing profiles (read by the step's plan), with Agent and the Basic Routing Profile
ticked, and the phone type; a desk phone needs each person's number, as CreateUser does."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from provisioning.models import SetupRun
from provisioning.runs.admin_moves import RunError, _checked_step_inputs
from provisioning.steps.connect_users import ConnectUsers, chosen_sentence
from tests.web.factories import make_run
from wizard.management.commands.setup_sso import _with_headless_defaults

pytestmark = pytest.mark.django_db

STEP = "connect_users"
PEOPLE = ["taro.yamada@example.com", "keiko.mcdonald@example.com"]
CHOICES = {
    "security_profiles": ["Admin", "Agent", "CallCenterManager", "QualityAnalyst"],
    "routing_profiles": ["Basic Routing Profile", "Night Shift"],
    "people_count": len(PEOPLE),
    "usernames": PEOPLE,
}


def _waiting_run() -> SetupRun:
    return make_run(
        flow_key="entra",
        status="waiting",
        steps=[
            {"key": "entra_assignments", "status": "succeeded"},
            {
                "key": STEP,
                "status": "planned",
                "plan": {"needs_input": True, "user_choices": CHOICES},
            },
        ],
    )


def _post(client: Client, run: SetupRun, answers: dict[str, Any], capture: Any) -> Any:
    data = {f"step-{STEP}-{name}": value for name, value in answers.items()}
    with capture(execute=False):
        return client.post(reverse("step_inputs", args=[run.pk, STEP]), data)


def _checked(html: str, name: str) -> list[str]:
    found = []
    for tag in re.findall(r"<input[^>]*>", html):
        if f'name="step-{STEP}-{name}"' in tag and " checked" in tag:
            found.append(re.search(r'value="([^"]*)"', tag).group(1))  # type: ignore[union-attr]
    return found


def test_it_offers_the_instances_profiles_with_the_defaults_ticked(admin_client: Client) -> None:
    run = _waiting_run()

    html = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    for name in CHOICES["security_profiles"]:
        assert f'name="step-{STEP}-security_profiles" value="{name}"' in html
    assert _checked(html, "security_profiles") == ["Agent"]
    assert re.search(r'<option value="Basic Routing Profile" selected>', html)
    assert '<option value="Night Shift">' in html
    assert _checked(html, "phone_type") == ["SOFT_PHONE"]
    assert f'name="step-{STEP}-desk_phones"' in html
    # The people came from the assignments step: no list to type.
    assert "people_csv" not in html
    japanese = admin_client.get(
        reverse("run_detail", args=[run.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    ).content.decode()
    assert "デスクフォンの電話番号" in japanese


def test_it_keeps_the_chosen_profiles_for_the_step(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    run = _waiting_run()

    response = _post(
        admin_client,
        run,
        {
            "security_profiles": ["Agent", "CallCenterManager"],
            "routing_profile": "Night Shift",
            "phone_type": "SOFT_PHONE",
        },
        django_capture_on_commit_callbacks,
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert run.steps.get(key=STEP).inputs == {
        "security_profiles": ["Agent", "CallCenterManager"],
        "routing_profile": "Night Shift",
        "phone_type": "SOFT_PHONE",
        "desk_phones": "",
        "update_existing": False,
    }


@pytest.mark.parametrize(
    ("answers", "error"),
    [
        ({"security_profiles": []}, "Tick at least one security profile."),
        (
            {"security_profiles": ["Supervisor"]},
            "Select a valid choice. Supervisor is not one of the available choices.",
        ),
        ({"routing_profile": "Day Shift"}, "Day Shift is not one of the available choices."),
        (
            {"phone_type": "DESK_PHONE"},
            "A desk phone rings at the person's own number: give one line per person.",
        ),
        (
            {"phone_type": "DESK_PHONE", "desk_phones": f"{PEOPLE[0]},03-1234-5678"},
            "Line 1: “03-1234-5678” is not a phone number in E.164 form (like +81312345678).",
        ),
        (
            {"phone_type": "DESK_PHONE", "desk_phones": f"{PEOPLE[0]},+81312345678"},
            f"1 person has no desk phone number: {PEOPLE[1]}.",
        ),
        (
            {
                "phone_type": "DESK_PHONE",
                "desk_phones": f"{PEOPLE[0]},+81312345678\n{PEOPLE[1]},+81312345679\n"
                "someone@example.com,+81312345670",
            },
            "These are not people of this step: someone@example.com.",
        ),
    ],
)
def test_it_says_what_to_fix_and_keeps_waiting(
    admin_client: Client,
    django_capture_on_commit_callbacks: Any,
    answers: dict[str, Any],
    error: str,
) -> None:
    run = _waiting_run()
    chosen = {
        "security_profiles": ["Agent"],
        "routing_profile": "Basic Routing Profile",
        "phone_type": "SOFT_PHONE",
        **answers,
    }

    response = _post(admin_client, run, chosen, django_capture_on_commit_callbacks)

    assert response.status_code == 200
    assert error in response.content.decode().replace("&#x27;", "'").replace("&quot;", '"')
    assert run.steps.get(key=STEP).inputs == {}


def test_desk_phones_for_everyone_are_kept(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    run = _waiting_run()
    numbers = f"{PEOPLE[0]},+81312345678\n{PEOPLE[1]}, +81312345679"

    response = _post(
        admin_client,
        run,
        {
            "security_profiles": ["Agent"],
            "routing_profile": "Basic Routing Profile",
            "phone_type": "DESK_PHONE",
            "desk_phones": numbers,
        },
        django_capture_on_commit_callbacks,
    )

    assert response.status_code == 302
    assert run.steps.get(key=STEP).inputs["desk_phones"] == numbers


def test_the_plan_names_the_chosen_profiles_in_each_language() -> None:
    chosen = {
        "security_profiles": ["Agent", "Admin"],
        "routing_profile": "Basic Routing Profile",
        "phone_type": "SOFT_PHONE",
    }

    with translation.override("ja"):
        japanese = chosen_sentence(chosen)

    assert chosen_sentence({}) == (
        "Every user gets the security profile “Agent”, the routing profile “Basic Routing "
        "Profile” and a soft phone."
    )
    assert japanese == (
        "各ユーザーには、セキュリティプロファイル「Agent」、「Admin」、ルーティングプロファイル"
        "「Basic Routing Profile」、ソフトフォンを設定します。"
    )


def test_setup_sso_gives_the_steps_defaults_where_the_plan_file_chose_nothing() -> None:
    defaults = ConnectUsers.headless_defaults

    bare = _with_headless_defaults({"flow": "entra", "steps": {"entra_app": {"x": 1}}})
    chosen = _with_headless_defaults(
        {"flow": "entra", "steps": {STEP: {"security_profiles": ["Admin"]}}}
    )
    for_the_run = _with_headless_defaults(
        {"flow": "entra", "inputs": {"routing_profile": "Night Shift"}, "steps": {}}
    )

    assert bare == {"entra_app": {"x": 1}, STEP: defaults}
    assert chosen[STEP] == {**defaults, "security_profiles": ["Admin"]}
    assert for_the_run[STEP] == {k: v for k, v in defaults.items() if k != "routing_profile"}
    assert _with_headless_defaults({"flow": "entra_users", "steps": {}}) == {}


def test_a_plan_files_answers_are_checked_before_the_run_starts() -> None:
    """Without the instance's names to offer, the form still knows its fields and choices: a
    misspelt key or an unknown phone type is refused at once, as for every other step."""
    with pytest.raises(RunError) as refused:
        _checked_step_inputs(
            {STEP: {"securty_profiles": ["Agent"], "phone_type": "VOIP", "desk_phones": "x,1"}}
        )

    problems = str(refused.value)
    assert "connect_users: “securty_profiles” is not a field of this step" in problems
    assert "phone_type: Select a valid choice. VOIP is not one of the available choices." in (
        problems
    )
    assert "Valid values: SOFT_PHONE, DESK_PHONE." in problems
    assert _checked_step_inputs(
        {STEP: {**ConnectUsers.headless_defaults, "security_profiles": ["Agent", "Admin"]}}
    ) == {STEP: {**ConnectUsers.headless_defaults, "security_profiles": ["Agent", "Admin"]}}
