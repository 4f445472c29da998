"""Every way a call through aws_client() can fail (a call, a page of a paginator, a waiter, a
parameter botocore refuses, an endpoint that isn't there) comes out as the project's error."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from botocore.stub import Stubber

from provisioning.audit import AuditScope
from provisioning.aws.client import AwsSdkProxy, aws_client
from provisioning.errors import (
    AccessDenied,
    InvalidRequest,
    NotFound,
    ProvisioningError,
    Throttled,
    Unavailable,
)
from provisioning.models import Cloud, Connection
from sandbox.knobs import Knobs

pytestmark = pytest.mark.django_db


@pytest.fixture
def iam(sandbox_connections: dict[str, Connection], scope: AuditScope) -> AwsSdkProxy:
    return aws_client(sandbox_connections[Cloud.AWS], "iam", region="", audit=scope)


@pytest.fixture
def stubber(iam: AwsSdkProxy) -> Iterator[Stubber]:
    """A Stubber on the botocore client behind the proxy (botocore docs, "Stubber Reference"),
    taken off after the test: the worker shares that client with every later caller."""
    with Stubber(iam.wrapped) as stubbed:
        yield stubbed


def test_it_maps_a_call_refused_with_an_error_code_to_a_typed_error(iam: AwsSdkProxy) -> None:
    with pytest.raises(NotFound) as raised:
        iam.get_role(RoleName="no-such-role-anywhere")

    assert raised.value.code == "NoSuchEntity"
    assert isinstance(raised.value.__cause__, ClientError)


def test_it_maps_a_page_that_fails_in_the_middle_of_a_paginator(
    iam: AwsSdkProxy, stubber: Stubber
) -> None:
    stubber.add_response("list_roles", {"Roles": [], "IsTruncated": True, "Marker": "page-2"}, {})
    stubber.add_client_error(
        "list_roles", "Throttling", "Rate exceeded", 400, expected_params={"Marker": "page-2"}
    )
    pages = iam.get_paginator("list_roles").paginate()

    seen = []
    with pytest.raises(Throttled) as raised:
        seen.extend(pages)

    assert len(seen) == 1
    assert raised.value.retryable
    stubber.assert_no_pending_responses()


def test_it_maps_a_paginators_full_result_and_search(iam: AwsSdkProxy, stubber: Stubber) -> None:
    stubber.add_client_error("list_roles", "AccessDenied", "not authorized", 403)
    stubber.add_client_error("list_roles", "ServiceUnavailable", "busy", 503)

    with pytest.raises(AccessDenied):
        iam.get_paginator("list_roles").paginate().build_full_result()
    with pytest.raises(Unavailable):
        list(iam.get_paginator("list_roles").paginate().search("Roles[].RoleName"))


def test_it_maps_a_waiter_that_meets_an_error(iam: AwsSdkProxy, stubber: Stubber) -> None:
    stubber.add_client_error("get_role", "AccessDenied", "not authorized", 403)

    with pytest.raises(AccessDenied) as raised:
        iam.get_waiter("role_exists").wait(RoleName="r", WaiterConfig={"Delay": 0})

    assert raised.value.code == "AccessDenied"


def test_it_maps_a_waiter_that_runs_out_of_attempts(iam: AwsSdkProxy, stubber: Stubber) -> None:
    for _ in range(2):
        stubber.add_client_error("get_role", "NoSuchEntity", "not yet", 404)

    with pytest.raises(Unavailable) as raised:
        iam.get_waiter("role_exists").wait(
            RoleName="r", WaiterConfig={"Delay": 0, "MaxAttempts": 2}
        )

    assert raised.value.code == "aws_wait_timed_out"


def test_it_maps_parameters_botocore_refuses_before_sending(iam: AwsSdkProxy) -> None:
    with pytest.raises(InvalidRequest) as raised:
        iam.get_role(RoleName=42)

    assert raised.value.code == "aws_invalid_request"


def test_it_maps_an_endpoint_nobody_answers(
    settings: Any, monkeypatch: pytest.MonkeyPatch, scope: AuditScope
) -> None:
    settings.WIZARD_MODE = "live"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # botocore's own setting sends the client to a port nothing listens on.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    live = Connection.objects.create(cloud=Cloud.AWS, name="live", config={"method": "access_key"})
    live.set_secrets({"access_key_id": "AKIALIVE00000000", "secret_access_key": "live-secret"})
    live.save()
    sts = aws_client(live, "sts", region="ap-northeast-1", audit=scope)

    with pytest.raises(Unavailable) as raised:
        sts.get_caller_identity()

    assert raised.value.code == "aws_unreachable"


def test_it_maps_an_injected_server_error_on_every_page(
    sandbox_connections: dict[str, Connection], sandbox_knobs: Knobs, scope: AuditScope
) -> None:
    sandbox_knobs.error_rates["iam:ListRoles"] = 1.0
    iam = aws_client(sandbox_connections[Cloud.AWS], "iam", region="", audit=scope)

    with pytest.raises(ProvisioningError) as raised:
        list(iam.get_paginator("list_roles").paginate())

    assert raised.value.retryable
    assert not isinstance(raised.value, BotoCoreError)


def test_it_withholds_the_clients_botocore_exceptions(iam: AwsSdkProxy) -> None:
    with pytest.raises(AttributeError, match="NotFound"):
        _ = iam.exceptions.NoSuchEntityException


def test_it_passes_what_is_not_a_call_through(iam: Any) -> None:
    assert iam.meta.service_model.service_name == "iam"
    assert iam.can_paginate("list_roles")
