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
