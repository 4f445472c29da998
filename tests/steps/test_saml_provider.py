"""saml_provider against the sandbox: one provider however often apply runs, an update only when
the entityID or certificate changed (with the change shown), metadata from the IdP step first,
metadata from a URL fetched once a run (apply registers the document the plan read), and
rollback removing only a provider the run created."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from provisioning.context import CreatedResource
from provisioning.errors import PermanentError, RetryableError
from provisioning.messages import render
from provisioning.models import Connection, RunStatus, StepRun, StepStatus
from provisioning.runs import admin_moves
from provisioning.saml import parse_idp_metadata
from provisioning.steps.saml_provider import (
    SamlProviderForm,
    SamlProviderOutputs,
    SamlProviderStep,
)
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.engine.runs import drive
from tests.sandbox.aws_clients import aws_client
from tests.steps import aws_step_runs
from tests.steps.aws_step_runs import unique
from tests.steps.iam_flow import certificate, metadata
from tests.steps.iam_runs import (
    applied_and_verified,
    iam_run,
    live_run_with_metadata_url,
    metadata_fetches,
    providers_named,
    step_context,
)

# The IAM step tests' fixtures (tests/steps/aws_step_runs.py).
aws_connection = aws_step_runs.aws_connection
instance = aws_step_runs.instance
connect = aws_step_runs.connect

STEP = SamlProviderStep()
KEY = "saml_provider"
ENTITY_ID = "https://sts.windows.net/5a1d2b3c-0000-4000-8000-00000000aaaa/"


def fingerprint(document: str) -> str:
    return parse_idp_metadata(document).certificate.fingerprint_sha256


@pytest.fixture
def iam(sandbox: Sandbox) -> Any:
    return aws_client(sandbox, "iam")


def test_it_creates_the_provider_once_however_often_apply_runs(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    cert = certificate()
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID, cert))
    name = f"ConnectSSO-{instance['InstanceAlias']}"

    plan = STEP.plan(step_context(run, KEY))
    first = STEP.apply(step_context(run, KEY))
    second = STEP.apply(step_context(run, KEY))

    (change,) = plan.changes
    assert (change.action, change.resource_type, change.name) == ("create", KEY, name)
    assert change.details["entity_id"] == ENTITY_ID
    assert change.details["certificate_subject"] == "CN=Test IdP signing"
    assert change.details["certificate_thumbprint"] == cert.thumbprint
    assert change.details["certificate_not_after"] == cert.not_after.isoformat()
    assert first == second
    assert providers_named(iam, name) == [first.provider_arn]
    assert first.provider_name == name
    assert first.entity_id == ENTITY_ID
    assert first.certificate_fingerprint == change.details["certificate_fingerprint"]
    assert STEP.plan(step_context(run, KEY)).changes[0].action == "nothing"
    assert all(finding.ok for finding in STEP.verify(step_context(run, KEY)))
    assert step_context(run, KEY).created_of(KEY) == [CreatedResource(KEY, name)]


def test_its_verify_reads_the_provider_apply_made_by_its_arn_and_sees_it_gone(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID, certificate()))

    ctx, outputs, findings, verify_read = applied_and_verified(STEP, run, KEY)

    assert all(finding.ok for finding in findings), findings
    # The ARN CreateSAMLProvider answered names the provider: IAM's list is not read again.
    assert verify_read == ["GetSAMLProvider"]
    assert isinstance(outputs, SamlProviderOutputs)
    iam.delete_saml_provider(SAMLProviderArn=outputs.provider_arn)
    (gone,) = STEP.verify(ctx)
    assert not gone.ok and "IAM has no SAML provider named" in render(gone.detail)


def test_it_updates_the_provider_only_when_the_certificate_changes(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    old_cert, new_cert = certificate(name="CN=Old signing"), certificate(name="CN=New signing")
    run = iam_run(aws_connection, instance, provider_name=unique("Rollover"))
    applied = STEP.apply(step_context(run, KEY, metadata_xml=metadata(ENTITY_ID, old_cert)))

    # The same certificate in a freshly generated document (new ID attribute) changes nothing.
    same = STEP.plan(step_context(run, KEY, metadata_xml=metadata(ENTITY_ID, old_cert)))
    rolled = metadata(ENTITY_ID, new_cert)
    plan = STEP.plan(step_context(run, KEY, metadata_xml=rolled))
    updated = STEP.apply(step_context(run, KEY, metadata_xml=rolled))

    assert same.changes[0].action == "nothing"
    (change,) = plan.changes
    assert change.action == "update"
    assert change.details["provider_arn"] == applied.provider_arn
    assert "-signing certificate: CN=Old signing" in change.diff
    assert "+signing certificate: CN=New signing" in change.diff
    assert updated.provider_arn == applied.provider_arn
    assert updated.certificate_fingerprint != applied.certificate_fingerprint
    held = iam.get_saml_provider(SAMLProviderArn=applied.provider_arn)["SAMLMetadataDocument"]
    assert new_cert.cert_base64 in held
    assert all(f.ok for f in STEP.verify(step_context(run, KEY, metadata_xml=rolled)))
    findings = STEP.verify(step_context(run, KEY, metadata_xml=metadata(ENTITY_ID, old_cert)))
    assert not all(f.ok for f in findings)


def test_it_takes_the_metadata_from_the_idp_step_first(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = iam_run(aws_connection, instance, provider_name=unique("FromIdp"))
    from_idp = "https://idp.example.test/entra-app"
    outputs = {"entra_app": {"metadata_xml": metadata(from_idp)}}

    plan = STEP.plan(step_context(run, KEY, outputs, metadata_xml=metadata(ENTITY_ID)))
    asking = STEP.plan(step_context(run, KEY))

    assert plan.changes[0].details["entity_id"] == from_idp
    assert asking.needs_input
    assert not asking.changes


def test_it_warns_in_the_plan_about_a_certificate_near_expiry(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID, certificate(days=12)))

    plan = STEP.plan(step_context(run, KEY))

    (warning,) = map(render, plan.warnings)
    assert "Roll it over" in warning


def test_it_fetches_no_url_in_sandbox_mode(
    aws_connection: Connection, instance: dict[str, Any]
) -> None:
    run = iam_run(aws_connection, instance, metadata_url="https://idp.example.com/metadata")

    with pytest.raises(PermanentError) as refused:
        STEP.plan(step_context(run, KEY))

    assert refused.value.code == "saml_metadata_url_in_sandbox"


@pytest.mark.parametrize("review_plans", [False, True], ids=["applied_at_once", "confirmed"])
def test_it_fetches_the_metadata_url_once_a_run(
    aws_connection: Connection,
    instance: dict[str, Any],
    iam: Any,
    monkeypatch: pytest.MonkeyPatch,
    review_plans: bool,
) -> None:
    cert = certificate()
    run, served = live_run_with_metadata_url(
        aws_connection, instance, monkeypatch, metadata(ENTITY_ID, cert)
    )
    run.review_plans = review_plans
    run.save(update_fields=["review_plans"])

    drive(run)
    if review_plans:
        admin_moves.step_confirm(user=None, run_id=run.pk, step_key=KEY, enqueue=False)
        drive(run)

    step = run.steps.get(key=KEY)
    assert step.status == StepStatus.SUCCEEDED, step.error
    # Plan read it; the re-check of a confirmed plan, apply and verify use what the plan read.
    assert len(served.fetched) == 1
    assert metadata_fetches(run) == 1
    held = iam.get_saml_provider(SAMLProviderArn=step.outputs["provider_arn"])
    assert cert.cert_base64 in held["SAMLMetadataDocument"]
    assert all(finding["ok"] for finding in step.outputs["verify"])
    # The run page shows the plan's changes, not the document the plan carries for apply.
    (change,) = step.plan["changes"]
    assert change["details"]["certificate_fingerprint"] == step.outputs["certificate_fingerprint"]


def test_a_run_resumed_after_its_worker_died_registers_the_metadata_its_plan_read(
    aws_connection: Connection,
    instance: dict[str, Any],
    iam: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    planned_cert, rolled_cert = certificate(name="CN=Planned"), certificate(name="CN=Rolled")
    planned = metadata(ENTITY_ID, planned_cert)
    run, served = live_run_with_metadata_url(aws_connection, instance, monkeypatch, planned)
    apply = SamlProviderStep.apply

    def dies_first(step: SamlProviderStep, ctx: Any) -> SamlProviderOutputs:
        # The worker is killed between the plan (saved, the step applying) and IAM's write.
        monkeypatch.setattr(SamlProviderStep, "apply", apply)
        raise SystemExit(1)

    monkeypatch.setattr(SamlProviderStep, "apply", dies_first)
    with pytest.raises(SystemExit):
        drive(run)
    assert run.steps.get(key=KEY).status == StepStatus.APPLYING
    # Meanwhile the IdP rolled its certificate over; the dead worker's claim runs out.
    served.document = metadata(ENTITY_ID, rolled_cert)
    StepRun.objects.filter(run=run, key=KEY).update(claimed_at=timezone.now() - timedelta(days=1))

    drive(run, worker="another-host:1")

    step = run.steps.get(key=KEY)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert step.outputs["certificate_fingerprint"] == fingerprint(planned)
    held = iam.get_saml_provider(SAMLProviderArn=step.outputs["provider_arn"])
    assert planned_cert.cert_base64 in held["SAMLMetadataDocument"]
    assert rolled_cert.cert_base64 not in held["SAMLMetadataDocument"]
    assert len(served.fetched) == metadata_fetches(run) == 1


def test_its_apply_refuses_a_plan_whose_document_is_not_the_one_the_plan_read(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    name = unique("Altered")
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID), provider_name=name)
    plan = STEP.plan(step_context(run, KEY)).to_json()
    ctx = step_context(run, KEY)
    ctx.plan = {**plan, "metadata_document": metadata("https://idp.example.test/other")}

    with pytest.raises(PermanentError) as refused:
        STEP.apply(ctx)

    assert refused.value.code == "saml_metadata_plan_altered"
    assert providers_named(iam, name) == []


def test_it_rolls_back_only_a_provider_the_run_created(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    adopted_name, created_name = unique("Adopted"), unique("Created")
    document = metadata(ENTITY_ID)
    adopted_arn = iam.create_saml_provider(Name=adopted_name, SAMLMetadataDocument=document)[
        "SAMLProviderArn"
    ]
    adopting = iam_run(aws_connection, instance, metadata_xml=document, provider_name=adopted_name)
    creating = iam_run(aws_connection, instance, metadata_xml=document, provider_name=created_name)
    STEP.apply(step_context(adopting, KEY))
    created_arn = STEP.apply(step_context(creating, KEY)).provider_arn

    STEP.rollback(step_context(adopting, KEY))
    STEP.rollback(step_context(creating, KEY))
    STEP.rollback(step_context(creating, KEY))

    assert providers_named(iam, adopted_name) == [adopted_arn]
    assert providers_named(iam, created_name) == []
    assert created_arn != adopted_arn


def test_it_gives_iam_the_metadata_without_the_byte_order_mark_iam_cannot_parse(
    aws_connection: Connection, instance: dict[str, Any], iam: Any
) -> None:
    # Entra serves its metadata with a BOM (MicrosoftDocs/azure-docs issue 65434), and admins
    # paste or upload it as downloaded.
    with_bom = "\ufeff" + metadata(ENTITY_ID)
    pasted = iam_run(aws_connection, instance, metadata_xml=with_bom)
    from_idp = iam_run(aws_connection, instance, provider_name=unique("FromEntra"))
    outputs = {"entra_app": {"metadata_xml": with_bom}}

    made = STEP.apply(step_context(pasted, KEY))
    adopted_from_idp = STEP.apply(step_context(from_idp, KEY, outputs))

    for applied in (made, adopted_from_idp):
        held = iam.get_saml_provider(SAMLProviderArn=applied.provider_arn)
        assert held["SAMLMetadataDocument"].startswith("<?xml")
    with pytest.raises(iam.exceptions.InvalidInputException) as refused:
        iam.create_saml_provider(Name=unique("Bom"), SAMLMetadataDocument=with_bom)
    assert "Could not parse metadata" in str(refused.value)


def test_it_maps_iam_errors_to_the_projects(
    aws_connection: Connection, instance: dict[str, Any], sandbox_knobs: Knobs
) -> None:
    run = iam_run(aws_connection, instance, metadata_xml=metadata(ENTITY_ID))
    sandbox_knobs.error_rates = {"iam:ListSAMLProviders": 1.0}

    with pytest.raises(RetryableError) as failed:
        STEP.plan(step_context(run, KEY))

    assert "ListSAMLProviders" in failed.value.message
    with pytest.raises(PermanentError) as named:
        STEP.plan(step_context(run, KEY, provider_name="has spaces"))
    assert named.value.code == "iam_invalid_name"


def test_its_form_checks_the_pasted_metadata_and_refuses_urls_in_sandbox_mode(
    settings: Any,
) -> None:
    settings.WIZARD_MODE = "sandbox"
    sp_metadata = metadata(ENTITY_ID).replace("IDPSSODescriptor", "SPSSODescriptor")

    sp = SamlProviderForm({"metadata_xml": sp_metadata})
    url = SamlProviderForm({"metadata_url": "https://idp.example.com/metadata"})
    name = SamlProviderForm({"metadata_xml": metadata(ENTITY_ID), "provider_name": "a b"})
    empty = SamlProviderForm({})
    good = SamlProviderForm({"metadata_xml": metadata(ENTITY_ID), "provider_name": "Okta_1.x"})

    assert "SP metadata" in str(sp.errors["metadata_xml"])
    assert "sandbox mode" in str(url.errors["metadata_url"])
    assert "provider_name" in name.errors
    assert "Paste the metadata" in str(empty.errors)
    assert good.is_valid(), good.errors


def test_its_form_takes_the_metadata_as_an_uploaded_file() -> None:
    document = metadata(ENTITY_ID)

    def upload(content: bytes) -> SamlProviderForm:
        return SamlProviderForm(
            {}, files={"metadata_file": SimpleUploadedFile("federation.xml", content)}
        )

    good = upload(b"\xef\xbb\xbf" + document.encode())  # as Entra serves it, with a BOM
    binary = upload(b"\x89PNG\r\n\x1a\n\xff\xfe")
    sp = upload(document.replace("IDPSSODescriptor", "SPSSODescriptor").encode())
    both = SamlProviderForm(
        {"metadata_xml": metadata(ENTITY_ID, certificate())},
        files={"metadata_file": SimpleUploadedFile("federation.xml", document.encode())},
    )

    assert good.is_valid(), good.errors
    assert good.cleaned_data["metadata_xml"] == document.strip()
    assert "metadata_file" not in good.cleaned_data  # answers are stored as JSON: text only
    assert "not text" in str(binary.errors["metadata_file"])
    assert "SP metadata" in str(sp.errors["metadata_file"])
    assert "not both" in str(both.errors["metadata_file"])
