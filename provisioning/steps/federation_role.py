"""Creates or updates the one IAM role federated users of the Connect instance assume: trusted
for SAML sign-ins from the IAM identity provider, with the federation policy attached.

Reads outputs["saml_provider"]["provider_arn"] and outputs["federation_policy"]["policy_arn"].
Inputs: `role_name` (default "ConnectSSO-<instance alias or ID>"), `session_duration_hours`
(1-12, default 1: the role's MaxSessionDuration).

Outputs: role_arn, role_name, role_id, provider_arn, policy_arn, max_session_duration_s, and
role_value ("<roleArn>,<providerArn>": the value of the SAML Role attribute the IdP steps send).

Connect binds each user to the role of their first sign-in, so the role is recorded on the
instance (tag FEDERATION_ROLE_TAG, a change of the plan when the instance lacks it or names
another role); a plan that would change an existing role's trust, or give the instance a different
role, waits for the admin's confirmation.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.aws.iam import (
    ROLE_NAME,
    as_document,
    checked_name,
    created_here,
    default_name,
    instance_id,
    policy_diff,
    policy_json,
    run_tags,
    same_policy,
    signin_audiences,
    tagged_run,
)
from provisioning.context import CreatedResource, StepContext
from provisioning.errors import NotFound, PermanentError
from provisioning.messages import Message
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.connect_instance import ConnectInstanceOutputs
from provisioning.steps.federation_policy import FederationPolicyOutputs
from provisioning.steps.okta_app import OktaAppOutputs
from provisioning.steps.saml_provider import SamlProviderOutputs

# IAM's bounds on MaxSessionDuration: 1 to 12 hours (IAM API reference, CreateRole).
MIN_SESSION_HOURS = 1
MAX_SESSION_HOURS = 12
DEFAULT_SESSION_HOURS = 1
SECONDS_PER_HOUR = 3600
NAME_RULE = _("1 to 64 letters, digits, or the characters + = , . @ _ -")
ROLE_RESOURCE = "iam_role"
ATTACHMENT_RESOURCE = "iam_role_policy_attachment"
INSTANCE_TAG_RESOURCE = "connect_instance_tag"
# The tag on the Connect instance naming its federation role (ARN), set by this step.
FEDERATION_ROLE_TAG = "connect-sso-wizard:federation-role"
ROLE_DESCRIPTION = "Assumed by users signing in to Amazon Connect through the SAML IdP."
# What plan() read (the role as _Target, and the instance's ARN and recorded role), for the apply()
# that follows it at once (StepContext.read_by_plan).
FOUND_BY_PLAN = "found_role"
BAD_REQUEST_WARNING = _(
    "Amazon Connect ties each user to the IAM role and identity provider of their first sign-in. "
    "If anyone has already signed in to this instance, this change makes Connect answer “Bad "
    "Request” when they sign in next, until they are removed and added again in Connect. If users "
    "already sign in, keep the role they use instead: type its name as this step's role name. "
    "Apply only if no one has signed in yet, or you accept that."
)


class FederationRoleForm(forms.Form):
    role_name = forms.CharField(
        label=_("Role name"),
        required=False,
        max_length=64,
        help_text=_("Leave empty for ConnectSSO-<instance alias>."),
    )
    session_duration_hours = forms.IntegerField(
        label=_("Longest session (hours)"),
        min_value=MIN_SESSION_HOURS,
        max_value=MAX_SESSION_HOURS,
        initial=DEFAULT_SESSION_HOURS,
    )

    def clean_role_name(self) -> str:
        name = self.cleaned_data.get("role_name", "").strip()
        if name and not ROLE_NAME.fullmatch(name):
            raise forms.ValidationError(_("Use %(rule)s.") % {"rule": NAME_RULE})
        return name


def role_name(ctx: StepContext) -> str:
    name = str(ctx.inputs.get("role_name") or "").strip() or default_name(ctx, 64)
    return checked_name(name, ROLE_NAME, "IAM role", str(NAME_RULE))


def session_seconds(ctx: StepContext) -> int:
    """The role's MaxSessionDuration: the admin's choice, else at least what an earlier IdP step
    asserts as SessionDuration. STS refuses a SessionDuration above the role's maximum ("The
    requested DurationSeconds exceeds the MaxSessionDuration set for this role"), so a two-hour
    Okta session needs a role of two hours or more."""
    asserted = ctx.outputs_of(OktaAppOutputs).session_duration_s
    raw = ctx.inputs.get("session_duration_hours") or max(
        DEFAULT_SESSION_HOURS, -(-asserted // SECONDS_PER_HOUR)
    )
    try:
        hours = int(raw)
    except (TypeError, ValueError):
        hours = 0
    if not MIN_SESSION_HOURS <= hours <= MAX_SESSION_HOURS:
        raise PermanentError(
            Message(
                _(
                    "The session duration “%(raw)s” is not a whole number of hours from "
                    "%(min)s to %(max)s."
                ),
                {"raw": str(raw), "min": MIN_SESSION_HOURS, "max": MAX_SESSION_HOURS},
            ),
            code="federation_role_session_duration",
            hint=Message(
                _("Type a number of hours from %(min)s to %(max)s."),
                {"min": MIN_SESSION_HOURS, "max": MAX_SESSION_HOURS},
            ),
        )
    return hours * SECONDS_PER_HOUR


def _earlier_output(ctx: StepContext, step_key: str, key: str, value: str, what: Message) -> str:
    """An earlier step's output (`value`), or the run's input of the same name for a run that
    starts after that step."""
    value = value or str(ctx.inputs.get(key) or "")
    if not value:
        raise PermanentError(
            Message(_("The %(what)s is not known yet."), {"what": what}),
            code="federation_role_missing_input",
            hint=Message(_("Run the “%(step)s” step first."), {"step": step_key}),
        )
    return value


def trust_policy(provider_arn: str, region: str) -> dict[str, Any]:
    """Trust for SAML sign-ins from the provider, addressed to AWS sign-in (IAM User Guide,
    "Create a role for SAML 2.0 federation")."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithSAML",
                "Condition": {"StringEquals": {"SAML:aud": signin_audiences(region)}},
            }
        ],
    }


# A repair (provisioning/federation_check/repair.py) whose check found the role's trust working
# sets this input: an existing role keeps its trust policy as it is, whoever wrote it.
KEEP_TRUST_POLICY = "keep_trust_policy"


class _Target:
    """What the run wants and what IAM and Connect hold now."""

    def __init__(self, ctx: StepContext) -> None:
        self.iam = ctx.aws("iam")
        self.name = role_name(ctx)
        self.provider_arn = _earlier_output(
            ctx,
            SamlProviderOutputs.step_key,
            "provider_arn",
            ctx.outputs_of(SamlProviderOutputs).provider_arn,
            Message(_("IAM identity provider")),
        )
        self.policy_arn = _earlier_output(
            ctx,
            FederationPolicyOutputs.step_key,
            "policy_arn",
            ctx.outputs_of(FederationPolicyOutputs).policy_arn,
            Message(_("federation policy")),
        )
        self.seconds = session_seconds(ctx)
        self.trust = trust_policy(self.provider_arn, ctx.region)
        self.keeps_trust = ctx.inputs.get(KEEP_TRUST_POLICY) is True
        self.instance_id = instance_id(ctx)
        self.role = self._role()
        self.attached = self._attached() if self.role else set()

    def _role(self) -> dict[str, Any] | None:
        try:
            return self.iam.get_role(RoleName=self.name)["Role"]
        except NotFound:
            return None

    def _attached(self) -> set[str]:
        pages = self.iam.get_paginator("list_attached_role_policies").paginate(RoleName=self.name)
        return {policy["PolicyArn"] for page in pages for policy in page["AttachedPolicies"]}

    @property
    def current_trust(self) -> dict[str, Any]:
        return as_document(self.role["AssumeRolePolicyDocument"]) if self.role else {}

    @property
    def trust_differs(self) -> bool:
        """Whether the existing role's trust is to be rewritten (never when the run keeps it)."""
        if self.role is None or self.keeps_trust:
            return False
        return not same_policy(self.current_trust, self.trust)

    @property
    def duration_differs(self) -> bool:
        return self.role is not None and int(self.role.get("MaxSessionDuration", 0)) != self.seconds


def _instance_arn_and_role(ctx: StepContext, instance: str) -> tuple[str, str]:
    """The instance's ARN and the federation role ARN recorded on it ("" if none). The ARN is the
    one connect_instance's outputs give for this instance (an instance's ARN never changes, and
    ListTagsForResource refuses one that is gone), else DescribeInstance's."""
    connect = ctx.aws("connect")
    made = ctx.outputs_of(ConnectInstanceOutputs)
    arn = made.instance_arn if made.instance_id == instance else ""
    if not arn:
        arn = connect.describe_instance(InstanceId=instance)["Instance"]["Arn"]
    tags = connect.list_tags_for_resource(resourceArn=arn).get("tags", {})
    return arn, str(tags.get(FEDERATION_ROLE_TAG, ""))


def _new_role_arn(instance_arn: str, name: str) -> str:
    """The ARN CreateRole gives a role named `name` in the instance's partition and account
    (arn:<partition>:connect:<region>:<account>:instance/<ID>): its path is "/" when CreateRole
    is given none (IAM User Guide, "IAM identifiers": arn:aws:iam::<account>:role/<path><name>)."""
    _arn, part, _service, _region, account = instance_arn.split(":")[:5]
    return f"arn:{part}:iam::{account}:role/{name}"


def _instance_tag_change(instance_arn: str, recorded: str, role_arn: str) -> Change:
    """The tag that records `role_arn` on the instance: created, or changed from the role it
    records now."""
    details = {"instance_arn": instance_arn, "role_arn": role_arn}
    if not recorded:
        return Change("create", INSTANCE_TAG_RESOURCE, FEDERATION_ROLE_TAG, details)
    diff = f"{FEDERATION_ROLE_TAG}: {recorded} → {role_arn}"
    return Change("update", INSTANCE_TAG_RESOURCE, FEDERATION_ROLE_TAG, details, diff)


@dataclass
class FederationRoleOutputs(StepOutputs):
    """The role people federate into, and what the IdP puts in its Role claim."""

    step_key: ClassVar[str] = "federation_role"

    role_arn: str = ""
    role_name: str = ""
    role_id: str = ""
    provider_arn: str = ""
    policy_arn: str = ""
    max_session_duration_s: int = 0
    # "<role ARN>,<provider ARN>": the value of the IdP's Role claim.
    role_value: str = ""


@register
class FederationRoleStep(Step):
    key = "federation_role"
    title = _("Federation role")
    description = _("The role your users assume when they sign in to Connect through the IdP.")
    form_class = FederationRoleForm

    def plan(self, ctx: StepContext) -> Plan:
        target = _Target(ctx)
        on_instance = _instance_arn_and_role(ctx, target.instance_id)
        ctx.read_by_plan[FOUND_BY_PLAN] = (target, on_instance)
        recorded_role = on_instance[1]
        details: dict[str, Any] = {
            "trust_policy": policy_json(target.trust),
            "policy_arn": target.policy_arn,
            "max_session_duration_s": target.seconds,
        }
        plan = Plan()
        if target.role is None:
            plan.changes.append(Change("create", ROLE_RESOURCE, target.name, details))
        else:
            changes = []
            if target.trust_differs:
                changes.append("trust")
            if target.duration_differs:
                changes.append("max_session_duration")
            if target.policy_arn not in target.attached:
                changes.append("attach_policy")
            diff = (
                policy_diff(
                    target.current_trust,
                    target.trust,
                    old_label=f"{target.name} trust (now)",
                    new_label=f"{target.name} trust (new)",
                )
                if target.trust_differs
                else ""
            )
            plan.changes.append(
                Change(
                    "update" if changes else "nothing",
                    ROLE_RESOURCE,
                    target.name,
                    {**details, "role_arn": target.role["Arn"], "changes": changes},
                    diff,
                )
            )
        instance_arn = on_instance[0]
        role_arn = target.role["Arn"] if target.role else _new_role_arn(instance_arn, target.name)
        if recorded_role != role_arn:
            plan.changes.append(_instance_tag_change(instance_arn, recorded_role, role_arn))
        replaces_role = bool(recorded_role) and (
            target.role is None or recorded_role != target.role["Arn"]
        )
        changes_trust = target.trust_differs and not created_here(ctx, ROLE_RESOURCE, target.name)
        if replaces_role or changes_trust:
            plan.needs_confirmation = True
            reason = (
                _("The instance already has the federation role %(role)s.")
                % {"role": recorded_role}
                if replaces_role
                else _("The role %(role)s exists and its trust changes.") % {"role": target.name}
            )
            plan.warnings.append(f"{reason} {BAD_REQUEST_WARNING}")
        return plan

    def apply(self, ctx: StepContext) -> FederationRoleOutputs:
        # The plan's readings of the role and the instance, made a moment ago, when apply follows
        # it at once (or follows the re-check of a confirmed plan).
        # Single use, so an apply called again with this context (after a wait) reads afresh;
        # apply's calls go through its own client.
        planned: tuple[_Target, tuple[str, str]] | None = ctx.read_by_plan.pop(FOUND_BY_PLAN, None)
        target = planned[0] if planned else _Target(ctx)
        if planned:
            target.iam = ctx.aws("iam")
        iam = target.iam
        trust = json.dumps(target.trust)
        if target.role is None:
            # Recorded before the call, so a worker killed right after it leaves a trace.
            ctx.record_created(ROLE_RESOURCE, target.name)
            role = iam.create_role(
                RoleName=target.name,
                AssumeRolePolicyDocument=trust,
                Description=ROLE_DESCRIPTION,
                MaxSessionDuration=target.seconds,
                Tags=run_tags(ctx),
            )["Role"]
        else:
            role = target.role
            if tagged_run(role.get("Tags")) == str(ctx.run_id):
                ctx.record_created(ROLE_RESOURCE, target.name)
            if target.trust_differs:
                iam.update_assume_role_policy(RoleName=target.name, PolicyDocument=trust)
            if target.duration_differs:
                iam.update_role(RoleName=target.name, MaxSessionDuration=target.seconds)
        if target.policy_arn not in target.attached:
            ctx.record_created(
                ATTACHMENT_RESOURCE,
                f"{target.name}|{target.policy_arn}",
                role_name=target.name,
                policy_arn=target.policy_arn,
            )
            iam.attach_role_policy(RoleName=target.name, PolicyArn=target.policy_arn)
        self._record_on_instance(
            ctx, target.instance_id, role["Arn"], on_instance=planned[1] if planned else None
        )
        return FederationRoleOutputs(
            role_arn=role["Arn"],
            role_name=target.name,
            role_id=role["RoleId"],
            provider_arn=target.provider_arn,
            policy_arn=target.policy_arn,
            max_session_duration_s=target.seconds,
            role_value=f"{role['Arn']},{target.provider_arn}",
        )

    def _record_on_instance(
        self,
        ctx: StepContext,
        instance: str,
        role_arn: str,
        on_instance: tuple[str, str] | None = None,
    ) -> None:
        """Tag the instance with the role, as the plan planned it (_instance_tag_change), when it
        records another or none (`on_instance`: its ARN and recorded role as the plan read them
        a moment ago; apply changes neither before this)."""
        instance_arn, recorded = on_instance or _instance_arn_and_role(ctx, instance)
        if recorded == role_arn:
            return
        ctx.record_created(
            INSTANCE_TAG_RESOURCE,
            f"{instance_arn}|{FEDERATION_ROLE_TAG}",
            instance_arn=instance_arn,
            role_arn=role_arn,
            previous=recorded,
        )
        ctx.aws("connect").tag_resource(
            resourceArn=instance_arn, tags={FEDERATION_ROLE_TAG: role_arn}
        )

    def verify(self, ctx: StepContext) -> list[Finding]:
        target = _Target(ctx)
        if target.role is None:
            return [
                Finding(
                    Message(_("The federation role exists")),
                    ok=False,
                    detail=Message(_("IAM has no role named %(role)s."), {"role": target.name}),
                    fix=Message(_("Retry the step.")),
                )
            ]
        trust_holds = not target.trust_differs
        attached = target.policy_arn in target.attached
        return [
            Finding(Message(_("The federation role exists")), ok=True, detail=target.role["Arn"]),
            Finding(
                Message(_("The role trusts SAML sign-ins from the identity provider")),
                ok=trust_holds,
                detail="" if trust_holds else Message(_("The role's trust policy was changed.")),
                fix=""
                if trust_holds
                else Message(_("Retry the step to restore the trust policy.")),
            ),
            Finding(
                Message(_("The federation policy is attached to the role")),
                ok=attached,
                detail=""
                if attached
                else Message(_("%(policy)s is not attached."), {"policy": target.policy_arn}),
                fix="" if attached else Message(_("Retry the step to attach it.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        iam = ctx.aws("iam")
        for entry in ctx.created_of(INSTANCE_TAG_RESOURCE):
            self._restore_instance_tag(ctx, entry)
        for entry in ctx.created_of(ATTACHMENT_RESOURCE):
            with contextlib.suppress(NotFound):
                iam.detach_role_policy(
                    RoleName=entry.details["role_name"], PolicyArn=entry.details["policy_arn"]
                )
        for entry in ctx.created_of(ROLE_RESOURCE):
            self._delete_role(ctx, iam, entry.identifier)

    def _restore_instance_tag(self, ctx: StepContext, entry: CreatedResource) -> None:
        connect = ctx.aws("connect")
        arn = entry.details["instance_arn"]
        try:
            tags = connect.list_tags_for_resource(resourceArn=arn).get("tags", {})
        except NotFound:
            return
        if tags.get(FEDERATION_ROLE_TAG) != entry.details["role_arn"]:
            return
        if entry.details.get("previous"):
            connect.tag_resource(
                resourceArn=arn, tags={FEDERATION_ROLE_TAG: entry.details["previous"]}
            )
        else:
            connect.untag_resource(resourceArn=arn, tagKeys=[FEDERATION_ROLE_TAG])

    def _delete_role(self, ctx: StepContext, iam: Any, name: str) -> None:
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except NotFound:
            return
        owner = tagged_run(role.get("Tags"))
        if owner and owner != str(ctx.run_id):
            return
        # A role can't be deleted while policies are attached (DeleteConflict).
        pages = iam.get_paginator("list_attached_role_policies").paginate(RoleName=name)
        for page in pages:
            for policy in page["AttachedPolicies"]:
                iam.detach_role_policy(RoleName=name, PolicyArn=policy["PolicyArn"])
        iam.delete_role(RoleName=name)
