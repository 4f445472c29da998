"""A run's messages read in the language of whoever reads them, not the one it started in."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from provisioning.models import AuditEvent, SetupRun, StepStatus
from tests.engine.runs import QUICK, drive, start_run

pytestmark = pytest.mark.django_db

ENGLISH = "The test cloud is throttling. (still failing after {retries} retries)"
JAPANESE = "The test cloud is throttling.（{retries} 回再試行しても失敗しています）"


def _messages(run: SetupRun) -> tuple[str, str]:
    """The failed step's message in English and in Japanese."""
    retries = run.steps.get(key="test_marker_two").error["message"]["params"]["retries"]
    return ENGLISH.format(retries=retries), JAPANESE.format(retries=retries)


def _failed_run(user: object, language: str) -> SetupRun:
    """A run started in `language` whose second step failed after its retries ran out (the
    runner's own message, around the cloud's words)."""
    with translation.override(language):
        run = start_run(user, inputs={**QUICK, "retryable_failures": {"test_marker_two": 10}})
    drive(run)
    assert run.steps.get(key="test_marker_two").status == StepStatus.FAILED
    return run


def _page(client: Client, run: SetupRun, language: str) -> str:
    url = reverse("run_detail", args=[run.pk])
    return client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()


@pytest.mark.parametrize("started_in", ["en", "ja"])
def test_a_runs_error_reads_in_the_language_of_whoever_reads_it(
    admin_client: Client, admin_user: object, started_in: str
) -> None:
    run = _failed_run(admin_user, started_in)
    assert run.language == started_in
    english_text, japanese_text = _messages(run)

    japanese = _page(admin_client, run, "ja")
    english = _page(admin_client, run, "en")

    assert japanese_text in japanese and english_text not in japanese
    assert english_text in english and japanese_text not in english


def test_the_audit_log_reads_the_runs_messages_in_the_readers_language(
    admin_client: Client, admin_user: object
) -> None:
    run = _failed_run(admin_user, "en")
    english_text, japanese_text = _messages(run)
    failed = AuditEvent.objects.filter(run=run, new_value__status="failed", step_key="").get()
    assert failed.message == ""
    assert failed.translatable_message["msgid"].startswith("%(message)s (still failing")

    url = reverse("audit_log") + f"?run={run.pk}"
    japanese = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    english = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert japanese_text[:40] in japanese
    assert english_text[:40] in english
