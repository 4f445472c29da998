"""A sign-in endpoint that can't be reached is said to be unreachable (and retried), never taken
for a wrong credential."""

from __future__ import annotations

import socket

import pytest

from provisioning.entra.client import map_graph_error
from provisioning.errors import RetryableError
from sandbox.server import Sandbox
from tests.sandbox.entra_graph import GRAPH_SCOPE, graph_credential


def test_it_says_an_unreachable_sign_in_endpoint_is_unreachable_not_a_wrong_secret(
    sandbox: Sandbox,
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nobody listens there now
    endpoints = {**sandbox.endpoints, "entra_authority": f"https://127.0.0.1:{port}"}

    with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever azure-identity raises
        graph_credential(endpoints).get_token(GRAPH_SCOPE)
    error = map_graph_error(raised.value)

    assert isinstance(error, RetryableError)
    assert error.code == "entra_unreachable"
    assert "refused" not in str(error)
