"""A step's answers are checked and cleaned by its own form, wherever they come from."""

from __future__ import annotations

import pytest

from provisioning.steps.base import STEPS
from provisioning.steps.inputs import StepInputError, clean_step_inputs


def test_it_cleans_answers_as_the_form_does() -> None:
    cleaned = clean_step_inputs(
        STEPS["entra_claims"],
        {"session_name_source": "mail", "session_duration_s": "7200", "destination": "ccp"},
    )

    assert cleaned == {
        "session_name_source": "mail",
        "session_duration_s": 7200,
        "destination": "ccp",
    }


def test_it_leaves_fields_not_given_to_the_run_page() -> None:
    assert clean_step_inputs(STEPS["entra_claims"], {"session_duration_s": 900}) == {
        "session_duration_s": 900
    }


def test_it_names_the_field_the_range_and_the_valid_values() -> None:
    with pytest.raises(StepInputError) as refused:
        clean_step_inputs(
            STEPS["entra_claims"], {"session_duration_s": 60, "destination": "ccp-v3"}
        )

    assert refused.value.step_key == "entra_claims"
    assert sorted(refused.value.problems) == [
        "destination: Select a valid choice. ccp-v3 is not one of the available choices. "
        "Valid values: admin_site, ccp, agent_workspace, custom_ccp.",
        "session_duration_s: Ensure this value is greater than or equal to 900.",
    ]


def test_it_refuses_answers_for_a_step_without_a_form() -> None:
    without_form = next(cls for cls in STEPS.values() if cls.form_class is None)

    with pytest.raises(StepInputError, match="takes no answers"):
        clean_step_inputs(without_form, {"anything": 1})


def test_it_takes_a_list_for_a_comma_separated_field() -> None:
    cleaned = clean_step_inputs(STEPS["connect_users"], {"security_profiles": ["Admin", "Agent"]})

    assert cleaned == {"security_profiles": ["Admin", "Agent"]}
