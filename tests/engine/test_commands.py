"""setup_sso runs a whole setup from a TOML plan with the same engine; rotate_encryption_keys
re-encrypts connection secrets with the newest key."""

from __future__ import annotations

import io
import textwrap

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError

from provisioning import secret_box
from provisioning.models import Cloud, Connection, RunStatus, SetupRun
from tests import engine_doubles

pytestmark = pytest.mark.django_db

FLOW_STEPS = ["test_marker_one", "test_marker_two", "test_marker_three"]


def _plan(tmp_path, body: str) -> str:
    path = tmp_path / "plan.toml"
    path.write_text(textwrap.dedent(body))
    return str(path)


def _setup_sso(*args: str) -> str:
    out = io.StringIO()
    call_command("setup_sso", *args, stdout=out)
    return out.getvalue()


def test_it_runs_a_setup_from_a_plan_file_and_prints_each_transition(tmp_path) -> None:
    Connection.objects.create(cloud=Cloud.ENTRA, name="Test tenant")
    plan = _plan(
        tmp_path,
        """
        flow = "test_flow"
        region = "ap-northeast-1"

        [instance]
        alias = "example-contact-center"

        [connections]
        idp = "Test tenant"

        [inputs]
        step_seconds = 0

        [steps.test_marker_two]
        answer = "from the plan"
        """,
    )

    output = _setup_sso(plan)

    run = SetupRun.objects.get()
    assert run.status == RunStatus.SUCCEEDED
    assert run.instance_alias == "example-contact-center"
    assert run.idp_connection.name == "Test tenant"
    assert run.steps.get(key="test_marker_two").outputs["answer"] == "from the plan"
    assert engine_doubles.creations(run.pk) == FLOW_STEPS
    lines = output.splitlines()
    assert lines[0] == f"Run {run.pk}"
    assert [line.split(" ", 1)[1] for line in lines[1:5]] == [
        "run: - → pending",
        "run: pending → running",
        "test_marker_one: pending → planning",
        "test_marker_one: planning → planned",
    ]
    assert sum("test_marker_two: applying → succeeded" in line for line in lines) == 1
    assert lines[-1] == f"Run {run.pk} succeeded."


def test_it_exits_non_zero_with_the_failed_steps_message_and_resumes(tmp_path) -> None:
    plan = _plan(
        tmp_path,
        """
        flow = "test_flow_fails_once"
        region = "ap-northeast-1"
        inputs = { step_seconds = 0 }
        """,
    )

    with pytest.raises(CommandError) as failure:
        _setup_sso(plan)

    assert str(failure.value) == (
        "Step test_marker_fails_once failed: This step fails the first time; retry it."
    )
    assert failure.value.returncode == 1
    run = SetupRun.objects.get()

    output = _setup_sso("--resume", str(run.pk))

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert "test_marker_fails_once: failed → pending" in output
    assert engine_doubles.creations(run.pk) == [
        "test_marker_one",
        "test_marker_fails_once",
        "test_marker_three",
    ]


def test_it_stops_at_a_plan_that_needs_confirmation_unless_told_to_confirm(tmp_path) -> None:
    body = """
        flow = "test_flow"
        region = "ap-northeast-1"
        {confirm}
        inputs = {{ step_seconds = 0, confirm_steps = ["test_marker_one"] }}
        """
    with pytest.raises(CommandError, match="confirm_plans = true") as waiting:
        _setup_sso(_plan(tmp_path, body.format(confirm="")))
    assert waiting.value.returncode == 2

    output = _setup_sso(_plan(tmp_path, body.format(confirm="confirm_plans = true")))

    assert "  create test_marker " in output
    assert output.splitlines()[-1].endswith("succeeded.")


def test_it_explains_a_bad_plan_file(tmp_path) -> None:
    with pytest.raises(CommandError, match="Unknown keys in .*: colour"):
        _setup_sso(_plan(tmp_path, 'flow = "test_flow"\nregion = "x"\ncolour = "blue"\n'))
    with pytest.raises(CommandError, match="no setup called “nope”"):
        _setup_sso(_plan(tmp_path, 'flow = "nope"\nregion = "x"\n'))
    with pytest.raises(CommandError, match="no connection named “Missing”"):
        _setup_sso(
            _plan(tmp_path, 'flow = "test_flow"\nregion = "x"\nconnections = { aws = "Missing" }\n')
        )


def test_it_re_encrypts_every_secret_with_the_newest_key(settings) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.WIZARD_ENCRYPTION_KEYS = [old_key]
    connection = Connection(cloud=Cloud.AWS, name="Production")
    connection.set_secrets({"secret_access_key": "s3cret"})
    connection.save()
    Connection.objects.create(cloud=Cloud.AWS, name="No secrets")
    settings.WIZARD_ENCRYPTION_KEYS = [new_key]
    with pytest.raises(secret_box.SecretUnreadable):
        _ = Connection.objects.get(pk=connection.pk).secrets

    settings.WIZARD_ENCRYPTION_KEYS = [new_key, old_key]
    assert Connection.objects.get(pk=connection.pk).secrets == {"secret_access_key": "s3cret"}
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)

    settings.WIZARD_ENCRYPTION_KEYS = [new_key]
    assert Connection.objects.get(pk=connection.pk).secrets == {"secret_access_key": "s3cret"}
    assert "1 connection(s)" in out.getvalue()


def test_it_refuses_to_rotate_a_secret_no_key_can_read(settings) -> None:
    settings.WIZARD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    connection = Connection(cloud=Cloud.AWS, name="Lost key")
    connection.set_secrets({"secret_access_key": "s3cret"})
    connection.save()
    settings.WIZARD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(CommandError, match="Put its old key back"):
        call_command("rotate_encryption_keys", stdout=io.StringIO())


XXE_METADATA = (
    '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">&x;</EntityDescriptor>'
)


def test_it_refuses_plan_file_answers_the_steps_forms_refuse(tmp_path) -> None:
    """A plan file's answers go through the step's form, as the run page's do: the command stops
    with the form's own messages (exit 1) and starts no run."""
    plan = tmp_path / "plan.toml"
    plan.write_text(
        textwrap.dedent(
            f"""
            flow = "entra"
            region = "ap-northeast-1"
            [steps.saml_provider]
            metadata_xml = '''{XXE_METADATA}'''
            [steps.entra_claims]
            session_name_source = "userprincipalname"
            session_duration_s = "abc"
            destination = "/connect/home"
            colour = "blue"
            """
        )
    )

    with pytest.raises(CommandError) as refused:
        _setup_sso(str(plan))
    message = str(refused.value)

    assert refused.value.returncode == 1
    assert "saml_provider: metadata_xml:" in message
    assert "entra_claims: session_duration_s: Enter a whole number." in message
    assert "entra_claims: destination: Select a valid choice." in message
    assert "Valid values: admin_site, ccp, agent_workspace, custom_ccp." in message
    assert "“colour” is not a field of this step" in message
    assert SetupRun.objects.count() == 0


def test_it_refuses_oversized_metadata_by_length(tmp_path) -> None:
    plan = tmp_path / "plan.toml"
    body = "<x>" + "a" * (5 * 1024 * 1024) + "</x>"
    plan.write_text(
        'flow = "entra"\nregion = "ap-northeast-1"\n'
        f'[steps.saml_provider]\nmetadata_xml = "{body}"\n'
    )

    with pytest.raises(CommandError, match="saml_provider: metadata_xml: Ensure this value has at"):
        _setup_sso(str(plan))
    assert SetupRun.objects.count() == 0
