"""The AWS client against the sandbox: sign-in, audit rows, redaction, error mapping, trust."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.db import connection as database

from provisioning.audit import AuditScope
from provisioning.aws.client import aws_client, map_aws_error
from provisioning.errors import (
    AccessDenied,
    Conflict,
    InvalidRequest,
    NotFound,
    PermanentError,
    QuotaExceeded,
    RetryableError,
    Throttled,
    Unauthenticated,
    Unavailable,
)
from provisioning.models import AuditKind, Cloud, Connection
from sandbox.aws.service_quotas import DEFAULT_PHONE_NUMBERS_PER_INSTANCE
from sandbox.knobs import Knobs
from sandbox.server import AWS_ACCOUNT_ID, Sandbox
from tests.clients.conftest import (
    all_audit_text,
    assert_every_call_started_and_finished,
    call_rows,
)
from tests.sandbox.aws_clients import active_instance

pytestmark = pytest.mark.django_db

CANARY_KEY = "canary-secret-access-key-4f1d9c"  # noqa: S105
CANARY_PASSWORD = "canary-password-8e2b7a"  # noqa: S105


def _sandbox_aws(method: str = "access_key", **config: str) -> Connection:
    connection = Connection(
        cloud=Cloud.AWS, name=f"aws {method}", is_sandbox=True, config={"method": method, **config}
    )
    connection.set_secrets({"access_key_id": "AKIACANARY000000", "secret_access_key": CANARY_KEY})
    connection.save()
    return connection


def test_it_signs_in_to_the_sandbox_and_audits_the_call(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    sts = aws_client(sandbox_connections[Cloud.AWS], "sts", region="", audit=scope)

    identity = sts.get_caller_identity()

    assert identity["Account"] == AWS_ACCOUNT_ID
    started, finished = assert_every_call_started_and_finished(Cloud.AWS)
    assert (started.service, started.operation, started.actor_label) == (
        "sts",
        "GetCallerIdentity",
        "client tests",
    )
    assert finished.outcome == "ok"
    assert finished.response["http_status"] == 200
    assert finished.response["attempts"] == 1
    assert finished.response["Arn"] == identity["Arn"]
    assert finished.response["request_id"]


def test_it_writes_no_secret_to_the_audit_log(sandbox_mode: Sandbox, scope: AuditScope) -> None:
    iam = aws_client(_sandbox_aws(), "iam", region="", audit=scope)

    iam.create_user(UserName="canary-user")
    # A parameter named like a secret, and a connection secret inside an ordinary parameter.
    iam.create_login_profile(UserName="canary-user", Password=CANARY_PASSWORD)
    iam.create_role(
        RoleName="canary-role",
        AssumeRolePolicyDocument="{}",
        Description=f"copied by mistake: {CANARY_KEY}",
    )

    rows = assert_every_call_started_and_finished(Cloud.AWS)
    assert len(rows) == 6
    text = all_audit_text()
    assert CANARY_KEY not in text
    assert CANARY_PASSWORD not in text
    login_profile = next(
        r for r in rows if r.operation == "CreateLoginProfile" and r.kind == AuditKind.CALL_STARTED
    )
    assert login_profile.request == {"UserName": "canary-user", "Password": "***"}


def test_it_assumes_the_connections_role_with_its_external_id(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    connection = _sandbox_aws(
        "assume_role", role_arn=f"arn:aws:iam::{AWS_ACCOUNT_ID}:role/wizard", external_id="ext-42"
    )
    sts = aws_client(connection, "sts", region="", audit=scope)

    identity = sts.get_caller_identity()

    assert ":assumed-role/wizard/connect-sso-wizard" in identity["Arn"]
    rows = assert_every_call_started_and_finished(Cloud.AWS)
    assumed = [r for r in rows if r.operation == "AssumeRole"]
    assert assumed[0].request["ExternalId"] == "ext-42"
    assert assumed[0].request["RoleArn"].endswith(":role/wizard")
    # The temporary secret key and session token are kept out of the row.
    assert set(assumed[1].response) <= {
        "http_status",
        "request_id",
        "attempts",
        "AssumedRoleUser.AssumedRoleId",
        "AssumedRoleUser.Arn",
    }


def test_it_assumes_the_role_once_for_every_step_until_the_connection_changes(
    sandbox_mode: Sandbox,
) -> None:
    connection = _sandbox_aws("assume_role", role_arn=f"arn:aws:iam::{AWS_ACCOUNT_ID}:role/wizard")
    steps = [AuditScope(actor_label="client tests", step_key=key) for key in ("a", "b", "c")]

    for step in steps[:2]:
        aws_client(connection, "sts", region="", audit=step).get_caller_identity()
    connection.config["role_session_name"] = "renamed"
    connection.save()
    identity = aws_client(connection, "sts", region="", audit=steps[2]).get_caller_identity()

    # b's client used the role session a's call opened; the changed connection opened another.
    finished = call_rows(Cloud.AWS).filter(kind=AuditKind.CALL_FINISHED)
    assert list(finished.values_list("step_key", "operation")) == [
        ("a", "AssumeRole"),
        ("a", "GetCallerIdentity"),
        ("b", "GetCallerIdentity"),
        ("c", "AssumeRole"),
        ("c", "GetCallerIdentity"),
    ]
    assert identity["Arn"].endswith(":assumed-role/wizard/renamed")


def test_it_retries_throttling_then_raises_a_retryable_error(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits["sts:GetCallerIdentity"] = (0.001, 1)
    sandbox_knobs.reset_buckets()
    sts = aws_client(sandbox_connections[Cloud.AWS], "sts", region="", audit=scope)
    sts.get_caller_identity()

    with pytest.raises(Throttled) as raised:
        sts.get_caller_identity()

    assert "throttling GetCallerIdentity" in raised.value.message
    assert isinstance(raised.value.__cause__, ClientError)
    finished = call_rows(Cloud.AWS).filter(kind=AuditKind.CALL_FINISHED).last()
    assert finished.outcome == "error"
    assert finished.response["attempts"] == 3
    assert finished.error_code == raised.value.code


def test_it_raises_a_retryable_error_for_server_errors(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.error_rates["sts:GetCallerIdentity"] = 1.0
    sts = aws_client(sandbox_connections[Cloud.AWS], "sts", region="", audit=scope)

    with pytest.raises(RetryableError):
        sts.get_caller_identity()


def test_it_names_the_quota_to_raise_when_one_is_used_up(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    connect = aws_client(sandbox_connections[Cloud.AWS], "connect", region="", audit=scope)
    instance = active_instance(connect, "quota")
    # A new instance may claim DEFAULT_PHONE_NUMBERS_PER_INSTANCE numbers (Connect's default
    # quota); the next claim is refused.
    *allowed, number = [
        available["PhoneNumber"]
        for available in connect.search_available_phone_numbers(
            TargetArn=instance["Arn"],
            PhoneNumberCountryCode="JP",
            PhoneNumberType="DID",
            MaxResults=DEFAULT_PHONE_NUMBERS_PER_INSTANCE + 1,
        )["AvailableNumbersList"]
    ]
    for phone_number in allowed:
        connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=phone_number)

    with pytest.raises(PermanentError) as raised:
        connect.claim_phone_number(TargetArn=instance["Arn"], PhoneNumber=number)

    assert "Phone numbers per instance" in raised.value.message
    assert "Request an increase in Service Quotas" in raised.value.hint


def test_it_tells_what_to_type_differently_for_a_duplicate(
    sandbox_connections: dict[str, Connection], scope: AuditScope
) -> None:
    iam = aws_client(sandbox_connections[Cloud.AWS], "iam", region="", audit=scope)
    iam.create_role(RoleName="twice", AssumeRolePolicyDocument="{}")

    with pytest.raises(PermanentError) as raised:
        iam.create_role(RoleName="twice", AssumeRolePolicyDocument="{}")

    assert raised.value.code == "EntityAlreadyExists"
    assert "different name" in raised.value.hint


def _client_error(code: str, message: str, status: int, operation: str) -> ClientError:
    """The exception botocore raises for an AWS error response (its parsed shape)."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "req-1"},
        },
        operation,
    )


def test_it_names_the_missing_permission_when_access_is_denied() -> None:
    error = map_aws_error(
        _client_error(
            "AccessDenied",
            "User: arn:aws:iam::123456789012:user/wizard is not authorized to perform: "
            "iam:CreateSAMLProvider on resource: arn:aws:iam::123456789012:saml-provider/Okta "
            "because no identity-based policy allows the iam:CreateSAMLProvider action",
            403,
            "CreateSAMLProvider",
        )
    )

    assert isinstance(error, PermanentError)
    assert "iam:CreateSAMLProvider" in error.message
    assert "arn:aws:iam::123456789012:user/wizard" in error.message
    assert error.hint.startswith("Add iam:CreateSAMLProvider to an IAM policy")


def test_it_points_at_the_policy_when_an_explicit_deny_refuses() -> None:
    error = map_aws_error(
        _client_error(
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/w/s is not authorized to perform: "
            "connect:CreateInstance with an explicit deny in a service control policy",
            400,
            "CreateInstance",
        )
    )

    assert "connect:CreateInstance" in error.hint
    assert "explicitly denies" in error.hint
    assert "(a service control policy)" in error.hint


@pytest.mark.parametrize(
    ("code", "status", "kind", "words"),
    [
        ("InvalidClientTokenId", 403, Unauthenticated, "access key ID and secret access key"),
        ("SignatureDoesNotMatch", 403, Unauthenticated, "access key ID and secret access key"),
        ("ExpiredToken", 400, Unauthenticated, "Refresh them"),
        ("ServiceQuotaExceededException", 402, QuotaExceeded, "Amazon Connect instances"),
        ("ThrottlingException", 429, Throttled, "retries at the API's rate"),
        ("InternalServerError", 500, Unavailable, "retries"),
        ("InvalidParameterException", 400, InvalidRequest, "Change the value"),
        ("ResourceNotFoundException", 404, NotFound, "Check the ID"),
        ("NoSuchEntity", 404, NotFound, "Check the ID"),
        ("EntityAlreadyExists", 409, Conflict, "different name"),
        ("AccessDenied", 403, AccessDenied, "IAM policy"),
        # A code the wizard has no list for: its HTTP status says which kind.
        ("SomeNewGoneException", 404, NotFound, "SomeNewGoneException"),
        ("SomeNewBusyException", 503, Unavailable, "retries"),
        ("SomeNewException", 418, PermanentError, "SomeNewException"),
    ],
)
def test_it_maps_each_kind_of_aws_error(code: str, status: int, kind: type, words: str) -> None:
    error = map_aws_error(_client_error(code, "details", status, "CreateInstance"))

    assert type(error) is kind
    assert error.code == code
    assert words in f"{error.message} {error.hint}"


def test_it_does_not_trust_the_sandbox_ca_in_live_mode(
    sandbox: Sandbox, settings: Any, monkeypatch: pytest.MonkeyPatch, scope: AuditScope, db: None
) -> None:
    settings.WIZARD_MODE = "live"
    # botocore's own setting sends a live client to the sandbox, which only its CA vouches for.
    monkeypatch.setenv("AWS_ENDPOINT_URL", sandbox.endpoints["aws_endpoint_url"])
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    live = Connection.objects.create(cloud=Cloud.AWS, name="live", config={"method": "access_key"})
    live.set_secrets({"access_key_id": "AKIALIVE00000000", "secret_access_key": "live-secret"})
    sts = aws_client(live, "sts", region="ap-northeast-1", audit=scope)

    with pytest.raises(PermanentError) as raised:
        sts.get_caller_identity()

    assert raised.value.code == "aws_tls_untrusted"
    finished = call_rows(Cloud.AWS).filter(kind=AuditKind.CALL_FINISHED).get()
    assert finished.error_code == "aws_tls_untrusted"


def test_it_refuses_a_sandbox_connection_in_live_mode(
    sandbox_connections: dict[str, Connection], settings: Any, scope: AuditScope
) -> None:
    settings.WIZARD_MODE = "live"

    with pytest.raises(PermanentError) as raised:
        aws_client(sandbox_connections[Cloud.AWS], "sts", region="us-east-1", audit=scope)

    assert raised.value.code == "sandbox_connection_in_live_mode"


def test_it_says_which_profile_is_missing(settings: Any, scope: AuditScope, db: None) -> None:
    settings.WIZARD_MODE = "live"
    connection = Connection.objects.create(
        cloud=Cloud.AWS, name="p", config={"method": "profile", "profile": "no-such-profile"}
    )

    with pytest.raises(PermanentError) as raised:
        aws_client(connection, "sts", region="us-east-1", audit=scope)

    assert raised.value.code == "aws_profile_not_found"
    assert "no-such-profile" in raised.value.message


def test_it_signs_with_a_sandbox_iam_users_key_and_names_what_it_may_not_do(
    sandbox_mode: Sandbox, scope: AuditScope
) -> None:
    iam = aws_client(_sandbox_aws(), "iam", region="", audit=scope)
    user = iam.create_user(UserName="limited-connection-user")["User"]
    document = (
        '{"Version": "2012-10-17", "Statement": '
        '[{"Effect": "Allow", "Action": "connect:ListInstances", "Resource": "*"}]}'
    )
    iam.put_user_policy(UserName=user["UserName"], PolicyName="read", PolicyDocument=document)
    key = iam.create_access_key(UserName=user["UserName"])["AccessKey"]
    connection = Connection(cloud=Cloud.AWS, name="limited", is_sandbox=True)
    connection.config = {"method": "access_key"}
    connection.set_secrets(
        {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}
    )
    connection.save()
    connect = aws_client(connection, "connect", region="ap-northeast-1", audit=scope)

    connect.list_instances()
    with pytest.raises(PermanentError) as raised:
        connect.create_instance(
            IdentityManagementType="SAML",
            InstanceAlias="refused-by-policy",
            InboundCallsEnabled=True,
            OutboundCallsEnabled=True,
        )

    assert raised.value.code == "AccessDeniedException"
    assert raised.value.message.startswith(
        f"AWS refused CreateInstance: {user['Arn']} is missing the permission "
        "connect:CreateInstance."
    )
    assert key["SecretAccessKey"] not in all_audit_text()


def test_it_shares_a_client_per_service_across_scopes_until_the_connection_changes(
    sandbox_mode: Sandbox,
) -> None:
    connection = _sandbox_aws()
    step_a, step_b = (
        AuditScope(actor_label="w", step_key="a"),
        AuditScope(actor_label="w", step_key="b"),
    )
    sts = aws_client(connection, "sts", region="", audit=step_a)

    # Every step (and run) of the process calls through one client per service; each call is
    # audited under the scope of the proxy it went through.
    assert aws_client(connection, "sts", region="", audit=step_b).wrapped is sts.wrapped
    assert aws_client(connection, "iam", region="", audit=step_a).wrapped is not sts.wrapped
    aws_client(connection, "sts", region="", audit=step_b).get_caller_identity()
    sts.get_caller_identity()
    assert list(call_rows(Cloud.AWS).values_list("step_key", flat=True)) == ["b", "b", "a", "a"]
    connection.config["note"] = "edited"
    connection.save()
    assert aws_client(connection, "sts", region="", audit=step_a).wrapped is not sts.wrapped


def test_a_forked_child_makes_its_own_clients(sandbox_mode: Sandbox) -> None:
    """A child forked from a worker must not use the parent's pooled connections."""
    connection = _sandbox_aws()
    sts = aws_client(connection, "sts", region="", audit=AuditScope(actor_label="parent"))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say whether it was handed the parent's client, then leave
        try:
            child = aws_client(connection, "sts", region="", audit=AuditScope(actor_label="c"))
            os.write(write, b"shared" if child.wrapped is sts.wrapped else b"own")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as answer:
        assert answer.read() == b"own"
    assert aws_client(connection, "sts", region="", audit=AuditScope(actor_label="p")).wrapped is (
        sts.wrapped
    )


@pytest.mark.django_db(transaction=True)
def test_threads_sharing_a_client_audit_each_call_under_their_own_scope(
    sandbox_mode: Sandbox,
) -> None:
    connection = _sandbox_aws()
    scopes = [AuditScope(actor_label="w", step_key=f"step-{n}") for n in range(4)]
    clients = [aws_client(connection, "sts", region="", audit=scope) for scope in scopes]
    assert len({id(client.wrapped) for client in clients}) == 1

    def calls(client: Any) -> None:
        try:
            for _ in range(3):
                client.get_caller_identity()
        finally:
            database.close()

    threads = [threading.Thread(target=calls, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = assert_every_call_started_and_finished(Cloud.AWS)
    by_call: dict[Any, set[str]] = {}
    for row in rows:
        by_call.setdefault(row.call_id, set()).add(row.step_key)
    assert sorted(step for steps in by_call.values() for step in steps) == sorted(
        scope.step_key for scope in scopes for _ in range(3)
    )
    assert all(len(steps) == 1 for steps in by_call.values())
