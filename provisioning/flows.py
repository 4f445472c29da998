"""Flows: the ordered step keys of each setup (Entra, Okta), and the signature stored on a run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise


@dataclass(frozen=True)
class OptionalStep:
    """A step of a flow that runs only when the run's input `input` is true (New setup asks);
    otherwise the runner marks it skipped, with `skipped` as its plan's sentence."""

    input: str
    skipped: str | StrPromise


@dataclass(frozen=True)
class Flow:
    key: str
    idp: str  # "entra" or "okta"
    title: str | StrPromise  # lazy translations: the flow's name on the new-setup page
    step_keys: tuple[str, ...]
    # Step lists this flow had before, whose runs may still resume: each is today's without
    # steps added since, which such a run doesn't have and so never runs (a run follows its own
    # step rows).
    earlier_step_keys: tuple[tuple[str, ...], ...] = ()
    optional_steps: dict[str, OptionalStep] = field(default_factory=dict)
    # An SSO setup builds a federation; the other flows work on one a setup built (Connect users
    # from groups, rotating the signing certificate): no such run is watched, adds users, or is
    # its instance's setup.
    is_sso_setup: bool = True
    # Offered on the New setup page; a rotation starts from its watched federation instead.
    on_new_setup_page: bool = True

    @property
    def signature(self) -> str:
        """Changes whenever the step list changes; a run refuses to resume under another one."""
        return flow_signature(self.step_keys)

    def skipped_because(self, step_key: str, inputs: dict[str, Any]) -> str | StrPromise:
        """Why the run skips this step, as a lazy translation ("" when it runs it): an optional
        step its input leaves out, or a step a repair does not need (REPAIR_SKIPS)."""
        if self.is_sso_setup and step_key in (inputs.get(REPAIR_SKIPS) or []):
            return REPAIR_SKIPPED
        optional = self.optional_steps.get(step_key)
        if optional is None or inputs.get(optional.input) is True:
            return ""
        return optional.skipped

    def skip_reason(self, step_key: str, inputs: dict[str, Any]) -> str:
        """Why the run skips this step ("" when it runs it)."""
        return str(self.skipped_because(step_key, inputs))

    def accepts(self, signature: str) -> bool:
        """Whether a run started with this signature can continue under this flow."""
        return signature == self.signature or any(
            signature == flow_signature(keys) for keys in self.earlier_step_keys
        )


def flow_signature(step_keys: tuple[str, ...] | list[str]) -> str:
    return hashlib.sha256("\n".join(step_keys).encode()).hexdigest()


FLOWS: dict[str, Flow] = {}


def register_flow(flow: Flow) -> Flow:
    FLOWS[flow.key] = flow
    return flow


def get_flow(key: str) -> Flow:
    try:
        return FLOWS[key]
    except KeyError:
        raise LookupError(f"no flow is registered under {key!r}") from None


# Japanese phone numbers come last in the SSO setups, after the sign-in test (the setup never
# waits for AWS Support). The step skips itself unless the run's input claim_phone_numbers is
# true (New setup's "Claim Japanese phone numbers"); runs started before it was in the flows
# resume without it.
PHONE_STEP = "phone_prerequisites"
# The resource type of the one change in a skipped step's plan, whose name says why it skipped.
SKIPPED_STEP = "skipped_step"
CLAIM_PHONE_NUMBERS = "claim_phone_numbers"
_OPTIONAL_PHONE_STEP = {
    PHONE_STEP: OptionalStep(
        input=CLAIM_PHONE_NUMBERS,
        skipped=_(
            "Skipped: this setup claims no phone numbers (“Claim Japanese phone numbers” was "
            "not ticked on New setup)."
        ),
    )
}

# A repair (provisioning/federation_check/repair.py) runs an SSO setup flow against a federation
# that exists, with the steps no finding needs listed in this run input: they are skipped.
REPAIR_SKIPS = "repair_skips"
REPAIR_SKIPPED = _("Skipped: no finding of the check this repair started from is about this step.")

# Entra ID -------------------------------------------------------------------------------------
# The Entra preflight comes first: a missing Graph permission stops the run before any AWS call.
_ENTRA = (
    "entra_preflight",
    "preflight",
    "connect_instance",
    "entra_app",
    "saml_provider",
    "federation_policy",
    "federation_role",
    "entra_claims",
    "entra_assignments",
    "connect_users",
    "sign_in_test",
)
register_flow(
    Flow(
        key="entra",
        idp="entra",
        title=_("Microsoft Entra ID"),
        step_keys=(*_ENTRA, PHONE_STEP),
        earlier_step_keys=(_ENTRA,),
        optional_steps=_OPTIONAL_PHONE_STEP,
    )
)


# Okta -----------------------------------------------------------------------------------------
# Two ways for the role to reach Okta, the admin's choice when starting a run. Group mapping is
# fully automatic (membership of one Okta group gives the role); role download is the way Okta's
# AWS deployment guide sets it up (Okta lists the roles with an IAM user's key, typed into the app
# by hand, because Okta has no API for it) and lets the role be picked per person in Okta.
_OKTA_BEFORE_ROLES = (
    "okta_preflight",
    "preflight",
    "connect_instance",
    "okta_app",
    "saml_provider",
    "federation_policy",
    "federation_role",
    "okta_app_provider",
)
_OKTA_AFTER_ROLES = ("okta_assignments", "connect_users", "sign_in_test")
_OKTA_GROUP_MAPPING = (*_OKTA_BEFORE_ROLES, "okta_group_mapping", *_OKTA_AFTER_ROLES)
register_flow(
    Flow(
        key="okta_group_mapping",
        idp="okta",
        title=_("Okta: role by group mapping (fully automatic)"),
        step_keys=(*_OKTA_GROUP_MAPPING, PHONE_STEP),
        earlier_step_keys=(_OKTA_GROUP_MAPPING,),
        optional_steps=_OPTIONAL_PHONE_STEP,
    )
)
_OKTA_ROLE_DOWNLOAD = (
    *_OKTA_BEFORE_ROLES,
    "okta_role_listing_user",
    "okta_role_download_confirmed",
    *_OKTA_AFTER_ROLES,
)
register_flow(
    Flow(
        key="okta_role_download",
        idp="okta",
        title=_("Okta: roles downloaded from AWS (one manual step in Okta)"),
        step_keys=(*_OKTA_ROLE_DOWNLOAD, PHONE_STEP),
        earlier_step_keys=(_OKTA_ROLE_DOWNLOAD,),
        optional_steps=_OPTIONAL_PHONE_STEP,
    )
)


# Connect users from IdP groups ---------------------------------------------------------------
# For an instance whose SSO is set up: the AWS preflight, then the users step. A scheduled sync
# runs the same flow (provisioning/services/user_syncs.py).
USER_FLOWS = {"entra": "entra_users", "okta": "okta_users"}
register_flow(
    Flow(
        key=USER_FLOWS["entra"],
        idp="entra",
        title=_("Amazon Connect users from Entra ID groups"),
        step_keys=("preflight", "group_users"),
        is_sso_setup=False,
    )
)
register_flow(
    Flow(
        key=USER_FLOWS["okta"],
        idp="okta",
        title=_("Amazon Connect users from Okta groups"),
        step_keys=("preflight", "group_users"),
        is_sso_setup=False,
    )
)


# Rotate the signing certificate --------------------------------------------------------------
# For a federation that works: the IdP's SAML signing certificate replaced with no sign-in
# refused on the way (provisioning/signing_rotation.py has the order and why it holds).
ROTATION_FLOWS = {"entra": "entra_signing_rotation", "okta": "okta_signing_rotation"}
_ROTATION = (
    "signing_certificate_new",
    "saml_provider_overlap",
    "signing_certificate_switch",
    "signing_certificate_sign_in",
    "saml_provider_retire_old",
)
register_flow(
    Flow(
        key=ROTATION_FLOWS["entra"],
        idp="entra",
        title=_("Rotate the signing certificate (Entra ID)"),
        step_keys=_ROTATION,
        is_sso_setup=False,
        on_new_setup_page=False,
    )
)
register_flow(
    Flow(
        key=ROTATION_FLOWS["okta"],
        idp="okta",
        title=_("Rotate the signing certificate (Okta)"),
        step_keys=_ROTATION,
        is_sso_setup=False,
        on_new_setup_page=False,
    )
)


def is_sso_setup(flow_key: str) -> bool:
    """Whether a run of this flow builds a federation (a flow no longer registered did)."""
    flow = FLOWS.get(flow_key)
    return flow is None or flow.is_sso_setup


def not_sso_setup_keys() -> list[str]:
    """The flows whose runs are no SSO setup, for a query that looks for a federation's setup."""
    return [flow.key for flow in FLOWS.values() if not flow.is_sso_setup]
