"""The run page: step cards, the live status fragment for htmx, and actions on runs and steps."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext

from provisioning.flows import FLOWS, PHONE_STEP, SKIPPED_STEP, Flow
from provisioning.models import SetupRun
from tests.web.factories import make_run
from wizard.change_sentences import change_sentence

pytestmark = pytest.mark.django_db

PLAN = {
    "changes": [
        {
            "action": "create",
            "resource_type": "saml_provider",
            "name": "EntraID-demo",
            "details": {"metadata_bytes": 4211},
            "diff": "",
        },
        {
            "action": "update",
            "resource_type": "iam_role",
            "name": "ConnectFederation",
            "details": {},
            "diff": "-old trust\n+new trust",
        },
    ],
    "warnings": ["The role is shared with another instance."],
    "needs_confirmation": True,
    "needs_input": False,
}


def _page(client: Client, run: SetupRun, **headers: str) -> str:
    return client.get(reverse("run_detail", args=[run.pk]), **headers).content.decode()


def test_it_shows_each_step_with_its_plan_outputs_and_error(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="failed",
        steps=[
            {"key": "web_ask", "status": "succeeded", "outputs": {"instance_id": "i-123"}},
            {
                "key": "web_create",
                "status": "failed",
                "plan": PLAN,
                "error": {
                    "code": "AccessDenied",
                    "message": "The AWS connection may not call iam:CreateSAMLProvider.",
                    "hint": "Add iam:CreateSAMLProvider to the connection's policy, then retry.",
                    "retryable": False,
                },
            },
        ],
    )

    html = _page(admin_client, run)

    assert "Ask the admin" in html and "Create the instance" in html
    assert "i-123" in html
    assert "saml_provider" in html and "EntraID-demo" in html
    assert "-old trust\n+new trust" in html
    assert "The role is shared with another instance." in html
    assert "may not call iam:CreateSAMLProvider" in html
    assert "Add iam:CreateSAMLProvider to the connection" in html
    assert reverse("step_retry", args=[run.pk, "web_create"]) in html
    assert reverse("run_resume", args=[run.pk]) in html
    assert f"{reverse('audit_log')}?run={run.pk}" in html


def test_it_never_shows_a_secret_a_step_put_in_its_outputs(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        steps=[
            {
                "key": "web_create",
                "status": "succeeded",
                "outputs": {"client_secret": "s3cr3t-v4lue"},
            }
        ]
    )

    html = _page(admin_client, run)

    assert "client_secret" in html
    assert "s3cr3t-v4lue" not in html


def test_it_polls_while_the_run_moves(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(status="running", steps=[{"key": "web_create", "status": "applying"}])

    html = _page(admin_client, run)

    assert f'hx-get="{reverse("run_status", args=[run.pk])}"' in html
    assert 'hx-trigger="every 1.5s"' in html
    assert 'hx-include=".step-seen, .phase-seen"' in html
    assert "Refresh</a>" in html


def _seen(html: str) -> list[str]:
    return re.findall(r'class="step-seen" name="seen" value="([^"]+)"', html)


def _poll(client: Client, run: SetupRun, seen: list[str]) -> Any:
    return client.get(reverse("run_status", args=[run.pk]), {"seen": seen}, HTTP_HX_REQUEST="true")


def test_it_answers_the_poll_with_the_status_section_and_no_unchanged_card(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="running",
        steps=[
            {"key": "web_ask", "status": "succeeded"},
            {"key": "web_create", "status": "applying", "plan": PLAN},
        ],
    )

    response = _poll(admin_client, run, _seen(_page(admin_client, run)))
    html = response.content.decode()

    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="run-status"')
    assert "<html" not in html
    assert 'hx-trigger="every 1.5s"' in html
    assert "1 of 2 steps done" in html
    assert 'id="step-web_ask"' not in html and 'id="step-web_create"' not in html
    # The applying step's clock comes each time; its card (and its plan) only when it changes.
    assert 'id="waiting-web_create" hx-swap-oob="outerHTML"' in html
    assert "EntraID-demo" not in html


def test_it_sends_a_changed_card_out_of_band(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(
        status="running",
        steps=[
            {"key": "web_ask", "status": "succeeded"},
            {"key": "web_create", "status": "applying"},
        ],
    )
    seen = _seen(_page(admin_client, run))
    step = run.steps.get(key="web_create")
    step.status = "failed"
    step.error = {"message": "The instance alias is taken."}
    step.save()

    html = _poll(admin_client, run, seen).content.decode()

    assert '<li class="step-card step-card--failed" id="step-web_create" hx-swap-oob' in html
    assert "The instance alias is taken." in html
    assert 'id="step-web_ask"' not in html


def test_the_last_poll_brings_the_form_of_a_step_that_was_planned_before_the_run_waited(
    admin_client: Client, web_flow: Flow
) -> None:
    """The runner plans a step, then (a moment later, in its own commit) sets the run waiting. A
    poll between the two shows the planned card without its form; the next poll, the last one
    (the run is at rest), must bring the form although the step itself did not change."""
    run = make_run(
        status="running",
        steps=[{"key": "web_ask", "status": "planned", "plan": {"needs_input": True}}],
    )
    seen = _seen(_page(admin_client, run))
    SetupRun.objects.filter(pk=run.pk).update(status="waiting")

    response = _poll(admin_client, run, seen)
    html = response.content.decode()

    assert response.status_code == 286
    assert 'id="step-web_ask" hx-swap-oob="outerHTML"' in html
    assert reverse("step_inputs", args=[run.pk, "web_ask"]) in html


def test_it_asks_a_page_without_the_steps_to_reload(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(status="running", steps=[{"key": "web_create", "status": "applying"}])

    response = _poll(admin_client, run, [])

    assert response.status_code == 204
    assert response["HX-Refresh"] == "true"


def test_it_stops_polling_with_286_when_the_run_is_at_rest(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(status="running", steps=[{"key": "web_create", "status": "applying"}])
    seen = _seen(_page(admin_client, run))
    SetupRun.objects.filter(pk=run.pk).update(status="succeeded")
    step = run.steps.get()
    step.status = "succeeded"
    step.save()

    response = _poll(admin_client, run, seen)
    html = response.content.decode()

    assert response.status_code == 286
    assert 'data-step-status="succeeded"' in html
    assert "hx-trigger" not in html
    assert "hx-trigger" not in _page(admin_client, run)


def test_it_shows_how_long_a_step_has_waited_for_the_cloud(
    admin_client: Client, web_flow: Flow
) -> None:
    since = timezone.now() - dt.timedelta(minutes=2, seconds=5)
    run = make_run(steps=[{"key": "web_create", "status": "applying", "waiting_since": since}])

    html = _page(admin_client, run)

    assert "Waiting for the cloud for 2 min 0" in html


def test_it_offers_apply_for_a_plan_that_waits_for_confirmation(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="waiting", steps=[{"key": "web_create", "status": "planned", "plan": PLAN}]
    )

    html = _page(admin_client, run)

    assert reverse("step_apply", args=[run.pk, "web_create"]) in html
    assert reverse("step_retry", args=[run.pk, "web_create"]) not in html


def test_it_asks_for_a_step_input_and_keeps_what_was_typed_on_a_mistake(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="waiting",
        steps=[{"key": "web_ask", "status": "planned", "plan": {"needs_input": True}}],
    )
    url = reverse("step_inputs", args=[run.pk, "web_ask"])

    page = _page(admin_client, run)
    response = admin_client.post(
        url, {"step-web_ask-agent_count": "0", "step-web_ask-team_name": "Tokyo support"}
    )
    html = response.content.decode()

    assert f'action="{url}"' in page
    assert response.status_code == 200
    assert 'value="Tokyo support"' in html
    assert "greater than or equal to 1" in html


def test_it_refuses_input_for_a_step_that_does_not_wait_for_it(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(status="running", steps=[{"key": "web_ask", "status": "applying"}])

    response = admin_client.post(reverse("step_inputs", args=[run.pk, "web_ask"]), follow=True)

    assert "This step is not waiting for input." in response.content.decode()


def test_it_asks_before_rolling_back_and_lists_what_goes(
    admin_client: Client, web_flow: Flow
) -> None:
    created = [{"resource_type": "saml_provider", "identifier": "arn:aws:iam::1:saml-provider/X"}]
    run = make_run(
        status="failed",
        steps=[{"key": "web_create", "status": "failed", "created_resources": created}],
    )

    run_page = _page(admin_client, run)
    confirm = admin_client.get(reverse("run_rollback", args=[run.pk])).content.decode()

    assert f'href="{reverse("run_rollback", args=[run.pk])}"' in run_page
    assert "arn:aws:iam::1:saml-provider/X" in confirm
    assert f'action="{reverse("run_rollback", args=[run.pk])}"' in confirm


def test_it_says_why_an_action_was_refused(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(status="succeeded", steps=[{"key": "web_create", "status": "succeeded"}])

    response = admin_client.post(reverse("run_cancel", args=[run.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("run_detail", args=[run.pk])
    assert 'class="message message--error"' in response.content.decode()
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_it_cancels_a_running_run(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(status="running", steps=[{"key": "web_create", "status": "pending"}])

    response = admin_client.post(reverse("run_cancel", args=[run.pk]), follow=True)

    run.refresh_from_db()
    assert run.status == "cancelled"
    assert "The run is cancelled" in response.content.decode()


def test_it_answers_404_for_an_unknown_run_or_step(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(steps=[{"key": "web_create", "status": "failed"}])

    assert (
        admin_client.get(
            reverse("run_detail", args=["00000000-0000-4000-8000-00000000dead"])
        ).status_code
        == 404
    )
    assert admin_client.post(reverse("step_retry", args=[run.pk, "nope"])).status_code == 404


def test_it_saves_a_step_answer_and_lets_the_run_continue(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="waiting",
        steps=[{"key": "web_ask", "status": "planned", "plan": {"needs_input": True}}],
    )

    response = admin_client.post(
        reverse("step_inputs", args=[run.pk, "web_ask"]),
        {"step-web_ask-agent_count": "40", "step-web_ask-team_name": "Tokyo support"},
    )

    step = run.steps.get()
    run.refresh_from_db()
    assert response["Location"] == reverse("run_detail", args=[run.pk])
    assert step.inputs == {"agent_count": 40, "team_name": "Tokyo support"}
    assert step.status == "pending"
    assert run.status == "running"


def test_it_applies_a_confirmed_plan(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(
        status="waiting", steps=[{"key": "web_create", "status": "planned", "plan": PLAN}]
    )

    admin_client.post(reverse("step_apply", args=[run.pk, "web_create"]))

    run.refresh_from_db()
    assert run.status == "running"
    assert run.steps.get().status == "applying"


def test_it_lets_the_admin_correct_a_failed_steps_answer_and_retry_in_the_same_run(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="failed",
        steps=[
            {
                "key": "web_ask",
                "status": "failed",
                "inputs": {"agent_count": 5000, "team_name": "Tokyo support"},
                "error": {"message": "Connect refused 5000 agents."},
            }
        ],
    )
    url = reverse("step_inputs", args=[run.pk, "web_ask"])

    page = _page(admin_client, run)
    mistake = admin_client.post(url, {"step-web_ask-agent_count": "0"})
    response = admin_client.post(
        url, {"step-web_ask-agent_count": "40", "step-web_ask-team_name": "Tokyo support"}
    )

    assert "Change your answers and retry" in page and f'action="{url}"' in page
    assert 'value="5000"' in page  # what was answered before, to edit
    assert "greater than or equal to 1" in mistake.content.decode()
    assert '<details class="step-answers" open>' in mistake.content.decode()
    step = run.steps.get()
    run.refresh_from_db()
    assert response["Location"] == reverse("run_detail", args=[run.pk])
    assert step.inputs == {"agent_count": 40, "team_name": "Tokyo support"}
    assert (step.status, step.error, run.status) == ("pending", {}, "running")
    assert run.pk == SetupRun.objects.get().pk  # the same run, not a new one


def _phase(html: str) -> list[str]:
    return re.findall(r'class="phase-seen" name="phase" value="([^"]*)"', html)


def test_a_message_of_a_phase_shows_while_the_phase_lasts(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(status="failed", steps=[{"key": "web_create", "status": "failed"}])

    response = admin_client.post(reverse("run_resume", args=[run.pk]), follow=True)
    html = response.content.decode()
    run.refresh_from_db()

    # Shown once, in the container the status poll can clear, tagged with the phase it started.
    assert html.count("The run continues from where it stopped.") == 1
    assert '<div id="phase-messages">' in html
    assert _phase(html) == [run.status] and run.status != "failed"
    # While the run is in that phase, the poll leaves the message alone.
    still = _poll_with_phase(admin_client, run, _seen(html), run.status).content.decode()
    assert 'id="phase-messages"' not in still
    # Without JavaScript a reload no longer shows it: a flash message shows once.
    assert "The run continues" not in _page(admin_client, run)


def test_the_poll_clears_a_message_once_the_run_moved_on(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(
        status="waiting", steps=[{"key": "web_create", "status": "planned", "plan": PLAN}]
    )
    html = admin_client.post(
        reverse("step_apply", args=[run.pk, "web_create"]), follow=True
    ).content.decode()
    assert "Applying the plan." in html and _phase(html) == ["running"]
    SetupRun.objects.filter(pk=run.pk).update(status="succeeded")
    run.steps.update(status="succeeded")

    polled = _poll_with_phase(admin_client, run, _seen(html), "running").content.decode()

    assert '<div id="phase-messages" hx-swap-oob="outerHTML"></div>' in polled
    assert "Applying the plan." not in polled


def test_a_message_of_another_page_stays_in_the_usual_list(
    admin_client: Client, web_flow: Flow
) -> None:
    run = make_run(status="succeeded", steps=[{"key": "web_create", "status": "succeeded"}])

    html = admin_client.post(reverse("run_cancel", args=[run.pk]), follow=True).content.decode()

    # A refusal is no phase: the page's usual list shows it, the phase container stays empty.
    assert 'class="message message--error"' in html
    assert '<div id="phase-messages"></div>' in html


def _poll_with_phase(client: Client, run: SetupRun, seen: list[str], phase: str) -> Any:
    return client.get(
        reverse("run_status", args=[run.pk]),
        {"seen": seen, "phase": phase},
        HTTP_HX_REQUEST="true",
    )


def test_a_step_throttled_by_the_cloud_shows_a_calm_counter_not_an_error(
    admin_client: Client, web_flow: Flow
) -> None:
    next_try = timezone.now() + dt.timedelta(seconds=42)
    run = make_run(
        status="running",
        steps=[
            {
                "key": "web_create",
                "status": "applying",
                "error": {
                    "code": "ThrottlingException",
                    "message": "Rate exceeded",
                    "hint": "",
                    "retryable": True,
                    "rate_limit_waits": 3,
                    "rate_limited": True,
                    "retry_at": next_try.isoformat(),
                },
            }
        ],
    )
    # Times read as the `when` filter writes them, in <time>; compared here as text.
    at = timezone.localtime(next_try).strftime("%Y-%m-%d %H:%M:%S %Z")

    html = _text(_page(admin_client, run))

    assert f"Waiting for the API's rate limit: try 3 of 100, next try at {at}." in html
    assert "Rate exceeded" not in html
    assert 'class="problem"' not in html
    # The poll brings the counter each time, calm too.
    polled = _text(_poll(admin_client, run, _seen(_page(admin_client, run))).content.decode())
    assert f"try 3 of 100, next try at {at}." in polled
    assert 'class="problem"' not in polled
    japanese = _text(_page(admin_client, run, HTTP_ACCEPT_LANGUAGE="ja"))
    assert f"API のレート制限のため待機中: 試行 3 / 100 回、次の試行は {at}。" in japanese


def test_a_rollback_throttled_by_the_cloud_shows_a_calm_counter_not_an_error(
    admin_client: Client, web_flow: Flow, settings: Any
) -> None:
    """Rolling back keeps the step's status (succeeded) while it retries: the runner marks the
    throttled rollback's error as it does apply's, and the card shows the counter."""
    next_try = timezone.now() + dt.timedelta(seconds=30)
    run = make_run(
        status="rolling_back",
        steps=[
            {
                "key": "web_create",
                "status": "succeeded",
                "created_resources": [{"type": "saml_provider", "id": "EntraID-demo"}],
                "error": {
                    "code": "ThrottlingException",
                    "message": "Rate exceeded",
                    "hint": "",
                    "retryable": True,
                    "retries": 2,
                    "rate_limited": True,
                    "retry_at": next_try.isoformat(),
                },
            }
        ],
    )
    at = timezone.localtime(next_try).strftime("%Y-%m-%d %H:%M:%S %Z")
    total = settings.WIZARD_STEP_MAX_RETRIES

    html = _text(_page(admin_client, run))

    assert f"Waiting for the API's rate limit: try 2 of {total}, next try at {at}." in html
    assert "Rate exceeded" not in html
    assert 'class="problem"' not in html
    polled = _text(_poll(admin_client, run, _seen(_page(admin_client, run))).content.decode())
    assert f"try 2 of {total}, next try at {at}." in polled
    assert 'class="problem"' not in polled
    # Once rolled back, the step's old error is no rate limit any more.
    run.steps.update(status="rolled_back")
    assert "rate limit:" not in _page(admin_client, run)


def test_a_skipped_phone_step_says_why_in_its_plan_in_the_readers_language(
    admin_client: Client,
) -> None:
    reason = FLOWS["entra"].skip_reason(PHONE_STEP, {})
    run = make_run(
        flow_key="entra",
        status="succeeded",
        steps=[
            {"key": "sign_in_test", "status": "succeeded"},
            {
                "key": PHONE_STEP,
                "status": "skipped",
                # As the runner writes it: the reason a message id, the step its name.
                "plan": {
                    "changes": [
                        {
                            "action": "nothing",
                            "resource_type": SKIPPED_STEP,
                            "name": PHONE_STEP,
                            "details": {"reason": {"msgid": reason, "params": {}}},
                        }
                    ],
                    "skipped": True,
                },
            },
        ],
    )

    html = _text(_page(admin_client, run))
    japanese = _text(_page(admin_client, run, HTTP_ACCEPT_LANGUAGE="ja"))

    assert f"{reason}" in html and "nothing to change" not in html
    assert "Skipped" in html and "2 of 2 steps done" in html
    assert "Japanese phone numbers" in html
    with translation.override("ja"):
        assert gettext(reason) in japanese and gettext(reason) != reason
        # The plan's sentence is the reason, not the step's key.
        assert change_sentence(run.steps.get(key=PHONE_STEP).plan["changes"][0]) == gettext(reason)


def test_a_failed_step_still_shows_its_error(admin_client: Client, web_flow: Flow) -> None:
    run = make_run(
        status="failed",
        steps=[
            {
                "key": "web_create",
                "status": "failed",
                "error": {
                    "message": "Rate exceeded (still failing after 100 retries)",
                    "rate_limited": True,
                },
            }
        ],
    )

    html = _page(admin_client, run)

    assert 'class="problem"' in html and "still failing after 100 retries" in html
    assert "rate limit:" not in html


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_an_older_rows_plain_text_error_shows_as_written_in_any_language(
    admin_client: Client, web_flow: Flow
) -> None:
    # Rows written before messages were stored as ids hold finished text: shown as it is.
    run = make_run(
        status="failed",
        steps=[
            {
                "key": "web_create",
                "status": "failed",
                "error": {"message": "The role is gone.", "hint": "Retry the step."},
            }
        ],
    )

    html = _page(admin_client, run, HTTP_ACCEPT_LANGUAGE="ja")

    assert "The role is gone." in html and "Retry the step." in html


def test_a_rotation_run_is_named_as_such_and_draws_the_links_it_changes(
    admin_client: Client,
) -> None:
    run = make_run(
        flow_key="entra_signing_rotation",
        status="running",
        steps=[
            {"key": "signing_certificate_new", "status": "succeeded"},
            {"key": "saml_provider_overlap", "status": "applying"},
            {"key": "signing_certificate_switch", "status": "pending"},
            {"key": "signing_certificate_sign_in", "status": "pending"},
            {"key": "saml_provider_retire_old", "status": "pending"},
        ],
    )

    html = _page(admin_client, run)
    japanese = _page(admin_client, run, HTTP_ACCEPT_LANGUAGE="ja")

    assert "Certificate rotation" in html and "Setup run" not in html
    assert "証明書のローテーション" in japanese
    assert re.findall(r'data-link="(\w+)"', html) == ["idp_app", "saml_provider"]
    assert 'data-link="saml_provider" data-state="working"' in html
