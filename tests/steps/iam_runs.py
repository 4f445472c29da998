"""Helpers for the IAM step tests: a run of the IAM flow, the context each step gets with the
outputs of the steps before it, counts of what IAM holds, and the IdP's metadata URL as a run in
live mode fetches it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from provisioning.context import StepContext
from provisioning.models import AuditEvent, AuditKind, Connection, SetupRun
from provisioning.saml import check_metadata_url
from provisioning.steps import saml_provider
from provisioning.steps.base import STEPS, Finding, Step, StepOutputs, outputs_json
from tests.steps.aws_step_runs import context, start_run
from tests.steps.iam_flow import IAM_STEPS


def iam_run(
    connection: Connection,
    instance: dict[str, Any],
    *,
    flow_key: str = "test_iam_federation",
    **inputs: Any,
) -> SetupRun:
    return start_run(
        IAM_STEPS[0],
        connection,
        instance_id=instance["Id"],
        instance_alias=instance["InstanceAlias"],
        inputs=inputs,
        flow_key=flow_key,
    )


# Entra's App Federation Metadata Url, as an admin copies it (its shape, with a test tenant).
METADATA_URL = (
    "https://login.microsoftonline.com/5a1d2b3c-0000-4000-8000-00000000aaaa/"
    "federationmetadata/2007-06/federationmetadata.xml?appid=00000000-0000-4000-8000-0000000000aa"
)


@dataclass
class ServedMetadata:
    """The IdP's metadata URL in a test: the fetch answers `document` (set it anew for an IdP
    that rolled its certificate over), after the same URL checks, and notes each URL fetched."""

    document: str
    fetched: list[str] = field(default_factory=list)

    def fetch(self, url: str) -> bytes:
        check_metadata_url(url)
        self.fetched.append(url)
        return self.document.encode()


def live_run_with_metadata_url(
    connection: Connection,
    instance: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    document: str,
    **inputs: Any,
) -> tuple[SetupRun, ServedMetadata]:
    """A run of the IAM flow in live mode whose saml_provider reads the metadata from
    METADATA_URL, served with `document`. The fetch is replaced at the step's boundary with the
    IdP (fetch_metadata_url: the real one only reaches public addresses, never the sandbox)."""
    served = ServedMetadata(document)
    monkeypatch.setattr(saml_provider, "fetch_metadata_url", served.fetch)
    run = iam_run(connection, instance, metadata_url=METADATA_URL, **inputs)
    SetupRun.objects.filter(pk=run.pk).update(mode="live")
    run.refresh_from_db()
    return run, served


def metadata_fetches(run: SetupRun) -> int:
    """How many times the run fetched IdP metadata from a URL, as its audit log says."""
    started = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED)
    return started.filter(service="saml_metadata", operation="GetMetadata").count()


def step_context(
    run: SetupRun, step_key: str, outputs: dict[str, dict[str, Any]] | None = None, **inputs: Any
) -> StepContext:
    ctx = context(run, step_key, **inputs)
    ctx.outputs = dict(outputs or {})
    return ctx


def apply_all(run: SetupRun, **inputs: Any) -> dict[str, dict[str, Any]]:
    """Plan, apply and verify the three IAM steps in order, as the runner would; returns the
    outputs by step key and fails on a failing check."""
    outputs: dict[str, dict[str, Any]] = {}
    for key in ("saml_provider", "federation_policy", "federation_role"):
        step = STEPS[key]()
        step.plan(step_context(run, key, outputs, **inputs))
        ctx = step_context(run, key, outputs, **inputs)
        outputs[key] = outputs_json(step.apply(ctx))
        failing = [finding for finding in step.verify(ctx) if not finding.ok]
        assert not failing, failing
    return outputs


def roll_back_all(run: SetupRun, outputs: dict[str, dict[str, Any]]) -> None:
    """Each step's rollback, last step first, as the runner does."""
    for key in ("federation_role", "federation_policy", "saml_provider"):
        STEPS[key]().rollback(step_context(run, key, outputs))


def providers_named(iam: Any, name: str) -> list[str]:
    listed = iam.list_saml_providers()["SAMLProviderList"]
    return [p["Arn"] for p in listed if p["Arn"].endswith(f":saml-provider/{name}")]


def policies_named(iam: Any, name: str) -> list[dict[str, Any]]:
    pages = iam.get_paginator("list_policies").paginate(Scope="Local")
    return [p for page in pages for p in page["Policies"] if p["PolicyName"] == name]


def roles_named(iam: Any, name: str) -> list[dict[str, Any]]:
    pages = iam.get_paginator("list_roles").paginate()
    return [r for page in pages for r in page["Roles"] if r["RoleName"] == name]


def iam_operations(run: SetupRun) -> list[str]:
    """The IAM operations the run's steps have called so far, in order."""
    started = AuditEvent.objects.filter(run=run, kind=AuditKind.CALL_STARTED, service="iam")
    return list(started.order_by("pk").values_list("operation", flat=True))


def applied_and_verified(
    step: Step, run: SetupRun, key: str
) -> tuple[StepContext, StepOutputs, list[Finding], list[str]]:
    """Plan, then apply and verify with one context, as the runner calls verify right after
    apply; returns that context, apply's outputs, verify's findings and the IAM operations
    verify called."""
    step.plan(step_context(run, key))
    ctx = step_context(run, key)
    outputs = step.apply(ctx)
    applied = len(iam_operations(run))
    findings = step.verify(ctx)
    return ctx, outputs, findings, iam_operations(run)[applied:]
