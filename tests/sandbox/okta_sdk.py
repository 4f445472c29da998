"""The okta SDK pointed at the sandbox org as the wizard's Okta client does, for the Okta tests."""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from okta.client import Client

# The SDK retries a 429 this many times, sleeping until X-Rate-Limit-Reset each time.
SDK_MAX_RETRIES = 3


@contextlib.asynccontextmanager
async def okta_client(
    endpoints: dict[str, str],
    *,
    token: str | None = None,
    max_retries: int = SDK_MAX_RETRIES,
    trace_configs: list[aiohttp.TraceConfig] | None = None,
) -> AsyncIterator[Client]:
    """An SSWS client that trusts the sandbox CA. okta 3.4.6 can't take an SSL context through
    its config (its config is deep-copied and SSLContext can't be), so the CA rides on the
    aiohttp session the SDK is given, which it then uses for every call."""
    client = Client(
        {
            "orgUrl": endpoints["okta_org_url"],
            "token": token or endpoints["okta_token"],
            "authorizationMode": "SSWS",
            "rateLimit": {"maxRetries": max_retries},
        }
    )
    trust = ssl.create_default_context(cafile=endpoints["ca_bundle"])
    connector = aiohttp.TCPConnector(ssl=trust)
    async with aiohttp.ClientSession(connector=connector, trace_configs=trace_configs) as session:
        client.get_request_executor().set_session(session)
        yield client


async def send(
    client: Client, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[Any, Any]:
    """A call through the SDK's own request executor (auth, retries, error parsing) for bodies its
    models can't express: SamlApplication drops `name` and has no `settings.app`."""
    executor = client.get_request_executor()
    request, error = await executor.create_request(method, path, body or {}, {})
    assert error is None, error
    response, text, error = await executor.execute(request)
    if error is not None:
        return None, error
    return (json.loads(text) if text else None), None


@contextlib.asynccontextmanager
async def oauth_client(
    endpoints: dict[str, str],
    *,
    client_id: str,
    private_key: str,
    key_id: str,
    scopes: list[str],
    dpop: bool,
) -> AsyncIterator[Client]:
    """A private_key_jwt client of an API service app, with or without DPoP, trusting the
    sandbox CA the same way as okta_client()."""
    client = Client(
        {
            "orgUrl": endpoints["okta_org_url"],
            "authorizationMode": "PrivateKey",
            "clientId": client_id,
            "privateKey": private_key,
            "kid": key_id,
            "scopes": scopes,
            "dpopEnabled": dpop,
            "rateLimit": {"maxRetries": 0},
        }
    )
    trust = ssl.create_default_context(cafile=endpoints["ca_bundle"])
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as session:
        client.get_request_executor().set_session(session)
        yield client
