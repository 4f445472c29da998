"""The AWS client's shared rate limits against the sandbox: bulk calls from several threads run at
the quota Service Quotas gives and are never throttled; without Service Quotas, the documented
rate; the account asked of STS once per connection; without the shared limiter, no call at all."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from provisioning.audit import AuditScope
from provisioning.aws.api_quotas import api_rate, forget_api_quotas
from provisioning.aws.client import aws_client
from provisioning.errors import RetryableError
from provisioning.models import AuditEvent, AuditKind, Connection
from provisioning.ratelimit import Rate
from sandbox.knobs import Knobs
from tests.sandbox.aws_clients import default_profiles, unique_alias
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import REGION

# The AWS step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

CREATE_USER = "connect:CreateUser"
# Five times Connect's default, so 30 users take 3 s; the burst is Connect's.
CREATE_USER_RATE = 10.0
CREATE_USER_BURST = 5
THREADS = 3
USERS_PER_THREAD = 10
SCOPE = AuditScope(actor_label="rate limit tests")


@pytest.fixture(autouse=True)
def fresh_api_quotas() -> Iterator[None]:
    """Each test here reads the rates the sandbox reports now, and leaves none of them (nor a
    fallback) cached for the tests after it."""
    forget_api_quotas()
    yield
    forget_api_quotas()


def _create_users(
    connection: Connection, instance_id: str, profiles: tuple[dict[str, str], str], count: int
) -> None:
    security, routing_id = profiles
    client = aws_client(connection, "connect", region=REGION, audit=SCOPE)
    for _ in range(count):
        client.create_user(
            InstanceId=instance_id,
            Username=unique_alias("paced"),
            PhoneConfig={"PhoneType": "SOFT_PHONE"},
            SecurityProfileIds=[security["Agent"]],
            RoutingProfileId=routing_id,
        )


@pytest.mark.django_db(transaction=True)
def test_it_creates_users_from_several_threads_at_the_quota_without_a_throttled_call(
    aws_connection: Connection,
    instance: dict[str, Any],
    connect: Any,
    sandbox_knobs: Knobs,
) -> None:
    profiles = default_profiles(connect, instance["Id"])
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits[CREATE_USER] = (CREATE_USER_RATE, CREATE_USER_BURST)
    sandbox_knobs.reset_buckets()
    sandbox_knobs.reset_throttled()
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            _create_users(aws_connection, instance["Id"], profiles, USERS_PER_THREAD)
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert failures == []
    assert sandbox_knobs.throttled(CREATE_USER) == 0
    users = connect.list_users(InstanceId=instance["Id"], MaxResults=100)["UserSummaryList"]
    assert (
        sum(user["Username"].startswith("paced-") for user in users) == THREADS * USERS_PER_THREAD
    )
    # At the quota, not faster: after the one call at once, one call per 1/rate seconds.
    assert elapsed >= (THREADS * USERS_PER_THREAD - 1) / CREATE_USER_RATE
    client = aws_client(aws_connection, "connect", region=REGION, audit=SCOPE)
    assert api_rate(client, "CreateUser") == Rate(
        CREATE_USER_RATE, CREATE_USER_BURST, "service_quotas"
    )
    # The lookups are audited cloud calls like any other.
    lookups = AuditEvent.objects.filter(
        kind=AuditKind.CALL_FINISHED, operation="ListServiceQuotas", actor_label=SCOPE.actor_label
    )
    assert lookups.exists()
    assert {row.outcome for row in lookups} == {"ok"}


@pytest.mark.django_db
def test_it_uses_the_documented_rate_when_service_quotas_fails(
    aws_connection: Connection,
    sandbox_knobs: Knobs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox_knobs.error_rates["servicequotas:ListServiceQuotas"] = 1.0
    client = aws_client(aws_connection, "connect", region=REGION, audit=SCOPE)

    with caplog.at_level(logging.INFO, logger="provisioning.aws.api_quotas"):
        rate = api_rate(client, "CreateUser")
        # The caller's own call is not failed by the lookup's failure.
        client.list_instances()

    assert rate == Rate(2, 5, "documented")
    assert api_rate(client, "ListUsers") == Rate(10, 15, "documented")
    assert api_rate(client, "CreateInstance") == Rate(0.1, 1, "documented")
    assert "Service Quotas did not give the API rates of connect" in caplog.text
    failed = AuditEvent.objects.filter(
        kind=AuditKind.CALL_FINISHED, operation="ListServiceQuotas", outcome="error"
    )
    assert failed.exists()


@pytest.mark.django_db
def test_it_asks_sts_for_the_account_once_per_version_of_the_connection(
    aws_connection: Connection, settings: Any, tmp_path: Any
) -> None:
    # A sandbox file that doesn't name the account, as a live connection doesn't.
    endpoints = json.loads(settings.SANDBOX_FILE.read_text())
    del endpoints["aws_account_id"]
    settings.SANDBOX_FILE = tmp_path / "sandbox.json"
    settings.SANDBOX_FILE.write_text(json.dumps(endpoints))

    for _ in range(2):
        aws_client(aws_connection, "connect", region=REGION, audit=SCOPE).list_instances()
    aws_connection.save()  # an edit: it may point at another account now
    aws_client(aws_connection, "connect", region=REGION, audit=SCOPE).list_instances()

    asked = AuditEvent.objects.filter(
        kind=AuditKind.CALL_FINISHED, operation="GetCallerIdentity", outcome="ok"
    )
    assert asked.count() == 2
    assert (
        AuditEvent.objects.filter(kind=AuditKind.CALL_FINISHED, operation="ListInstances").count()
        == 3
    )


@pytest.mark.django_db
def test_it_makes_no_call_but_fails_it_as_retryable_while_the_limiter_is_unreachable(
    aws_connection: Connection, settings: Any
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    settings.WIZARD_RATE_LIMIT_UNAVAILABLE_S = 0.3
    client = aws_client(aws_connection, "connect", region=REGION, audit=SCOPE)

    with pytest.raises(RetryableError) as raised:
        client.list_instances()

    assert raised.value.code == "rate_limiter_unreachable"
    finished = AuditEvent.objects.get(kind=AuditKind.CALL_FINISHED, operation="ListInstances")
    assert (finished.outcome, finished.error_code) == ("error", "rate_limiter_unreachable")
