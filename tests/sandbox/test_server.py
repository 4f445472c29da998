"""The sandbox's servers keep a client's HTTP/1.1 connection open between requests, as the real
clouds do, without letting idle connections hold a request thread or a stop."""

from __future__ import annotations

import http.client
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from sandbox.server import REQUEST_THREADS, STOP_TIMEOUT_S, Sandbox

# STS GetCallerIdentity as botocore sends it (query protocol, form-encoded body).
CALLER_IDENTITY = b"Action=GetCallerIdentity&Version=2011-06-15"
REQUESTS_PER_CONNECTION = 3


def _connection(endpoints: dict[str, str], url: str) -> http.client.HTTPSConnection:
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=endpoints["ca_bundle"])
    assert parts.hostname is not None
    return http.client.HTTPSConnection(parts.hostname, parts.port, context=context, timeout=10)


def _signed_caller_identity(endpoints: dict[str, str]) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=endpoints["aws_endpoint_url"] + "/",
        data=CALLER_IDENTITY,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    credentials = Credentials(endpoints["aws_access_key_id"], endpoints["aws_secret_access_key"])
    SigV4Auth(credentials, "sts", endpoints["aws_region"]).add_auth(request)
    return request


def _ask(
    connection: http.client.HTTPSConnection,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    response.read()
    return response


def _requests_by_cloud(endpoints: dict[str, str]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """One ordinary request to each cloud: (method, URL, headers)."""
    return {
        "entra": (
            "GET",
            f"{endpoints['entra_authority']}/{endpoints['entra_tenant_id']}"
            "/v2.0/.well-known/openid-configuration",
            {},
        ),
        "okta": (
            "GET",
            endpoints["okta_org_url"] + "/api/v1/apps",
            {"Authorization": f"SSWS {endpoints['okta_token']}", "Accept": "application/json"},
        ),
        # The sign-in endpoint answers a post without a SAMLResponse with its error page.
        "signin": ("POST", endpoints["aws_signin_url"], {}),
    }


def test_it_answers_several_requests_to_each_cloud_on_one_connection(sandbox: Sandbox) -> None:
    endpoints = sandbox.endpoints
    calls = {
        name: (method, url, headers, None)
        for name, (method, url, headers) in _requests_by_cloud(endpoints).items()
    }
    signed = _signed_caller_identity(endpoints)
    calls["aws"] = ("POST", signed.url, dict(signed.headers), CALLER_IDENTITY)
    for name, (method, url, headers, body) in calls.items():
        connection = _connection(endpoints, url)
        path = urlsplit(url).path or "/"
        try:
            seen: list[tuple[int, int, str | None]] = []
            for _ in range(REQUESTS_PER_CONNECTION):
                response = _ask(connection, method, path, body=body, headers=headers)
                # http.client drops its socket when the answer says the server will close it,
                # and opens a new one (a new TCP and TLS handshake) for the next request.
                assert connection.sock is not None, (name, response.getheader("Connection"))
                seen.append(
                    (
                        response.status,
                        connection.sock.getsockname()[1],
                        response.getheader("Connection"),
                    )
                )
        finally:
            connection.close()
        statuses = {status for status, _, _ in seen}
        assert statuses <= {200, 400}, (name, seen)
        assert len({port for _, port, _ in seen}) == 1, (name, seen)
        assert all(header != "close" for _, _, header in seen), (name, seen)


def test_it_serves_a_request_while_more_idle_connections_than_threads_are_open(
    sandbox: Sandbox,
) -> None:
    method, url, headers = _requests_by_cloud(sandbox.endpoints)["entra"]
    path = urlsplit(url).path
    idle = [_connection(sandbox.endpoints, url) for _ in range(REQUEST_THREADS + 4)]
    try:
        for connection in idle:
            assert _ask(connection, method, path, headers=headers).status == 200
        latecomer = _connection(sandbox.endpoints, url)
        started = time.monotonic()
        assert _ask(latecomer, method, path, headers=headers).status == 200
        assert time.monotonic() - started < 2
        latecomer.close()
        # The idle ones are still open and answer again.
        assert _ask(idle[0], method, path, headers=headers).status == 200
    finally:
        for connection in idle:
            connection.close()


def test_it_stops_promptly_with_idle_connections_open(tmp_path: Path) -> None:
    server = Sandbox(state_dir=tmp_path)
    endpoints = server.start()
    method, url, headers = _requests_by_cloud(endpoints)["entra"]
    connection = _connection(endpoints, url)
    try:
        assert _ask(connection, method, urlsplit(url).path, headers=headers).status == 200
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < STOP_TIMEOUT_S
        # The server closed the idle connection: a request on it finds it gone.
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            _ask(connection, method, urlsplit(url).path, headers=headers)
    finally:
        connection.close()
        server.stop()
