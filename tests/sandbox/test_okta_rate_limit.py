"""The sandbox Okta org's /api/v1/apps rate limit, as the okta SDK meets it."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import aiohttp
import pytest

from sandbox.knobs import DEFAULT_RATE_LIMITS, Knobs
from sandbox.server import Sandbox
from tests.sandbox.okta_sdk import okta_client

APPS_LIMIT = "okta:apps"
FREE_EDITION_PER_MINUTE = 20
# 6x the Free edition's 20/min: 2 calls a second, so a retry waits seconds, not minutes, while
# the 10 calls past the burst of 20 would need 5 s to refill: far longer than sending 30 calls
# takes even on a loaded CI machine, so some are always refused (at 60x, a slow machine wasn't).
FAST_RATE_SCALE = 6.0
BURST_CALLS = 30


@pytest.fixture
def knobs(sandbox_knobs: Knobs) -> Knobs:
    """The shared sandbox with its rate limits on at the Free edition's quota, from a full bucket
    (sandbox_knobs puts everything back afterwards)."""
    sandbox_knobs.rate_limits_enabled = True
    sandbox_knobs.rate_limits[APPS_LIMIT] = DEFAULT_RATE_LIMITS[APPS_LIMIT]
    sandbox_knobs.rate_scale = 1.0
    sandbox_knobs.reset_buckets()
    return sandbox_knobs


def status_recorder(statuses: list[int]) -> aiohttp.TraceConfig:
    """Counts every HTTP exchange on the SDK's session, retries included."""

    async def on_request_end(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        statuses.append(params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


def test_it_sends_rate_limit_headers_on_app_calls(sandbox: Sandbox, knobs: Knobs) -> None:
    async def scenario() -> dict[str, str]:
        async with okta_client(sandbox.endpoints) as client:
            _, response, error = await client.list_applications()
            assert error is None
            return dict(response.headers)

    headers = asyncio.run(scenario())
    assert headers["X-Rate-Limit-Limit"] == str(FREE_EDITION_PER_MINUTE)
    assert int(headers["X-Rate-Limit-Remaining"]) == FREE_EDITION_PER_MINUTE - 1
    assert int(headers["X-Rate-Limit-Reset"]) >= int(time.time())


def test_it_refuses_calls_past_the_limit_with_e0000047(sandbox: Sandbox, knobs: Knobs) -> None:
    async def scenario() -> list[object]:
        async with okta_client(sandbox.endpoints, max_retries=0) as client:
            return [
                (await client.list_applications())[2] for _ in range(FREE_EDITION_PER_MINUTE + 1)
            ]

    errors = asyncio.run(scenario())
    assert errors[:FREE_EDITION_PER_MINUTE] == [None] * FREE_EDITION_PER_MINUTE
    refused = errors[-1]
    assert refused.status == 429
    assert refused.error_code == "E0000047"
    assert int(refused.headers["X-Rate-Limit-Remaining"]) == 0
    assert int(refused.headers["X-Rate-Limit-Reset"]) > time.time()


def test_it_lets_the_sdk_wait_for_the_reset_and_finish_a_burst(
    sandbox: Sandbox, knobs: Knobs
) -> None:
    knobs.rate_scale = FAST_RATE_SCALE
    statuses: list[int] = []

    async def scenario() -> list[object]:
        async with okta_client(
            sandbox.endpoints, trace_configs=[status_recorder(statuses)]
        ) as client:
            results = await asyncio.gather(
                *(client.list_applications() for _ in range(BURST_CALLS))
            )
            return [result[2] for result in results]

    errors = asyncio.run(scenario())
    assert errors == [None] * BURST_CALLS
    # The bucket refills while the burst is sent, so fewer than BURST_CALLS - burst are refused.
    assert statuses.count(429) > 0
    assert statuses.count(200) == BURST_CALLS
