"""Helpers for testing sign_in_test's live branch against the sandbox: a context as a live IdP
leaves it, and a cloud value replaced for the length of a block."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from provisioning.errors import PermanentError
from provisioning.models import SetupRun
from provisioning.steps.sign_in_test import SignInTest
from tests.flows.entra_runs import step_context


def live_context(run: SetupRun, idp_step: str, **outputs: dict[str, Any]) -> Any:
    """The sign-in test's context with the IdP step's outputs as a live IdP leaves them (no
    sandbox sign-on URL: that is what selects the live branch), and `outputs` merged over the
    earlier steps' outputs; every call still goes to the sandbox's endpoints, which speak the
    clouds' APIs."""
    ctx = step_context(run, "sign_in_test")
    ctx.outputs[idp_step] = {
        key: value for key, value in ctx.outputs[idp_step].items() if key != "sandbox_sso_url"
    }
    for key, changed in outputs.items():
        ctx.outputs[key] = {**ctx.outputs[key], **changed}
    return ctx


def live_failure(run: SetupRun, idp_step: str, **outputs: dict[str, Any]) -> PermanentError:
    with pytest.raises(PermanentError) as failed:
        SignInTest().apply(live_context(run, idp_step, **outputs))
    return failed.value


@contextmanager
def replaced(read: Callable[[], Any], write: Callable[[Any], Any], value: Any) -> Iterator[None]:
    """`value` written in place of what `read` gives, and that put back afterwards."""
    saved = read()
    write(value)
    try:
        yield
    finally:
        write(saved)


def provider_document(
    iam: Any, provider_arn: str
) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    """(read, write) of an IAM SAML provider's metadata document, for `replaced`."""
    return (
        lambda: iam.get_saml_provider(SAMLProviderArn=provider_arn)["SAMLMetadataDocument"],
        lambda document: iam.update_saml_provider(
            SAMLProviderArn=provider_arn, SAMLMetadataDocument=document
        ),
    )
