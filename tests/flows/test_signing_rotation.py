"""The signing-certificate rotation, run as a flow against the sandbox for each IdP: an SSO
setup runs headless, its watched federation starts "Rotate the signing certificate", and the run
ends with IAM holding the new certificate alone, a sign-in working after it, and none refused on
the way (a sign-in every second meanwhile)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from provisioning.federation_watch import watch_from_run
from provisioning.models import RunStatus, SetupRun
from provisioning.runs import admin_moves, runner
from provisioning.services.signing_rotations import rotation_run_create
from provisioning.signing_keys import add_signing_key, rotation_marker
from provisioning.signing_rotation import certificate_fingerprint, signing_fingerprints
from provisioning.steps.sign_in_test import sandbox_sign_in
from sandbox.server import Sandbox
from tests.flows.entra_runs import entra_sandbox, plan_file, setup_sso, step_context
from tests.flows.test_okta_headless import GROUP_MAPPING, okta_sandbox, run_plan, variant
from tests.flows.user_runs import drive
from tests.sandbox.aws_clients import aws_client

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["entra_sandbox", "okta_sandbox"]


def _sign_in(setup: SetupRun) -> str:
    """ "" when the setup's tested person signs in through the whole chain now; else why not."""
    ctx = step_context(setup, "sign_in_test")
    person = setup.steps.get(key="sign_in_test").outputs["results"][0]
    result = sandbox_sign_in(ctx, person)
    return "" if result["ok"] else f"{result['link']}: {result['detail']}"


@contextmanager
def sign_in_every_second(sign_in: Callable[[], str]) -> Iterator[list[str]]:
    """Sign in once a second while the block runs; yields the list of failures (and attempts
    as the "." entries' count)."""
    outcomes: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        try:
            while not stop.is_set():
                outcomes.append(sign_in() or ".")
                stop.wait(1.0)
        finally:
            connection.close()  # the thread's own database connection (audit rows)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        thread.join(timeout=30)


def _held(sandbox: Sandbox, provider_arn: str) -> frozenset[str]:
    iam = aws_client(sandbox, "iam")
    document = iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    return signing_fingerprints(document)


def _rotate(sandbox: Sandbox, setup: SetupRun) -> SetupRun:
    assert setup.status == RunStatus.SUCCEEDED, setup.error
    watched = watch_from_run(run=setup)
    assert watched is not None
    provider_arn = setup.steps.get(key="saml_provider").outputs["provider_arn"]
    iam = aws_client(sandbox, "iam")
    before = signing_fingerprints(
        iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    )
    assert _sign_in(setup) == ""

    with sign_in_every_second(lambda: _sign_in(setup)) as outcomes:
        run = rotation_run_create(user=None, watched_id=watched.pk, enqueue=False)
        run = drive(run)
        time.sleep(1.5)

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    new = run.steps.get(key="signing_certificate_new").outputs
    held = signing_fingerprints(
        iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"]
    )
    assert held == {certificate_fingerprint(new["certificate"])}
    assert not held & before
    assert _sign_in(setup) == ""
    failures = [outcome for outcome in outcomes if outcome != "."]
    print(f"rotation: {len(outcomes)} sign-ins, {len(failures)} refused")  # noqa: T201
    assert failures == [] and len(outcomes) >= 2
    return run


def test_it_rotates_an_okta_federations_certificate_and_rolls_it_back_with_no_sign_in_refused(
    okta_sandbox: Sandbox, tmp_path: Path
) -> None:
    setup = run_plan(
        variant(GROUP_MAPPING, tmp_path, alias=f"okta-rotation-{uuid.uuid4().hex[:6]}")
    )
    provider_arn = setup.steps.get(key="saml_provider").outputs["provider_arn"]
    before = _held(okta_sandbox, provider_arn)
    rotation = _rotate(okta_sandbox, setup)

    # Rolling the rotation back puts back the old signing key and IAM's old metadata, in the
    # order that keeps sign-ins working too.
    with sign_in_every_second(lambda: _sign_in(setup)) as outcomes:
        admin_moves.run_rollback(user=None, run_id=rotation.pk, enqueue=False)
        while (countdown := runner.advance(rotation.pk)) is not None:
            time.sleep(countdown)
    rotation.refresh_from_db()
    assert rotation.status == RunStatus.ROLLED_BACK, rotation.error
    assert _held(okta_sandbox, provider_arn) == before
    app = okta_sandbox.apps["okta"].org.apps[rotation.inputs["app_id"]]
    assert app.kid == rotation.steps.get(key="signing_certificate_new").outputs["previous_key_id"]
    assert [outcome for outcome in outcomes if outcome != "."] == []
    assert _sign_in(setup) == ""


def test_it_rotates_an_entra_federations_certificate_with_no_sign_in_refused(
    entra_sandbox: Sandbox, tmp_path: Path
) -> None:
    setup, _ = setup_sso(plan_file(tmp_path))
    _rotate(entra_sandbox, setup)


def test_an_entra_rotation_whose_worker_died_after_graph_added_the_certificate_adopts_it(
    entra_sandbox: Sandbox, tmp_path: Path
) -> None:
    """The worker dies between Graph's answer to addTokenSigningCertificate and the step's
    record of it: Graph holds a certificate the run knows nothing of. The step, run again, finds
    it by the name it gave it and goes on with it: the app ends with one new certificate."""
    setup, _ = setup_sso(plan_file(tmp_path))
    assert setup.status == RunStatus.SUCCEEDED, setup.error
    watched = watch_from_run(run=setup)
    assert watched is not None
    tenant = entra_sandbox.apps["entra"].tenant
    app_id = setup.steps.get(key="entra_app").outputs["app_id"]
    sp_id = tenant.find_service_principal(app_id, by_app_id=True)["id"]
    before = set(tenant.signing_certificates[sp_id])
    run = rotation_run_create(user=None, watched_id=watched.pk, enqueue=False)

    # The step's own call, as the step makes it; the crash leaves no record of it.
    ctx = step_context(run, "signing_certificate_new")
    orphan = add_signing_key(ctx, years=1, marker=rotation_marker(ctx))
    assert run.steps.get(key="signing_certificate_new").created_resources == []

    run = drive(run)

    assert run.status == RunStatus.SUCCEEDED, (run.error, list(run.steps.values("key", "error")))
    assert set(tenant.signing_certificates[sp_id]) - before == {orphan.key_id}
    new = run.steps.get(key="signing_certificate_new").outputs
    assert (new["key_id"], new["certificate"]) == (orphan.key_id, orphan.certificate)
    assert _sign_in(setup) == ""
