"""Factories for the page tests: connections, runs with their steps, audit rows."""

from __future__ import annotations

import itertools
from typing import Any

from provisioning.flows import FLOWS
from provisioning.models import AuditEvent, Connection, SetupRun, StepRun

WEB_FLOW = "web_test_flow"
_names = itertools.count(1)


def make_connection(cloud: str = "aws", **fields: Any) -> Connection:
    defaults: dict[str, Any] = {
        "name": f"{cloud} connection {next(_names)}",
        "config": {"method": "access_key"} if cloud == "aws" else {},
    }
    defaults.update(fields)
    secrets = defaults.pop("secrets", None)
    connection = Connection(cloud=cloud, **defaults)
    if secrets:
        connection.set_secrets(secrets)
    connection.save()
    return connection


def make_run(
    *,
    steps: list[dict[str, Any]] | None = None,
    flow_key: str = WEB_FLOW,
    **fields: Any,
) -> SetupRun:
    defaults: dict[str, Any] = {
        "idp": "entra",
        "flow_key": flow_key,
        "flow_signature": FLOWS[flow_key].signature if flow_key in FLOWS else "",
        "region": "ap-northeast-1",
        "instance_alias": f"demo-{next(_names)}",
        "status": "running",
    }
    defaults.update(fields)
    run = SetupRun.objects.create(**defaults)
    for position, step in enumerate(steps or []):
        StepRun.objects.create(run=run, position=position, **step)
    return run


def make_event(**fields: Any) -> AuditEvent:
    defaults: dict[str, Any] = {"kind": "call_finished", "actor_label": "admin", "outcome": "ok"}
    defaults.update(fields)
    return AuditEvent.objects.create(**defaults)
