"""Inspects a posted sign-in: finds the SAML response, runs AWS's checks on it against what AWS
knows (read by a worker) or the IdP metadata the admin gives, and names the first broken link."""

from __future__ import annotations

import datetime as dt
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from provisioning.audit import AuditScope
from provisioning.errors import ProvisioningError
from provisioning.models import Connection, SignInReading, SignInReadingStatus
from provisioning.sandbox_endpoints import read_sandbox_file
from provisioning.signin_checks.posted_sign_in import (
    AssertionFacts,
    PostedSignIn,
    assertion_facts,
)
from provisioning.signin_checks.refusals import SignInRefused
from provisioning.signin_checks.relay_state import parse_relay_state
from provisioning.signin_checks.saml_response import (
    ROLE_SESSION_NAME_ATTRIBUTE,
    RolePair,
    claimed_role_pair,
)
from provisioning.signin_checks.sign_in_chain import (
    CheckResult,
    SignInChain,
    check_sign_in,
    what_aws_knows,
)


@dataclass(frozen=True)
class Link:
    """One check, in the admin's words: what it is and how to fix it when it fails."""

    name: Any
    fix: Any


# The checks of provisioning/signin_checks/sign_in_chain.py, named and with their fixes.
LINKS = {
    "response": Link(
        _("the SAML response"),
        _(
            "Paste exactly what the browser posted to signin.aws.amazon.com/saml; turn assertion "
            "encryption off in the IdP app, and make the Role claim send “role ARN,provider ARN”."
        ),
    ),
    "saml_provider": Link(
        _("the IAM identity provider"),
        _(
            "Create the IAM identity provider the Role claim names, or correct the provider ARN "
            "in the Role claim."
        ),
    ),
    "signature": Link(
        _("the signature"),
        _(
            "Upload the IdP's current metadata to the IAM identity provider: it does not hold "
            "the certificate the IdP signs with (or the response was changed after signing)."
        ),
    ),
    "issuer": Link(
        _("the issuer"),
        _(
            "The IAM identity provider holds another app's metadata: upload this app's metadata "
            "to it."
        ),
    ),
    "audience": Link(
        _("the audience"),
        _(
            "Set the IdP app's identifier (entity ID) to https://signin.aws.amazon.com/saml "
            "(Entra: a #suffix is allowed)."
        ),
    ),
    "recipient": Link(
        _("the reply URL"),
        _(
            "Set the IdP app's reply URL (ACS URL) to https://signin.aws.amazon.com/saml or the "
            "regional sign-in URL."
        ),
    ),
    "time_window": Link(
        _("the time window"),
        _(
            "The response is outside its validity window: sign in again from the IdP, and check "
            "the clocks of the IdP and of the browser's machine."
        ),
    ),
    "role_session_name": Link(
        _("the RoleSessionName claim"),
        _(
            "Send a RoleSessionName claim of 2-64 letters, digits or + = , . @ _ - (for example "
            "the user's e-mail address)."
        ),
    ),
    "role": Link(
        _("the role"),
        _(
            "The Role claim names a role that does not exist: correct the role ARN in the Role "
            "claim (it is case-sensitive)."
        ),
    ),
    "trust_policy": Link(
        _("the role's trust"),
        _(
            "Let the role trust the identity provider for sts:AssumeRoleWithSAML with SAML:aud "
            "set to the sign-in URL the response goes to."
        ),
    ),
    "session_duration": Link(
        _("the session duration"),
        _(
            "Send a SessionDuration between 900 and 43200 seconds, and no longer than the role's "
            "maximum session duration."
        ),
    ),
    "relay_state": Link(
        _("the relay state"),
        _(
            "Set the IdP app's relay state to "
            "https://<region>.console.aws.amazon.com/connect/federate/<instance id>."
        ),
    ),
    "connect_instance": Link(
        _("the Connect instance"),
        _("Check that the instance exists, is active and uses SAML, in the region given."),
    ),
    "federation_permission": Link(
        _("the federation policy"),
        _(
            "Attach to the role a policy allowing connect:GetFederationToken on the instance "
            "(on “*” with connect:InstanceId, or on the instance's user/${aws:userid})."
        ),
    ),
    "connect_user": Link(
        _("the Connect user"),
        _(
            "Create the Connect user whose username equals the RoleSessionName exactly "
            "(usernames are case-sensitive), or change the claim."
        ),
    ),
}
OUTCOME_LABELS = {
    "passed": _("passed"),
    "failed": _("failed"),
    "not_checked": _("not checked"),
}


@dataclass(frozen=True)
class SignInTargets:
    """What the response points at, for a worker to read from AWS."""

    provider_arn: str
    role_arn: str
    role_session_name: str
    instance_id: str
    region: str


@dataclass(frozen=True)
class Inspection:
    posted: PostedSignIn
    facts: AssertionFacts
    chain: SignInChain
    instance_id: str
    region: str

    @property
    def first_failure(self) -> CheckResult | None:
        return self.chain.first_failure

    def verdict(self) -> dict[str, Any]:
        """The first broken link (name, the error the agent saw, the fix), or None for none."""
        failed = self.first_failure
        if failed is None:
            return {"broken": False}
        link = LINKS[failed.key]
        return {
            "broken": True,
            "key": failed.key,
            "name": link.name,
            "error": failed.error,
            "fix": link.fix,
            "detail": failed.detail,
        }

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "key": check.key,
                "name": LINKS[check.key].name,
                "outcome": check.outcome.value,
                "outcome_label": OUTCOME_LABELS[check.outcome.value],
                "detail": check.detail,
            }
            for check in self.chain.checks
        ]


def sandbox_signin_urls() -> tuple[str, ...]:
    """The sandbox's sign-in URL, to find in a HAR recorded against it (none in live mode)."""
    if settings.WIZARD_MODE != "sandbox":
        return ()
    try:
        return (str(read_sandbox_file()["aws_signin_url"]),)
    except (ProvisioningError, KeyError):
        return ()


def sign_in_targets(posted: PostedSignIn, *, instance_id: str, region: str) -> SignInTargets:
    """The provider, role and user the response names, and the instance to read (the one given,
    else the relay state's)."""
    try:
        pair = claimed_role_pair(posted.xml)
    except SignInRefused:
        pair = RolePair(role_arn="", provider_arn="")
    facts = assertion_facts(posted.xml)
    names = [values for name, values in facts.attributes if name == ROLE_SESSION_NAME_ATTRIBUTE]
    if not instance_id:
        try:
            relay = parse_relay_state(posted.relay_state)
        except SignInRefused:
            pass
        else:
            instance_id, region = relay.instance_id, region or relay.region
    return SignInTargets(
        provider_arn=pair.provider_arn,
        role_arn=pair.role_arn,
        role_session_name=names[0][0] if names and names[0] else "",
        instance_id=instance_id,
        region=region,
    )


def sign_in_inspect(
    *,
    posted: PostedSignIn,
    aws_facts: dict[str, Any] | None,
    pasted_metadata: str = "",
    instance_id: str = "",
    region: str = "",
    now: dt.datetime | None = None,
) -> Inspection:
    """Every check on the posted response; `aws_facts` from a finished reading, or None to check
    against `pasted_metadata` only."""
    facts = assertion_facts(posted.xml)
    knows = what_aws_knows(
        aws_facts,
        now=now or timezone.now(),
        pasted_metadata=pasted_metadata,
        instance_id=instance_id,
        region=region,
    )
    return Inspection(
        posted=posted,
        facts=facts,
        chain=check_sign_in(posted.xml, posted.relay_state, knows),
        instance_id=instance_id,
        region=region,
    )


def sign_in_reading_request(
    *, user: Any, connection_id: int, targets: SignInTargets
) -> SignInReading:
    """Saves what to read and enqueues the worker that reads it (web requests never call AWS).
    Only the targets are saved, never the response."""
    from provisioning.tasks import read_sign_in_facts

    connection = Connection.objects.get(pk=connection_id, cloud="aws")
    reading = SignInReading.objects.create(
        requested_by=user,
        connection=connection,
        provider_arn=targets.provider_arn,
        role_arn=targets.role_arn,
        instance_id=targets.instance_id,
        region=targets.region,
    )
    session_name = targets.role_session_name
    transaction.on_commit(lambda: read_sign_in_facts.delay(str(reading.pk), session_name))
    return reading


def sign_in_reading_run(*, reading_id: str, role_session_name: str) -> None:
    """The worker's half: reads IAM and Connect and saves what they hold. Runs in the worker."""
    from provisioning.aws.signin_facts import read_signin_facts

    reading = SignInReading.objects.select_related("connection").get(pk=uuid.UUID(reading_id))
    scope = AuditScope(actor_label=f"sign-in inspector@{socket.gethostname()}")
    try:
        facts = read_signin_facts(
            reading.connection,
            audit=scope,
            provider_arn=reading.provider_arn,
            role_arn=reading.role_arn,
            instance_id=reading.instance_id,
            region=reading.region,
            role_session_name=role_session_name,
        )
    except ProvisioningError as error:
        SignInReading.objects.filter(pk=reading.pk).update(
            status=SignInReadingStatus.FAILED, error_message=error.said()
        )
        return
    SignInReading.objects.filter(pk=reading.pk).update(
        status=SignInReadingStatus.DONE, facts=facts, read_at=timezone.now()
    )
