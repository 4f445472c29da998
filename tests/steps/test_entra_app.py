"""entra_app against the sandbox's Graph: a tenant whose identifier URI policy still refuses the
identifier gets Graph's own words and what to do; a switched signing certificate is handed on only
once the federation metadata shows it; the app an attempt instantiated before its worker died,
unanswered and unrecorded, is found by its name (and only then searched for)."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from provisioning.errors import WaitForCloud
from provisioning.messages import render
from provisioning.models import AuditEvent, AuditKind, RunStatus, SetupRun
from provisioning.steps import entra_app
from provisioning.steps.entra_app import EntraApp
from sandbox.server import Sandbox
from tests.flows.entra_runs import (  # noqa: F401
    answer_lost,
    entra_sandbox,
    plan_file,
    setup_sso,
    setup_sso_until_the_worker_dies,
    step_context,
    take_over,
)


def test_it_shows_graphs_refusal_and_what_to_do_when_the_identifier_policy_still_refuses(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
) -> None:
    tenant = entra_sandbox.apps["entra"].tenant
    before = set(SetupRun.objects.values_list("pk", flat=True))
    tenant.identifier_uri_policy_excludes_saml = False
    try:
        with pytest.raises(CommandError):
            call_command("setup_sso", str(plan_file(tmp_path)), stdout=io.StringIO())
    finally:
        tenant.identifier_uri_policy_excludes_saml = True

    run = SetupRun.objects.exclude(pk__in=before).get()
    error = run.steps.get(key="entra_app").error
    assert error["code"] == "entra_identifier_uri_policy", error
    assert "Failed to add identifier URI https://signin.aws.amazon.com/saml#" in render(
        error["message"]
    )
    assert "exemption" in render(error["hint"]) and "retry the step" in render(error["hint"])


def test_it_waits_until_the_federation_metadata_shows_the_new_signing_certificate(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    first = run.steps.get(key="entra_app").outputs
    tenant = entra_sandbox.apps["entra"].tenant
    with tenant.lock:
        # No preferred certificate, and ours about to expire (so not one to reuse): the step adds
        # a new one and switches to it.
        service_principal = tenant.service_principals[first["service_principal_id"]]
        service_principal["preferredTokenSigningKeyThumbprint"] = None
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        for key in service_principal["keyCredentials"]:
            key["endDateTime"] = soon.strftime("%Y-%m-%dT%H:%M:%SZ")
    downloads: list[str] = []
    download = entra_app.download_federation_metadata

    def metadata_lagging_once(*args: Any, **kwargs: Any) -> str:
        # Entra's metadata URL still serving the certificate from before the switch.
        downloads.append("stale" if not downloads else "current")
        return first["metadata_xml"] if len(downloads) == 1 else download(*args, **kwargs)

    monkeypatch.setattr(entra_app, "download_federation_metadata", metadata_lagging_once)
    step = EntraApp()

    with pytest.raises(WaitForCloud):
        step.apply(step_context(run, "entra_app"))
    outputs = step.apply(step_context(run, "entra_app"))

    assert downloads == ["stale", "current"]
    assert outputs.certificate_thumbprint != first["certificate_thumbprint"]
    assert outputs.metadata_xml != first["metadata_xml"]


INSTANTIATE = "POST /applicationTemplates/*/instantiate"


def _apps_named(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    tenant = sandbox.apps["entra"].tenant
    with tenant.lock:
        return [app for app in tenant.applications.values() if app["displayName"] == name]


def _searches_by_name(run: SetupRun) -> int:
    """The run's searches for an app by its display name (for one a lost attempt made)."""
    requests = AuditEvent.objects.filter(
        run=run, kind=AuditKind.CALL_STARTED, operation="GET /applications"
    ).values_list("request", flat=True)
    filters = [str(request.get("query", {}).get("$filter")) for request in requests]
    return sum("displayName" in query_filter for query_filter in filters)


def test_it_finds_the_app_an_attempt_instantiated_before_its_worker_died_unanswered(
    entra_sandbox: Sandbox,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def worker_dies(*_: Any) -> None:
        # Graph made the app, its answer is lost, and the worker dies before the step records it.
        raise SystemExit("worker killed")

    answer_lost(monkeypatch, INSTANTIATE)
    monkeypatch.setattr(entra_app, "_record_app", worker_dies)
    run = setup_sso_until_the_worker_dies(plan_file(tmp_path))
    monkeypatch.undo()
    step = run.steps.get(key="entra_app")
    name = f"Amazon Connect {run.instance_alias}"
    assert (step.status, step.created_resources) == ("applying", [])
    assert len(_apps_named(entra_sandbox, name)) == 1
    instantiates = AuditEvent.objects.filter(run=run, operation__endswith="/instantiate")
    assert list(instantiates.values_list("kind", flat=True)) == [AuditKind.CALL_STARTED]
    # Before any instantiate call went out, nothing of this run could be lost: no search.
    assert _searches_by_name(run) == 0

    take_over(run, step, entra_sandbox)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (app,) = _apps_named(entra_sandbox, name)
    step.refresh_from_db()
    assert [entry["identifier"] for entry in step.created_resources] == [app["id"]]
    assert step.outputs["app_object_id"] == app["id"]
    assert _searches_by_name(run) == 1
