"""The "Inspect a sign-in" page, for a viewer, in English and Japanese: responses minted by the
sandbox IdP, good and broken at each link, checked against the sandbox's IAM and Connect as read
by a real Celery worker (the web request reads nothing from AWS), or against pasted metadata."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.html import escape

from provisioning.connections.sandbox_registration import register_sandbox_connections
from provisioning.models import Cloud, Connection, SignInReading
from provisioning.services.sign_in_inspection import LINKS, sign_in_reading_run
from sandbox.server import Sandbox
from tests.web.factories import make_connection, make_run
from tests.web.sign_in_cases import CASES, InspectedFederation, build_federation, minted_response
from wizard.roles import VIEWER, role_group

LANGUAGES = {"en": "en-US,en;q=0.9", "ja": "ja-JP,ja;q=0.9"}
# How long the worker may take to read IAM and Connect for one inspection.
READING_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def federation(sandbox: Sandbox) -> InspectedFederation:
    return build_federation(sandbox)


@pytest.fixture
def viewer_client(db: None) -> Client:
    user = User.objects.create_user("viewer")
    user.groups.add(role_group(VIEWER))
    client = Client()
    client.force_login(user)
    return client


def _sandbox_aws(sandbox: Sandbox, settings: Any) -> Connection:
    settings.WIZARD_MODE = "sandbox"
    settings.SANDBOX_FILE = sandbox.state_dir / "sandbox.json"
    registered = register_sandbox_connections(sandbox_file=settings.SANDBOX_FILE)
    return next(connection for connection in registered if connection.cloud == Cloud.AWS)


def _verdict_link(html: str) -> str:
    start = html.index('id="verdict" data-link="') + len('id="verdict" data-link="')
    return html[start : html.index('"', start)]


@pytest.mark.parametrize("language", list(LANGUAGES))
@pytest.mark.parametrize("case", list(CASES))
def test_it_names_the_broken_link_after_the_worker_reads_aws(
    case, language, federation, sandbox, settings, celery_worker, viewer_client
) -> None:
    connection = _sandbox_aws(sandbox, settings)
    body = urlencode(
        {"SAMLResponse": minted_response(federation, case), "RelayState": federation.relay_state}
    )
    accept = LANGUAGES[language]

    page = viewer_client.post(
        reverse("inspect_sign_in"),
        {"pasted": body, "connection": connection.pk},
        HTTP_ACCEPT_LANGUAGE=accept,
    )

    assert page.status_code == 200
    assert SignInReading.objects.count() == 1  # what AWS holds, read by the worker...
    reading = SignInReading.objects.get()
    assert minted_response(federation, case)[:40] not in str(reading.facts)  # ...never the response
    html = page.content.decode()
    assert 'id="reading-pending"' in html
    posted = html.split('name="posted" value="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    deadline = time.monotonic() + READING_TIMEOUT_S
    while True:
        result = viewer_client.post(
            reverse("inspect_sign_in_result", args=[reading.pk]),
            {"posted": posted},
            HTTP_ACCEPT_LANGUAGE=accept,
            HTTP_HX_REQUEST="true",
        )
        if result.status_code == 286:  # htmx: stop polling, the reading is done
            break
        assert time.monotonic() < deadline, celery_worker.log_text()[-3000:]
        time.sleep(0.3)
    html = result.content.decode()
    assert _verdict_link(html) == CASES[case], html
    with translation.override(language):
        if CASES[case]:
            assert escape(str(LINKS[CASES[case]].name)) in html
            assert escape(str(LINKS[CASES[case]].fix)) in html
        else:
            expected = "壊れている箇所はありません" if language == "ja" else "No broken link: AWS"
            assert expected in html
    assert html.count('data-outcome="failed"') >= (1 if CASES[case] else 0)


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_it_checks_an_uploaded_response_against_pasted_metadata(
    language, federation, viewer_client
) -> None:
    upload = SimpleUploadedFile(
        "response.txt", minted_response(federation, "wrong_audience").encode()
    )

    page = viewer_client.post(
        reverse("inspect_sign_in"),
        {"upload": upload, "metadata": federation.metadata},
        HTTP_ACCEPT_LANGUAGE=LANGUAGES[language],
    )

    html = page.content.decode()
    assert _verdict_link(html) == "audience"
    assert SignInReading.objects.count() == 0
    assert 'id="check-signature" data-outcome="passed"' in html
    assert 'id="check-connect_user" data-outcome="not_checked"' in html
    assert "https://signin.example.com/saml" in html  # the assertion's facts are shown
    stored = "保存されません" if language == "ja" else "Nothing you paste or upload is stored"
    assert stored in html


def test_it_tells_what_to_paste_when_it_finds_no_response(viewer_client) -> None:
    entity_bomb = "<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>"

    page = viewer_client.post(reverse("inspect_sign_in"), {"pasted": entity_bomb})

    html = page.content.decode()
    assert "No SAML response could be read from it" in html
    assert "DOCTYPE" in html
    assert SignInReading.objects.count() == 0


def test_it_refuses_another_users_reading(federation, viewer_client, db) -> None:
    other = User.objects.create_user("other")
    connection = Connection.objects.create(cloud=Cloud.AWS, name="aws", config={})
    reading = SignInReading.objects.create(requested_by=other, connection=connection)

    page = viewer_client.post(reverse("inspect_sign_in_result", args=[reading.pk]), {"posted": ""})

    assert page.status_code == 404


def test_it_is_linked_from_a_run_with_the_runs_instance_filled_in(web_flow, viewer_client) -> None:
    run = make_run(instance_id="11111111-2222-4333-8444-555555555555", region="ap-northeast-1")

    run_page = viewer_client.get(reverse("run_detail", args=[run.pk])).content.decode()
    link = run_page.split('id="inspect-sign-in"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
    form_page = viewer_client.get(link.replace("&amp;", "&")).content.decode()

    assert link.startswith(reverse("inspect_sign_in"))
    assert 'value="11111111-2222-4333-8444-555555555555"' in form_page
    assert 'value="ap-northeast-1"' in form_page


def test_it_says_why_aws_could_not_be_read_in_the_readers_language(viewer_client, db) -> None:
    connection = make_connection(config={"method": "carrier pigeon"})
    reading = SignInReading.objects.create(
        requested_by=User.objects.get(username="viewer"), connection=connection, region="eu-west-2"
    )

    sign_in_reading_run(reading_id=str(reading.pk), role_session_name="alice")

    reading.refresh_from_db()
    assert reading.error_message["joined"][0]["msgid"] == "Unknown AWS sign-in method “%(method)s”."
    with translation.override("en"):
        assert reading.error_text.startswith("Unknown AWS sign-in method “carrier pigeon”.")
    with translation.override("ja"):
        assert "carrier pigeon" in reading.error_text
        assert "Unknown AWS sign-in method" not in reading.error_text
