"""Flows: the ordered step keys of each setup (Entra, Okta), and the signature stored on a run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise as StrPromise


@dataclass(frozen=True)
class Flow:
    key: str
    idp: str  # "entra" or "okta"
    title: str | StrPromise  # lazy translations: the flow's name on the new-setup page
    step_keys: tuple[str, ...]

    @property
    def signature(self) -> str:
        """Changes whenever the step list changes; a run refuses to resume under another one."""
        return flow_signature(self.step_keys)


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


# Entra ID -------------------------------------------------------------------------------------
# The Entra preflight comes first: a missing Graph permission stops the run before any AWS call.
register_flow(
    Flow(
        key="entra",
        idp="entra",
        title=_("Microsoft Entra ID"),
        step_keys=(
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
        ),
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
register_flow(
    Flow(
        key="okta_group_mapping",
        idp="okta",
        title=_("Okta: role by group mapping (fully automatic)"),
        step_keys=(*_OKTA_BEFORE_ROLES, "okta_group_mapping", *_OKTA_AFTER_ROLES),
    )
)
register_flow(
    Flow(
        key="okta_role_download",
        idp="okta",
        title=_("Okta: roles downloaded from AWS (one manual step in Okta)"),
        step_keys=(
            *_OKTA_BEFORE_ROLES,
            "okta_role_listing_user",
            "okta_role_download_confirmed",
            *_OKTA_AFTER_ROLES,
        ),
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
    )
)
register_flow(
    Flow(
        key=USER_FLOWS["okta"],
        idp="okta",
        title=_("Amazon Connect users from Okta groups"),
        step_keys=("preflight", "group_users"),
    )
)
