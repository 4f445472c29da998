"""The fixes of a check's findings that are not Repair (provisioning/federation_check/repair.py):
the finding a certificate rotation fixes, those a users run fixes, and the console steps the
admin takes for a finding the wizard leaves to them; the check page puts each next to its
findings."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

# "Rotate the signing certificate" (provisioning/signing_rotation.py) makes a new certificate and
# moves the IdP and IAM to it. A provider holding another certificate than the IdP signs with
# is not among them: the IdP's certificate is good, IAM only needs its metadata, which is
# Repair's saml_provider step.
ROTATION_FIXES = frozenset({"certificate_expired", "certificate_expiring"})
# "Connect users from groups" (provisioning/steps/group_users.py) makes a Connect user named as
# the app sends RoleSessionName for each person in the groups the admin picks, and reports or
# deletes the users nobody in them signs in as. A RoleSessionName that can be no username
# (session_name_invalid) is fixed in the IdP's attribute, not by any users run.
USERS_RUN_FIXES = frozenset(
    {
        "person_without_user",
        "username_case_differs",
        "session_name_from_other_attribute",
        "user_nobody_signs_in_as",
    }
)
# Where in the IdP's console the admin switches an app back on, when Repair does not (it
# activates Okta's AWS app in a plan the admin confirms; it never enables an Entra app).
# Entra: "Disable user sign-in for an application" (learn.microsoft.com, entra-docs
# disable-user-sign-in-portal.md: Enterprise applications → the app → Properties → "Enabled
# for users to sign-in?"); Okta: "Deactivate app integrations" (help.okta.com
# apps-deactivate.htm: "To reactivate an app, open the dropdown menu that's beside the
# integration, and then select Activate").
CONSOLE_STEPS: dict[tuple[str, str], Promise] = {
    ("app_disabled", "entra"): _(
        "In the Microsoft Entra admin center: Enterprise applications → All applications → the "
        "app → Properties → set “Enabled for users to sign-in?” to Yes, then Save."
    ),
    ("app_disabled", "okta"): _(
        "In the Okta Admin Console: Applications → Applications → the INACTIVE tab → the menu "
        "beside the app → Activate."
    ),
}


def console_steps(code: str, idp: str) -> str:
    """What the admin does in the IdP's console for this finding ("" when no run leaves it to
    them there)."""
    steps = CONSOLE_STEPS.get((code, idp))
    return str(steps) if steps is not None else ""
