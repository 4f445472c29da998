"""Creates the IAM user whose access key Okta uses to list the account's roles (Okta's
Provisioning tab), and keeps the key's secret encrypted for the admin to copy once.

Okta has no API for that tab, so typing the key there is a guided manual step (the page
wizard/views/step_secrets.py shows the key once). verify() reports whether Okta has used the key
(iam:GetAccessKeyLastUsed); the flow's later verification is what waits for it.

Inputs: rotate_key (bool): create a new key and delete the old ones, e.g. after the secret was
shown and lost. Outputs: user_name, user_arn, access_key_id (never the secret).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.models import StepRun
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.connect_instance import ConnectInstanceOutputs

RUN_TAG = "connect-sso-wizard:run"
USER_PATH = "/connect-sso-wizard/"
USER_NAME_PREFIX = "OktaRoleListing-"
# IAM user names: at most 64 characters from [\w+=,.@-] (botocore's iam model, userNameType).
MAX_USER_NAME_LENGTH = 64
POLICY_NAME = "OktaListRoles"
# What Okta's AWS app calls with the key (Okta's AWS deployment guide, "Generate an AWS API access
# key": https://help.okta.com/ja-jp/content/Topics/deploymentguides/aws/aws-generate-api-key.htm).
POLICY_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iam:ListRoles", "iam:ListAccountAliases"],
            "Resource": "*",
        }
    ],
}


class RotateKeyForm(forms.Form):
    rotate_key = forms.BooleanField(
        label=_("Make a new access key (the old one stops working)"), required=False
    )


def user_name(ctx: StepContext) -> str:
    """Deterministic per instance, so a re-run finds what a crashed attempt created."""
    alias = ctx.instance_alias or ctx.outputs_of(ConnectInstanceOutputs).instance_alias
    suffix = alias or ctx.run_id.hex[:8]
    return f"{USER_NAME_PREFIX}{suffix}"[:MAX_USER_NAME_LENGTH]


def _find_user(iam: Any, name: str) -> dict[str, Any] | None:
    try:
        return iam.get_user(UserName=name)["User"]
    except PermanentError as error:
        if error.code == "NoSuchEntity":
            return None
        raise


def _has_policy(iam: Any, name: str) -> bool:
    try:
        iam.get_user_policy(UserName=name, PolicyName=POLICY_NAME)
    except PermanentError as error:
        if error.code == "NoSuchEntity":
            return False
        raise
    return True


def _key_ids(iam: Any, name: str) -> list[str]:
    return [
        key["AccessKeyId"]
        for page in iam.get_paginator("list_access_keys").paginate(UserName=name)
        for key in page["AccessKeyMetadata"]
    ]


def _stored_key_id(ctx: StepContext) -> str:
    """The id of the key whose secret this run holds (store_secret names it by its id)."""
    return next(iter(ctx.stored_secrets()), "")


def _wants_rotation(ctx: StepContext, stored: str, keys: list[str]) -> bool:
    """The admin asked for a new key and the current one was shown (or isn't this run's): once
    the new key is stored, its secret is unshown again, so a re-run doesn't rotate twice."""
    if not ctx.inputs.get("rotate_key"):
        return False
    if stored not in keys:
        return True
    if ctx.step_run_id is None:
        return False

    step = StepRun.objects.filter(pk=ctx.step_run_id).only("secret_revealed_at").first()
    return step is not None and step.secret_revealed_at is not None


@dataclass
class OktaRoleListingUserOutputs(StepOutputs):
    """The IAM user Okta lists the account's roles with, and its access key's ID (the secret is
    kept encrypted on the step, never in outputs)."""

    step_key: ClassVar[str] = "okta_role_listing_user"

    user_name: str = ""
    user_arn: str = ""
    access_key_id: str = ""


@register
class OktaRoleListingUser(Step):
    key = "okta_role_listing_user"
    # Run again to rotate the key (a new one, the old ones deleted).
    rerunnable = True
    rerun_inputs = {"rotate_key": True}
    title = _("IAM user for Okta's role list")
    description = _(
        "Creates an IAM user allowed only to list roles and account aliases, and an access key "
        "that you paste into the Okta app's Provisioning tab."
    )
    form_class = RotateKeyForm

    def plan(self, ctx: StepContext) -> Plan:
        iam = ctx.aws("iam")
        name = user_name(ctx)
        user = _find_user(iam, name)
        if user is None:
            return Plan(
                changes=[
                    Change("create", "iam_user", name, details={"path": USER_PATH}),
                    Change("create", "iam_user_policy", POLICY_NAME, details=POLICY_DOCUMENT),
                    Change("create", "iam_access_key", name),
                ]
            )
        keys = _key_ids(iam, name)
        stored = _stored_key_id(ctx)
        changes = [
            Change("adopt", "iam_user", name, details={"arn": user["Arn"]}),
            Change(
                "nothing" if _has_policy(iam, name) else "create",
                "iam_user_policy",
                POLICY_NAME,
                details=POLICY_DOCUMENT,
            ),
        ]
        warnings = []
        if _wants_rotation(ctx, stored, keys) or not keys:
            changes.append(Change("create", "iam_access_key", name, details={"replaces": keys}))
        elif stored in keys:
            changes.append(Change("nothing", "iam_access_key", stored))
        else:
            changes.append(Change("adopt", "iam_access_key", keys[0]))
            warnings.append(
                Message(
                    _(
                        "The user %(user)s already has an access key whose secret the wizard "
                        "can't show (AWS returns a secret only once). If Okta doesn't have it, "
                        "run this step again with “Make a new access key” ticked."
                    ),
                    {"user": name},
                )
            )
        return Plan(changes=changes, warnings=warnings)

    def apply(self, ctx: StepContext) -> OktaRoleListingUserOutputs:
        iam = ctx.aws("iam")
        name = user_name(ctx)
        user = _find_user(iam, name)
        if user is None:
            user = iam.create_user(
                UserName=name,
                Path=USER_PATH,
                Tags=[{"Key": RUN_TAG, "Value": str(ctx.run_id)}],
            )["User"]
            ctx.record_created("iam_user", name)
        elif {"Key": RUN_TAG, "Value": str(ctx.run_id)} in user.get("Tags", []):
            # A crashed attempt of this run created it.
            ctx.record_created("iam_user", name)
        if not _has_policy(iam, name):
            iam.put_user_policy(
                UserName=name,
                PolicyName=POLICY_NAME,
                PolicyDocument=json.dumps(POLICY_DOCUMENT),
            )
            ctx.record_created("iam_user_policy", POLICY_NAME, user_name=name)
        access_key_id = self._access_key(ctx, iam, name)
        return OktaRoleListingUserOutputs(
            user_name=name, user_arn=user["Arn"], access_key_id=access_key_id
        )

    def _access_key(self, ctx: StepContext, iam: Any, name: str) -> str:
        keys = _key_ids(iam, name)
        stored = _stored_key_id(ctx)
        rotate = _wants_rotation(ctx, stored, keys)
        if stored in keys and not rotate:
            return stored
        if keys and not rotate and not ctx.created_of("iam_user"):
            # An earlier run's key, which Okta may already use: left alone (the plan says so).
            return keys[0]
        # Replace keys whose secret this run doesn't hold (an orphan of a crashed attempt, its
        # secret lost with it) or that the admin asked to rotate. Deleting first keeps within
        # IAM's two keys per user; a crash in between leaves no key, and the re-run makes one.
        for old in keys:
            iam.delete_access_key(UserName=name, AccessKeyId=old)
        created = iam.create_access_key(UserName=name)["AccessKey"]
        ctx.store_secret(created["AccessKeyId"], created["SecretAccessKey"])
        ctx.record_created("iam_access_key", created["AccessKeyId"], user_name=name)
        return str(created["AccessKeyId"])

    def verify(self, ctx: StepContext) -> list[Finding]:
        iam = ctx.aws("iam")
        name = user_name(ctx)
        keys = _key_ids(iam, name)
        stored = _stored_key_id(ctx)
        key = stored if stored in keys else (keys[0] if keys else "")
        if not key:
            return [
                Finding(
                    check=Message(_("The IAM user has an access key")),
                    ok=False,
                    detail=Message(_("%(user)s has no access key"), {"user": name}),
                    fix=Message(_("Retry the step.")),
                )
            ]
        used = iam.get_access_key_last_used(AccessKeyId=key)["AccessKeyLastUsed"]
        last_used = used.get("LastUsedDate")
        return [
            Finding(check=Message(_("The IAM user has an access key")), ok=True, detail=key),
            Finding(
                check=Message(_("Okta has used the key")),
                ok=last_used is not None,
                # The admin pastes the key into Okta after this step; the flow's later
                # verification waits for it.
                blocking=False,
                detail=(
                    Message(
                        _("last used %(when)s UTC (%(service)s)"),
                        {
                            "when": f"{last_used:%Y-%m-%d %H:%M}",
                            "service": used.get("ServiceName", ""),
                        },
                    )
                    if last_used
                    else Message(_("not used yet"))
                ),
                fix=(
                    ""
                    if last_used
                    else Message(
                        _(
                            "In the Okta app: Provisioning › Integration › Enable API integration, "
                            "paste the keys, Test API Credentials, Save."
                        )
                    )
                ),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        created_user = ctx.created_of("iam_user")
        iam = ctx.aws("iam")
        names = {
            str(r.details["user_name"])
            for r in ctx.created_of("iam_user_policy", "iam_access_key")
            if r.details.get("user_name")
        }
        names |= {r.identifier for r in created_user}
        for name in names:
            if _find_user(iam, name) is None:
                continue
            keys = _key_ids(iam, name)
            ours = {r.identifier for r in ctx.created_of("iam_access_key")}
            for key in keys:
                if created_user or key in ours:
                    iam.delete_access_key(UserName=name, AccessKeyId=key)
            if ctx.created_of("iam_user_policy") and _has_policy(iam, name):
                iam.delete_user_policy(UserName=name, PolicyName=POLICY_NAME)
            if created_user:
                iam.delete_user(UserName=name)
