"""Fixtures shared by every test area: the in-process sandbox and its endpoints."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from provisioning.aws.api_quotas import forget_api_quotas
from sandbox.knobs import Knobs
from sandbox.server import Sandbox

ARTIFACTS_DIR = Path(__file__).parent / "artifacts"

# A real Celery worker process and the engine's test steps/flows (tests/worker_process.py).
pytest_plugins = ["tests.worker_process", "tests.contract.plugin"]


def services_required() -> bool:
    """In CI (WIZARD_REQUIRE_SERVICES=1) a missing PostgreSQL/Redis fails instead of skipping."""
    return os.environ.get("WIZARD_REQUIRE_SERVICES") == "1"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The sandbox clouds, in this process, on free loopback ports. Rate limits are off and delays
    short unless a test asks otherwise (see `sandbox_knobs`)."""
    state_dir = tmp_path_factory.mktemp("sandbox")
    knobs = Knobs(
        rate_limits_enabled=False,
        instance_creation_delay_s=0.5,
        phone_number_claim_delay_s=0.3,
        graph_visibility_delay_s=0.2,
        cloudtrail_delivery_delay_s=0.0,
        directory_agents=40,
    )
    server = Sandbox(state_dir=state_dir, knobs=knobs)
    server.start()
    server.write_endpoints(state_dir / "sandbox.json")
    yield server
    server.stop()


@pytest.fixture
def sandbox_knobs(sandbox: Sandbox) -> Iterator[Knobs]:
    """The running sandbox's knobs; whatever a test changes is put back afterwards."""
    saved = json.loads(
        json.dumps(
            {
                "rate_limits": sandbox.knobs.rate_limits,
                "rate_scale": sandbox.knobs.rate_scale,
                "rate_limits_enabled": sandbox.knobs.rate_limits_enabled,
                "error_rates": sandbox.knobs.error_rates,
                "latency_s": sandbox.knobs.latency_s,
                "instance_creation_delay_s": sandbox.knobs.instance_creation_delay_s,
                "phone_number_claim_delay_s": sandbox.knobs.phone_number_claim_delay_s,
                "graph_visibility_delay_s": sandbox.knobs.graph_visibility_delay_s,
                "cloudtrail_delivery_delay_s": sandbox.knobs.cloudtrail_delivery_delay_s,
            }
        )
    )
    # The wizard caches the rates Service Quotas reports for a while; a test that changes them
    # must not leave its rates to the next one.
    forget_api_quotas()
    yield sandbox.knobs
    forget_api_quotas()
    for name, value in saved.items():
        if name == "rate_limits":
            value = {api: tuple(limit) for api, limit in value.items()}
        setattr(sandbox.knobs, name, value)
    sandbox.knobs.reset_buckets()


def directory_state(sandbox: Sandbox) -> dict[str, set[str]]:
    """Who is in both sandbox IdPs and in each of their groups, as "entra users",
    "entra group <id>", "okta users", "okta group <id>"."""
    tenant = sandbox.apps["entra"].tenant
    org = sandbox.apps["okta"].org
    with tenant.lock, org.lock:
        return {
            "entra users": set(tenant.users),
            **{f"entra group {group}": set(ids) for group, ids in tenant.members.items()},
            "okta users": set(org.users),
            **{f"okta group {group.id}": set(group.member_ids) for group in org.groups.values()},
        }


@pytest.fixture(scope="session")
def seeded_directory(sandbox: Sandbox) -> dict[str, set[str]]:
    """The sandbox directory as seeded: tests share its people and groups and count them."""
    return directory_state(sandbox)


@pytest.fixture(autouse=True)
def _seeded_directory_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test that changes the seeded people or groups, not a later test that counts them:
    a test that adds someone takes them away again or uses a group of its own."""
    if "sandbox" not in request.fixturenames:
        yield
        return
    seeded: dict[str, set[str]] = request.getfixturevalue("seeded_directory")
    before = directory_state(request.getfixturevalue("sandbox"))
    yield
    after = directory_state(request.getfixturevalue("sandbox"))
    changed = {
        part: {"added": sorted(now - ids), "gone": sorted(ids - now)}
        for part, ids in before.items()
        if part in seeded and (now := after.get(part, set())) != ids
    }
    assert not changed, f"The test left the seeded sandbox directory changed: {changed}"


@pytest.fixture(autouse=True)
def _english_after_each_test() -> Iterator[None]:
    """A test that switches the active language (a Japanese page, a command run for a Japanese
    admin) must not leave the next test reading Japanese messages."""
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR
