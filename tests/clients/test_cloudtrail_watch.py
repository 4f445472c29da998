"""The sign-in watcher against the sandbox's CloudTrail: a person signs in through the sandbox's
AWS sign-in endpoint, and the watcher finds their events and names the link that refused them,
for a success and for each way the chain refuses; every lookup audited and rate limited."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User

from provisioning import tasks
from provisioning.audit import AuditScope
from provisioning.aws.api_quotas import api_rate
from provisioning.aws.client import aws_client
from provisioning.aws.cloudtrail import (
    SignInTrail,
    WatchedSignIn,
    assume_role_link,
    look_for_sign_in,
)
from provisioning.models import Connection, SignInReading
from provisioning.services import sign_in_watch
from sandbox.saml_idp import issue_signing_certificate
from tests.clients.conftest import assert_every_call_started_and_finished
from tests.sandbox import test_signin_endpoint as signin
from tests.sandbox.test_signin_endpoint import (
    Federation,
    _agent,
    _new_username,
    _post,
    _relay_state,
    _saml_response,
)
from tests.web.factories import make_run

idp_certificate = signin.idp_certificate
federation = signin.federation


def _watch(
    connection: Connection,
    scope: AuditScope,
    federation: Federation,
    username: str,
    *,
    role: str = "instance_id_form",
    since: dt.datetime,
) -> SignInTrail:
    watched = WatchedSignIn(
        role_arn=federation.role_arns[role],
        instance_id=federation.instance_id,
        instance_region="ap-northeast-1",
        role_session_name=username,
        since=since,
    )
    return look_for_sign_in(
        lambda region: aws_client(connection, "cloudtrail", region=region, audit=scope), watched
    )


@pytest.fixture
def aws(sandbox_connections: dict[str, Connection]) -> Connection:
    return sandbox_connections["aws"]


def _sign_in(sandbox: Any, federation: Federation, certificate: Any, username: str, **kw: Any):
    relay = kw.pop("relay_state", None) or _relay_state(federation)
    return _post(
        sandbox, _saml_response(federation, certificate, session_name=username, **kw), relay
    )


def _since() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)


def test_it_sees_a_sign_in_that_went_through(
    sandbox, aws, scope, federation, idp_certificate
) -> None:
    since = _since()
    username = _agent(sandbox, federation, _new_username())
    assert _sign_in(sandbox, federation, idp_certificate, username).json()["ok"] is True

    trail = _watch(aws, scope, federation, username, since=since)

    assert trail.finished and trail.signed_in and trail.refusal is None
    assert trail.assume_role is not None and trail.assume_role.region == "us-east-1"
    assert trail.federation is not None and trail.federation.username == username
    rows = assert_every_call_started_and_finished("aws")
    assert {row.operation for row in rows} == {"LookupEvents"}


def test_it_sees_nothing_before_anyone_signs_in(sandbox, aws, scope, federation) -> None:
    trail = _watch(aws, scope, federation, _new_username(), since=_since())

    assert (trail.assume_role, trail.federation, trail.finished) == (None, None, False)


@pytest.mark.parametrize(
    ("case", "event", "code", "link"),
    [
        ("no_connect_user", "GetFederationToken", "UserNotFoundException", "connect_user"),
        ("no_permission", "GetFederationToken", "AccessDeniedException", "policy"),
        ("no_instance", "GetFederationToken", "ResourceNotFoundException", "connect_instance"),
        ("other_role", "GetFederationToken", "InvalidRequestException", "user_binding"),
        ("other_key", "AssumeRoleWithSAML", "InvalidIdentityToken", "iam_provider"),
        ("untrusted_audience", "AssumeRoleWithSAML", "AccessDenied", "role_trust"),
    ],
)
def test_it_names_the_link_that_refused_the_sign_in(
    sandbox, aws, scope, federation, idp_certificate, case, event, code, link
) -> None:
    since = _since()
    username = _new_username()
    role = "instance_id_form"
    certificate = idp_certificate
    relay = None
    if case != "no_connect_user":
        _agent(sandbox, federation, username)
    if case == "no_permission":
        role = "other_instance_only"
    if case == "no_instance":
        relay = _relay_state(federation).replace(
            federation.instance_id, "0" * 8 + "-0000-4000-8000-" + "0" * 12
        )
    if case == "other_role":
        _sign_in(sandbox, federation, idp_certificate, username, role="userid_form")
    if case == "other_key":
        certificate = issue_signing_certificate("CN=Someone else")
    if case == "untrusted_audience":
        role = "regional_audience_only"
    reply = _sign_in(sandbox, federation, certificate, username, role=role, relay_state=relay)
    assert reply.json()["ok"] is False

    watched_instance = federation
    if case == "no_instance":
        watched_instance = Federation(
            **{**federation.__dict__, "instance_id": relay.rsplit("/", 1)[-1]}
        )
    trail = _watch(aws, scope, watched_instance, username, role=role, since=since)

    refusal = trail.refusal
    assert trail.finished and not trail.signed_in
    assert refusal is not None
    assert (refusal.event_name, refusal.error_code, refusal.link) == (event, code, link)


def test_it_waits_its_turn_at_two_lookups_a_second(aws, scope) -> None:
    client = aws_client(aws, "cloudtrail", region="us-east-1", audit=scope)

    rate = api_rate(client, "LookupEvents")

    assert (rate.per_second, rate.source) == (2, "documented")


@pytest.mark.parametrize(
    ("code", "message", "link"),
    [
        ("InvalidIdentityToken", "Specified provider doesn't exist", "iam_provider"),
        ("InvalidIdentityToken", "Invalid SAML response", "claims"),
        ("ExpiredTokenException", "Token expired", "claims"),
        (
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration",
            "claims",
        ),
        ("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML", "role_trust"),
    ],
)
def test_it_maps_each_sts_refusal_to_a_link(code: str, message: str, link: str) -> None:
    assert assume_role_link(code, message) == link


@pytest.fixture
def admin_user(db: None) -> User:
    return User.objects.create_user("watcher")


@pytest.fixture
def watch_run(aws: Connection, federation: Federation) -> Any:
    return make_run(
        flow_key="entra_connect",
        aws_connection=aws,
        instance_id=federation.instance_id,
        steps=[
            {
                "key": "entra_app",
                "status": "succeeded",
                "outputs": {"sandbox_sso_url": "https://127.0.0.1:1/sandbox/sso/app"},
            },
            {
                "key": "federation_role",
                "status": "succeeded",
                "outputs": {"role_arn": federation.role_arns["instance_id_form"]},
            },
            {"key": "entra_assignments", "status": "succeeded", "outputs": {"people": []}},
            {"key": "sign_in_test", "status": "succeeded", "outputs": {}},
        ],
    )


def test_a_watch_looks_again_later_until_the_sign_in_shows_up(
    sandbox, watch_run, federation, idp_certificate, admin_user, monkeypatch, settings
) -> None:
    username = _agent(sandbox, federation, _new_username())
    watch_run.steps.filter(key="entra_assignments").update(
        outputs={"people": [{"login": username, "username": username}]}
    )
    enqueued: list[tuple[Any, float]] = []
    monkeypatch.setattr(
        tasks.watch_sign_in,
        "apply_async",
        lambda args, countdown: enqueued.append((args, countdown)),
    )
    reading = sign_in_watch.sign_in_watch_start(
        user=admin_user, run_id=watch_run.pk, login=username
    )
    assert reading.facts["watch"]["sign_in_url"].endswith(f"?user={username.replace('@', '%40')}")

    sign_in_watch.sign_in_watch_look(reading_id=str(reading.pk))
    reading.refresh_from_db()
    assert reading.status == "pending" and reading.facts["watch"]["looks"] == 1
    assert enqueued == [((str(reading.pk),), settings.WIZARD_SIGN_IN_WATCH_POLL_S)]

    _sign_in(sandbox, federation, idp_certificate, username)
    sign_in_watch.sign_in_watch_look(reading_id=str(reading.pk))
    reading.refresh_from_db()
    assert reading.status == "done"
    assert reading.facts["watch"]["federation"]["error_code"] == ""
    assert len(enqueued) == 1
    assert SignInReading.objects.get(pk=reading.pk).read_at is not None


def test_a_watch_ends_unseen_when_its_time_is_over(
    watch_run, admin_user, monkeypatch, settings
) -> None:
    watch_run.steps.filter(key="entra_assignments").update(
        outputs={"people": [{"login": "nobody@example.com", "username": "nobody@example.com"}]}
    )
    monkeypatch.setattr(tasks.watch_sign_in, "apply_async", lambda args, countdown: None)
    settings.WIZARD_SIGN_IN_WATCH_S = 0
    reading = sign_in_watch.sign_in_watch_start(
        user=admin_user, run_id=watch_run.pk, login="nobody@example.com"
    )

    sign_in_watch.sign_in_watch_look(reading_id=str(reading.pk))

    reading.refresh_from_db()
    assert reading.status == "done"
    assert reading.facts["watch"]["timed_out"] is True
