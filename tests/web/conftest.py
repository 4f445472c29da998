"""Fixtures for the page tests: a signed-in admin and a small flow only the pages use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import User
from django.test import Client

from provisioning.flows import FLOWS, Flow, register_flow
from provisioning.steps.base import STEPS, Finding, Plan, Step, register
from tests.web.factories import WEB_FLOW
from wizard.roles import ADMIN, role_group

PASSWORD = "correct horse battery staple"  # noqa: S105 - a test login


class AnswerForm(forms.Form):
    agent_count = forms.IntegerField(label="Agents", min_value=1, max_value=500)
    team_name = forms.CharField(label="Team")


class PageOnlyStep(Step):
    """A step only the pages show; no worker runs it here."""

    def plan(self, ctx: Any) -> Plan:
        raise AssertionError("only the pages use this step")

    def apply(self, ctx: Any) -> dict[str, Any]:
        raise AssertionError("only the pages use this step")

    def verify(self, ctx: Any) -> list[Finding]:
        return []

    def rollback(self, ctx: Any) -> None:
        return None


class AskStep(PageOnlyStep):
    """A step that asks the admin a question before it plans; only the pages use it here."""

    key = "web_ask"
    title = "Ask the admin"
    description = "Needs an answer."
    form_class = AnswerForm

    def plan(self, ctx: Any) -> Plan:
        return Plan(needs_input=True)


class CreateStep(PageOnlyStep):
    key = "web_create"
    title = "Create the instance"


@pytest.fixture
def web_flow() -> Iterator[Flow]:
    """A flow of two page-only steps, registered for one test."""
    for step_class in (AskStep, CreateStep):
        register(step_class)
    flow = register_flow(
        Flow(key=WEB_FLOW, idp="entra", title="Web test flow", step_keys=("web_ask", "web_create"))
    )
    yield flow
    FLOWS.pop(WEB_FLOW, None)
    for step_class in (AskStep, CreateStep):
        STEPS.pop(step_class.key, None)


@pytest.fixture
def admin_user(db: None) -> User:
    user = User.objects.create_user("admin", password=PASSWORD)
    user.groups.add(role_group(ADMIN))
    return user


@pytest.fixture
def admin_client(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client
