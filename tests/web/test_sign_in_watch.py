"""The "Sign in as a test user now" pages: starting a watch, the countdown page and its polled
fragment, and sign-in readings expiring after their retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation

from provisioning import tasks
from provisioning.aws.client import map_aws_error
from provisioning.models import SignInReading
from provisioning.services import sign_in_watch
from provisioning.services.sign_in_watch import sign_in_readings_expire
from tests.web.factories import make_connection, make_run

ROLE_ARN = "arn:aws:iam::123456789012:role/ConnectFederation"
PERSON = {"login": "agent1@contoso.example", "username": "agent1@contoso.example"}


@pytest.fixture
def run(db: None) -> Any:
    return make_run(
        flow_key="entra_connect",
        aws_connection=make_connection(),
        instance_id="11111111-2222-4333-8444-555555555555",
        status="succeeded",
        steps=[
            {
                "key": "entra_app",
                "status": "succeeded",
                "outputs": {"user_access_url": "https://myapps.microsoft.com/signin/x"},
            },
            {"key": "federation_role", "status": "succeeded", "outputs": {"role_arn": ROLE_ARN}},
            {"key": "entra_assignments", "status": "succeeded", "outputs": {"people": [PERSON]}},
            {"key": "sign_in_test", "status": "succeeded", "outputs": {}},
        ],
    )


def _start(admin_client: Any, run: Any, monkeypatch: Any, login: str) -> Any:
    sent: list[str] = []
    monkeypatch.setattr(tasks.watch_sign_in, "delay", sent.append)
    return admin_client.post(reverse("sign_in_watch_new", args=[run.pk]), {"login": login}), sent


def test_it_offers_the_watch_on_the_sign_in_test_step(admin_client, run) -> None:
    page = admin_client.get(reverse("run_detail", args=[run.pk])).content.decode()

    assert reverse("sign_in_watch_new", args=[run.pk]) in page
    assert "Sign in as a test user now" in page


def test_it_starts_a_watch_and_enqueues_its_first_look(
    admin_client, run, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response, sent = _start(admin_client, run, monkeypatch, PERSON["login"])

    reading = SignInReading.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("sign_in_watch", args=[run.pk, reading.pk])
    assert sent == [str(reading.pk)]
    watch = reading.facts["watch"]
    assert (reading.role_arn, reading.instance_id) == (ROLE_ARN, run.instance_id)
    assert watch["sign_in_url"] == "https://myapps.microsoft.com/signin/x"
    assert watch["username"] == PERSON["username"]


def test_it_refuses_to_watch_someone_not_assigned(admin_client, run, monkeypatch) -> None:
    response, sent = _start(admin_client, run, monkeypatch, "stranger@contoso.example")

    assert response.status_code == 400
    assert sent == []
    assert not SignInReading.objects.exists()


def test_the_page_counts_down_and_states_cloudtrails_delay(
    admin_client, run, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _start(admin_client, run, monkeypatch, PERSON["login"])
    reading = SignInReading.objects.get()
    url = reverse("sign_in_watch", args=[run.pk, reading.pk])

    page = admin_client.get(url).content.decode()
    fragment = admin_client.get(url, headers={"HX-Request": "true"})

    assert "within about 5 minutes" in page and "not guarantee" in page
    assert "Watching CloudTrail: 14:5" in page
    assert fragment.status_code == 200
    assert 'hx-trigger="every 2s"' in fragment.content.decode()
    assert "<html" not in fragment.content.decode()


def test_the_fragment_stops_polling_and_names_the_fix_once_refused(
    admin_client, run, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _start(admin_client, run, monkeypatch, PERSON["login"])
    reading = SignInReading.objects.get()
    watch = reading.facts["watch"]
    watch["federation"] = {
        "event_name": "GetFederationToken",
        "event_id": "e1",
        "event_time": "2026-12-04T19:00:00+00:00",
        "region": "ap-northeast-1",
        "username": PERSON["username"],
        "error_code": "UserNotFoundException",
        "error_message": "No user with the specified credentials was found.",
        "link": "connect_user",
    }
    SignInReading.objects.filter(pk=reading.pk).update(status="done", facts={"watch": watch})

    fragment = admin_client.get(
        reverse("sign_in_watch", args=[run.pk, reading.pk]), headers={"HX-Request": "true"}
    )

    body = fragment.content.decode()
    assert fragment.status_code == 286
    assert 'data-link="connect_user"' in body
    assert "Create the Connect user whose username equals the RoleSessionName" in body
    assert "every 2s" not in body


def test_a_refused_cloudtrail_read_is_stored_as_a_message_and_read_in_japanese(
    admin_client, run, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _start(admin_client, run, monkeypatch, PERSON["login"])
    reading = SignInReading.objects.get()
    # What the AWS client makes of CloudTrail's AccessDenied (the mapping of every AWS call).
    denied = map_aws_error(
        ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
            "LookupEvents",
        )
    )

    def refused(*_args: Any, **_kwargs: Any) -> Any:
        raise denied

    monkeypatch.setattr(sign_in_watch, "aws_client", lambda *a, **k: None)
    monkeypatch.setattr(sign_in_watch, "look_for_sign_in", refused)

    sign_in_watch.sign_in_watch_look(reading_id=str(reading.pk))

    reading.refresh_from_db()
    assert reading.status == "failed"
    # Stored as message ids (what went wrong, then what to do), not text in the worker's language.
    assert reading.error == "" and "AWS refused %(operation)s" in str(reading.error_message)
    page = admin_client.get(
        reverse("sign_in_watch", args=[run.pk, reading.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    ).content.decode()
    with translation.override("ja"):
        said = reading.error_text
    assert "CloudTrail" in page and said in page.replace("&quot;", '"').replace("&#x27;", "'")
    with translation.override("en"):
        assert reading.error_text != said


def test_a_watch_of_another_run_is_not_found(admin_client, run, monkeypatch) -> None:
    other = make_run(flow_key="entra_connect")
    reading = SignInReading.objects.create(
        requested_by_id=admin_client.session["_auth_user_id"],
        connection=run.aws_connection,
        facts={"watch": {"run_id": str(run.pk)}},
    )

    response = admin_client.get(reverse("sign_in_watch", args=[other.pk, reading.pk]))

    assert response.status_code == 404


def test_readings_older_than_their_retention_are_deleted(admin_user, run) -> None:
    keep_days = settings.WIZARD_SIGN_IN_READING_KEEP_DAYS
    old = SignInReading.objects.create(requested_by=admin_user, connection=run.aws_connection)
    new = SignInReading.objects.create(requested_by=admin_user, connection=run.aws_connection)
    SignInReading.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - dt.timedelta(days=keep_days, minutes=1)
    )

    deleted = sign_in_readings_expire()

    assert deleted == 1
    assert list(SignInReading.objects.values_list("pk", flat=True)) == [new.pk]
    assert settings.CELERY_BEAT_SCHEDULE["expire-sign-in-readings"]["task"] == (
        "wizard.tasks.expire_sign_in_readings"
    )
