"""A confirmed plan is the plan that runs, against the sandbox: the IAM steps of a run that
reviews every plan, with someone changing IAM between the admin's confirmation and the apply, or
the IdP changing the metadata its URL serves."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from provisioning.models import AuditEvent, AuditKind, Connection, RunStatus, SetupRun, StepStatus
from provisioning.runs import admin_moves
from provisioning.saml import parse_idp_metadata
from provisioning.steps.federation_role import FEDERATION_ROLE_TAG
from sandbox.server import Sandbox
from tests.engine.runs import drive, transitions
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.iam_flow import certificate, metadata
from tests.steps.iam_runs import iam_run, live_run_with_metadata_url, metadata_fetches, roles_named
from wizard.roles import ADMIN, role_group

# The IAM step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

ENTITY_ID = "https://idp.example.test/confirmed-plan"
TRUST = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


@pytest.fixture
def admin(db: None) -> User:
    user = User.objects.create_user("confirming-admin")
    user.groups.add(role_group(ADMIN))
    return user


def _waiting_on(run: SetupRun, key: str) -> dict[str, Any]:
    drive(run)
    step = run.steps.get(key=key)
    assert (run.status, step.status) == (RunStatus.WAITING, StepStatus.PLANNED), step.error
    assert step.plan["needs_confirmation"] is True
    return step.plan


def _confirm(admin: User, run: SetupRun, key: str) -> None:
    admin_moves.step_confirm(user=admin, run_id=run.pk, step_key=key, enqueue=False)


def test_it_asks_again_when_iam_changed_after_the_admin_confirmed_and_applies_the_new_plan(
    aws_connection: Connection, instance: dict[str, Any], iam: Any, admin: User
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    SetupRun.objects.filter(pk=run.pk).update(review_plans=True, created_by=admin)

    confirmed = _waiting_on(run, "saml_provider")
    ((action, name),) = [(c["action"], c["name"]) for c in confirmed["changes"]]
    assert action == "create"
    # The admin confirms; before the worker applies, someone registers the provider by hand,
    # with another IdP's metadata.
    _confirm(admin, run, "saml_provider")
    someone_elses = metadata("https://idp.example.test/someone-else", certificate())
    arn = iam.create_saml_provider(Name=name, SAMLMetadataDocument=someone_elses)["SAMLProviderArn"]

    replanned = _waiting_on(run, "saml_provider")

    assert [(c["action"], c["name"]) for c in replanned["changes"]] == [("update", name)]
    assert replanned["changed_since_confirmation"] == [
        {
            "resource_type": "saml_provider",
            "name": name,
            "confirmed": "create",
            "now": "update",
            "values": False,
        }
    ]
    # Nothing was written: the provider still holds someone else's metadata.
    held = iam.get_saml_provider(SAMLProviderArn=arn)["SAMLMetadataDocument"]
    assert "someone-else" in held
    event = AuditEvent.objects.get(
        run=run,
        kind=AuditKind.STEP_STATE,
        step_key="saml_provider",
        old_value__status="applying",
        new_value__status="planned",
    )
    assert event.message_text == (
        f"Plan changed since confirmation: saml_provider {name}: create → update"
    )
    page = Client()
    page.force_login(admin)
    url = reverse("run_detail", kwargs={"run_id": run.pk})
    english = page.get(url).content.decode()
    assert "The cloud changed after you confirmed this plan, so nothing was applied." in english
    assert "you confirmed “Create”, now “Update”" in english
    page.cookies["django_language"] = "ja"
    japanese = page.get(url, HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    assert "計画を確認した後にクラウドが変わったため、何も適用していません。" in japanese
    assert "確認時は「作成」、現在は「更新」" in japanese

    # The admin confirms the new plan: it applies.
    _confirm(admin, run, "saml_provider")
    _waiting_on(run, "federation_policy")
    assert ENTITY_ID in iam.get_saml_provider(SAMLProviderArn=arn)["SAMLMetadataDocument"]
    assert transitions(run, "saml_provider")[-2:] == [
        ("planned", "applying"),
        ("applying", "succeeded"),
    ]
    assert run.steps.get(key="saml_provider").created_resources == []

    # The same for the role: confirmed as a new role, someone creates it before the apply.
    _confirm(admin, run, "federation_policy")
    role_plan = _waiting_on(run, "federation_role")
    # The role, and the instance's tag that records it (unchanged by the role made by hand).
    ((role_action, role_name), tag) = [(c["action"], c["name"]) for c in role_plan["changes"]]
    assert (role_action, tag) == ("create", ("create", FEDERATION_ROLE_TAG))
    _confirm(admin, run, "federation_role")
    iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST)

    role_replanned = _waiting_on(run, "federation_role")
    assert [c["action"] for c in role_replanned["changes"]] == ["update", "create"]
    assert [d["now"] for d in role_replanned["changed_since_confirmation"]] == ["update"]
    assert "ec2.amazonaws.com" in str(iam.get_role(RoleName=role_name)["Role"])

    _confirm(admin, run, "federation_role")
    drive(run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    (role,) = roles_named(iam, role_name)
    assert "ec2.amazonaws.com" not in str(iam.get_role(RoleName=role_name)["Role"])
    assert arn in str(iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"])


def test_an_unchanged_cloud_applies_each_confirmed_plan_without_asking_twice(
    aws_connection: Connection, instance: dict[str, Any], iam: Any, admin: User
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    SetupRun.objects.filter(pk=run.pk).update(review_plans=True, created_by=admin)

    for key in ("saml_provider", "federation_policy", "federation_role"):
        _waiting_on(run, key)
        _confirm(admin, run, key)
    drive(run)

    assert run.status == RunStatus.SUCCEEDED, run.error
    for key in ("saml_provider", "federation_policy", "federation_role"):
        assert transitions(run, key) == [
            ("pending", "planning"),
            ("planning", "planned"),
            ("planned", "applying"),
            ("applying", "succeeded"),
        ]
        assert "changed_since_confirmation" not in run.steps.get(key=key).plan
    assert not AuditEvent.objects.filter(
        run=run, translatable_message__msgid__startswith="Plan changed"
    ).exists()


def test_it_registers_the_metadata_the_admin_confirmed_when_the_idp_serves_another_since(
    aws_connection: Connection,
    instance: dict[str, Any],
    iam: Any,
    admin: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    confirmed_cert = certificate(name="CN=Confirmed")
    confirmed_document = metadata(ENTITY_ID, confirmed_cert)
    wanted = parse_idp_metadata(confirmed_document).certificate.fingerprint_sha256
    run, served = live_run_with_metadata_url(
        aws_connection, instance, monkeypatch, confirmed_document
    )
    SetupRun.objects.filter(pk=run.pk).update(review_plans=True, created_by=admin)
    confirmed = _waiting_on(run, "saml_provider")
    # The page shows the plan's facts of the document, not the document the plan carries.
    page = Client()
    page.force_login(admin)
    shown = page.get(reverse("run_detail", kwargs={"run_id": run.pk})).content.decode()
    assert wanted in shown
    assert confirmed_cert.cert_base64 not in shown
    # The admin confirms the certificate the plan shows; the IdP then rolls it over (a new
    # certificate in the document its URL serves) before the worker applies.
    _confirm(admin, run, "saml_provider")
    rolled = certificate(name="CN=Rolled over")
    served.document = metadata(ENTITY_ID, rolled)

    _waiting_on(run, "federation_policy")

    step = run.steps.get(key="saml_provider")
    assert step.status == StepStatus.SUCCEEDED, step.error
    assert "changed_since_confirmation" not in step.plan
    (change,) = confirmed["changes"]
    assert change["details"]["certificate_fingerprint"] == wanted
    assert step.outputs["certificate_fingerprint"] == wanted
    held = iam.get_saml_provider(SAMLProviderArn=step.outputs["provider_arn"])
    assert held["SAMLMetadataDocument"] == confirmed_document
    assert rolled.cert_base64 not in held["SAMLMetadataDocument"]
    assert metadata_fetches(run) == len(served.fetched) == 1
