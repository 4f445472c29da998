"""Creates or updates the IAM policy that lets federated users open the Connect instance
(connect:GetFederationToken).

Input `policy_form`: "instance_condition" (default; on "*" with StringEquals connect:InstanceId,
the form many admins write by hand) or "user_resource" (on the instance's `user/${aws:userid}`
resource, as in the Amazon Connect Administrator Guide, "Configure SAML with IAM for Amazon
Connect"). Input `policy_name` (default "ConnectSSO-<instance alias or ID>-GetFederationToken").

Outputs: policy_arn, policy_name, policy_document (the JSON text that is the default version).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.aws.iam import (
    POLICY_NAME,
    account_id,
    as_document,
    checked_name,
    default_name,
    instance_id,
    name_for_instance,
    partition,
    policy_diff,
    policy_json,
    run_tags,
    same_policy,
    tagged_run,
)
from provisioning.context import CreatedResource, StepContext
from provisioning.errors import Conflict, NotFound, PermanentError
from provisioning.messages import Message
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

POLICY_FORMS = {
    "instance_condition": _("On any resource, for this instance only (connect:InstanceId)"),
    "user_resource": _("On the signed-in user's own resource (user/${aws:userid})"),
}
DEFAULT_POLICY_FORM = "instance_condition"
NAME_SUFFIX = "-GetFederationToken"
NAME_RULE = _("1 to 128 letters, digits, or the characters + = , . @ _ -")
# IAM keeps at most 5 versions of a managed policy (IAM User Guide, "Versioning IAM policies").
MAX_POLICY_VERSIONS = 5
POLICY_RESOURCE = "iam_policy"
# A repair (provisioning/federation_check/repair.py) whose check found the role allowed to
# federate sets this input: an existing policy is adopted with its document as it is (a policy
# made by hand may say more than the wizard's, or say it another way), never rewritten.
KEEP_POLICY_DOCUMENT = "keep_policy_document"
VERSION_RESOURCE = "iam_policy_version"
POLICY_DESCRIPTION = "Lets users federated by the Connect SSO wizard open their Connect instance."
# What plan() read of the policy (its ARN and the policy, or None), for the apply() that follows
# it at once (StepContext.read_by_plan).
FOUND_BY_PLAN = "found_policy"
# The policy's ARN and the version apply's own write made its default (CreatePolicy's
# DefaultVersionId, CreatePolicyVersion's VersionId), for the verify() right after: verify reads
# that version, and whether it is still the default, without asking GetPolicy which version is
# (StepContext.read_by_apply).
WRITTEN_DEFAULT = "written_default_version"


class FederationPolicyForm(forms.Form):
    policy_form = forms.ChoiceField(
        label=_("Policy form"),
        choices=list(POLICY_FORMS.items()),
        initial=DEFAULT_POLICY_FORM,
    )
    policy_name = forms.CharField(
        label=_("Policy name"),
        required=False,
        max_length=128,
        help_text=_("Leave empty for ConnectSSO-<instance alias>-GetFederationToken."),
    )

    def clean_policy_name(self) -> str:
        name = self.cleaned_data.get("policy_name", "").strip()
        if name and not POLICY_NAME.fullmatch(name):
            raise forms.ValidationError(_("Use %(rule)s.") % {"rule": NAME_RULE})
        return name


def policy_name(ctx: StepContext) -> str:
    name = str(ctx.inputs.get("policy_name") or "").strip() or default_name(ctx, 128, NAME_SUFFIX)
    return checked_name(name, POLICY_NAME, "IAM policy", str(NAME_RULE))


def default_policy_arn(instance_label: str, account: str, region: str) -> str:
    """The ARN of the policy a run for the instance `instance_label` (its alias, else its ID)
    makes or adopts when no policy_name is given."""
    name = name_for_instance(instance_label, 128, NAME_SUFFIX)
    return f"arn:{partition(region)}:iam::{account}:policy/{name}"


def policy_document(ctx: StepContext, account: str) -> dict[str, Any]:
    """One of the two forms of the federation policy admins write by hand, for the run's
    instance."""
    # One of POLICY_FORMS: the engine checked it with FederationPolicyForm before plan.
    form = str(ctx.inputs.get("policy_form") or DEFAULT_POLICY_FORM)
    instance = instance_id(ctx)
    statement: dict[str, Any] = {
        "Sid": "ConnectFederation",
        "Effect": "Allow",
        "Action": "connect:GetFederationToken",
    }
    if form == "instance_condition":
        statement["Resource"] = "*"
        statement["Condition"] = {"StringEquals": {"connect:InstanceId": instance}}
    else:
        statement["Resource"] = (
            f"arn:{partition(ctx.region)}:connect:{ctx.region}:{account}:instance/{instance}"
            "/user/${aws:userid}"
        )
    return {"Version": "2012-10-17", "Statement": [statement]}


def find_policy(iam: Any, arn: str) -> dict[str, Any] | None:
    """The managed policy at `arn` with its default version's document, or None."""
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except NotFound:
        return None
    version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    return {**policy, "Document": as_document(version["PolicyVersion"]["Document"])}


def default_version_document(iam: Any, arn: str, version_id: str) -> dict[str, Any] | None:
    """The document of version `version_id` of the policy at `arn` while it is the policy's
    default version; None when the policy or version is gone or another version is the default."""
    try:
        version = iam.get_policy_version(PolicyArn=arn, VersionId=version_id)["PolicyVersion"]
    except NotFound:
        return None
    if not version.get("IsDefaultVersion"):
        return None
    return as_document(version["Document"])


def _kept(ctx: StepContext) -> bool:
    return ctx.inputs.get(KEEP_POLICY_DOCUMENT) is True


def _target(ctx: StepContext) -> tuple[Any, str, str, dict[str, Any]]:
    iam = ctx.aws("iam")
    account = account_id(ctx)
    name = policy_name(ctx)
    arn = f"arn:{partition(ctx.region)}:iam::{account}:policy/{name}"
    return iam, name, arn, policy_document(ctx, account)


@dataclass
class FederationPolicyOutputs(StepOutputs):
    """The policy that lets the federation role call connect:GetFederationToken."""

    step_key: ClassVar[str] = "federation_policy"

    policy_arn: str = ""
    policy_name: str = ""
    policy_document: str = ""


@register
class FederationPolicyStep(Step):
    key = "federation_policy"
    title = _("Federation policy")
    description = _("Allows the federation role to open your Connect instance, and nothing else.")
    form_class = FederationPolicyForm

    def plan(self, ctx: StepContext) -> Plan:
        iam, name, arn, wanted = _target(ctx)
        existing = find_policy(iam, arn)
        ctx.read_by_plan[FOUND_BY_PLAN] = (arn, existing)
        details = {"policy_arn": arn, "policy_document": policy_json(wanted)}
        if existing is None:
            return Plan(changes=[Change("create", POLICY_RESOURCE, name, details)])
        if _kept(ctx):
            return Plan(changes=[Change("adopt", POLICY_RESOURCE, name, {"policy_arn": arn})])
        if same_policy(existing["Document"], wanted):
            return Plan(changes=[Change("nothing", POLICY_RESOURCE, name, details)])
        diff = policy_diff(
            existing["Document"],
            wanted,
            old_label=f"{name} {existing['DefaultVersionId']} (now)",
            new_label=f"{name} (new default version)",
        )
        warnings = []
        if existing.get("AttachmentCount"):
            warnings.append(
                Message(
                    _(
                        "This policy is attached to %(count)s role(s) or user(s): the new version "
                        "applies to them too."
                    ),
                    {"count": existing["AttachmentCount"]},
                )
            )
        return Plan(
            changes=[Change("update", POLICY_RESOURCE, name, details, diff)], warnings=warnings
        )

    def apply(self, ctx: StepContext) -> FederationPolicyOutputs:
        iam, name, arn, wanted = _target(ctx)
        # The plan's reading of the same policy, made a moment ago, when apply follows it at once.
        planned_arn, existing = ctx.read_by_plan.pop(FOUND_BY_PLAN, ("", None))
        if planned_arn != arn:
            existing = find_policy(iam, arn)
        document = json.dumps(wanted)
        if existing is None:
            # Recorded before the call, so a worker killed right after it still leaves a trace.
            ctx.record_created(POLICY_RESOURCE, arn, name=name)
            created = iam.create_policy(
                PolicyName=name,
                PolicyDocument=document,
                Description=POLICY_DESCRIPTION,
                Tags=run_tags(ctx),
            )["Policy"]
            ctx.read_by_apply[WRITTEN_DEFAULT] = (created["Arn"], created["DefaultVersionId"])
        else:
            if tagged_run(existing.get("Tags")) == str(ctx.run_id):
                ctx.record_created(POLICY_RESOURCE, arn, name=name)
            if _kept(ctx):
                return FederationPolicyOutputs(
                    policy_arn=arn,
                    policy_name=name,
                    policy_document=policy_json(as_document(existing["Document"])),
                )
            if not same_policy(existing["Document"], wanted):
                self._add_default_version(ctx, iam, arn, existing["DefaultVersionId"], document)
        return FederationPolicyOutputs(
            policy_arn=arn, policy_name=name, policy_document=policy_json(wanted)
        )

    def _add_default_version(
        self, ctx: StepContext, iam: Any, arn: str, previous_default: str, document: str
    ) -> None:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= MAX_POLICY_VERSIONS:
            oldest = min(
                (version for version in versions if not version["IsDefaultVersion"]),
                key=lambda version: version["CreateDate"],
            )
            iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        created = iam.create_policy_version(
            PolicyArn=arn, PolicyDocument=document, SetAsDefault=True
        )["PolicyVersion"]
        ctx.record_created(
            VERSION_RESOURCE,
            f"{arn}#{created['VersionId']}",
            policy_arn=arn,
            version_id=created["VersionId"],
            previous_default=previous_default,
        )
        ctx.read_by_apply[WRITTEN_DEFAULT] = (arn, created["VersionId"])

    def verify(self, ctx: StepContext) -> list[Finding]:
        iam, name, arn, wanted = _target(ctx)
        # Read from IAM either way: the version apply's write named (its ARN and version id are
        # the write's answer, the document is read back), else the policy's default as IAM says.
        written_arn, version_id = ctx.read_by_apply.get(WRITTEN_DEFAULT, ("", ""))
        if written_arn == arn:
            document = default_version_document(iam, arn, version_id)
        else:
            existing = find_policy(iam, arn)
            document = existing["Document"] if existing is not None else None
        holds = document is not None and (_kept(ctx) or same_policy(document, wanted))
        return [
            Finding(
                Message(_("The federation policy's default version is the expected document")),
                ok=holds,
                detail=arn
                if holds
                else Message(
                    _("%(policy)s is missing or has another default version."), {"policy": name}
                ),
                fix="" if holds else Message(_("Retry the step.")),
            )
        ]

    def rollback(self, ctx: StepContext) -> None:
        iam = ctx.aws("iam")
        # Versions first (newest last recorded, undone first), then whole policies.
        for entry in reversed(ctx.created_of(VERSION_RESOURCE)):
            self._remove_version(iam, entry)
        for entry in ctx.created_of(POLICY_RESOURCE):
            self._delete_policy(ctx, iam, entry.identifier)

    def _remove_version(self, iam: Any, entry: CreatedResource) -> None:
        arn, version_id = entry.details["policy_arn"], entry.details["version_id"]
        previous_default = entry.details["previous_default"]
        try:
            versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        except NotFound:
            return
        ids = {version["VersionId"]: version for version in versions}
        if version_id not in ids:
            return
        if ids[version_id]["IsDefaultVersion"] and previous_default in ids:
            iam.set_default_policy_version(PolicyArn=arn, VersionId=previous_default)
        if version_id != previous_default:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version_id)

    def _delete_policy(self, ctx: StepContext, iam: Any, arn: str) -> None:
        existing = find_policy(iam, arn)
        if existing is None:
            return
        owner = tagged_run(existing.get("Tags"))
        if owner and owner != str(ctx.run_id):
            return
        try:
            versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
            for version in versions:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=arn)
        except Conflict as error:
            if error.code != "DeleteConflict":
                raise
            raise PermanentError(
                Message(
                    _(
                        "The policy %(policy)s is still attached to a role, user or group, so it "
                        "can't be deleted."
                    ),
                    {"policy": arn},
                ),
                code="federation_policy_attached",
                hint=Message(
                    _(
                        "Roll back the federation role step first, or detach the policy in the "
                        "IAM console (Policies › the policy › Entities attached), then retry."
                    )
                ),
            ) from error
