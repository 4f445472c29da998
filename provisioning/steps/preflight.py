"""The preflight step: who the AWS credentials are, whether Amazon Connect is offered in the region,
and which permissions the setup needs that the identity lacks.

Inputs: `flow_actions` (optional): the IAM actions to check, e.g. ["connect:CreateInstance"];
by default the actions of the AWS steps in the run's flow (ACTIONS_BY_STEP).
Outputs: `account_id`, `caller_arn`, `principal_arn` (the user or role the permissions were
checked for, "" when they could not be), `region`, `partition`, `connect_available`,
`permission_check` ("simulated": every action by iam:SimulatePrincipalPolicy; "partial": only the
actions a harmless read can prove, because the identity may not simulate; "none"),
`checked_actions` and `unchecked_actions` (how many), `missing_actions` (always [] in outputs: a
missing action stops the step with a PermanentError naming each one).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
from botocore.exceptions import UnknownRegionError
from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.aws.client import ACCESS_DENIED_CODES, NOT_FOUND_CODES
from provisioning.context import StepContext
from provisioning.errors import PermanentError
from provisioning.messages import Message
from provisioning.models import SetupRun
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

# The IAM actions each AWS step calls, from its module (plan, apply, verify and rollback).
# connect:CreateInstance also needs the dependent actions AWS lists for it in the Service
# Authorization Reference (ds:*, iam:CreateServiceLinkedRole); they change over time and are not
# simulated here: a refusal still names the missing one (provisioning.aws.client).
# The users steps (provisioning/user_changes/): reads, the changes, the quota of the instance,
# and the API rates the shared buckets are sized from (provisioning/aws/api_quotas.py).
USER_ACTIONS = (
    "connect:DescribeInstance",
    "connect:ListSecurityProfiles",
    "connect:ListRoutingProfiles",
    "connect:ListUsers",
    "connect:SearchUsers",
    "connect:DescribeUser",
    "connect:CreateUser",
    "connect:UpdateUserIdentityInfo",
    "connect:UpdateUserSecurityProfiles",
    "connect:UpdateUserRoutingProfile",
    "connect:UpdateUserPhoneConfig",
    "connect:DeleteUser",
    "servicequotas:GetServiceQuota",
    "servicequotas:ListServiceQuotas",
)
ACTIONS_BY_STEP: dict[str, tuple[str, ...]] = {
    "preflight": ("sts:GetCallerIdentity", "iam:SimulatePrincipalPolicy", "iam:GetRole"),
    "connect_instance": (
        "connect:ListInstances",
        "connect:DescribeInstance",
        "connect:CreateInstance",
        "connect:TagResource",
        "connect:DeleteInstance",
    ),
    "saml_provider": (
        "iam:ListSAMLProviders",
        "iam:GetSAMLProvider",
        "iam:CreateSAMLProvider",
        "iam:UpdateSAMLProvider",
        "iam:TagSAMLProvider",
        "iam:DeleteSAMLProvider",
    ),
    "federation_policy": (
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
        "iam:ListPolicyVersions",
        "iam:CreatePolicy",
        "iam:CreatePolicyVersion",
        "iam:DeletePolicyVersion",
        "iam:TagPolicy",
        "iam:DeletePolicy",
    ),
    "federation_role": (
        "iam:GetRole",
        "iam:CreateRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:UpdateRole",
        "iam:TagRole",
        "iam:ListAttachedRolePolicies",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
    ),
    "connect_users": USER_ACTIONS,
    "group_users": USER_ACTIONS,
    "okta_role_listing_user": (
        "iam:GetUser",
        "iam:CreateUser",
        "iam:TagUser",
        "iam:PutUserPolicy",
        "iam:ListAccessKeys",
        "iam:CreateAccessKey",
        "iam:GetAccessKeyLastUsed",
        "iam:DeleteAccessKey",
        "iam:DeleteUserPolicy",
        "iam:DeleteUser",
    ),
    "phone_prerequisites": (
        "servicequotas:GetServiceQuota",
        "servicequotas:GetAWSDefaultServiceQuota",
        "servicequotas:RequestServiceQuotaIncrease",
        "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota",
        "connect:SearchAvailablePhoneNumbers",
        "connect:ClaimPhoneNumber",
        "connect:DescribePhoneNumber",
        "connect:ListPhoneNumbersV2",
        "connect:ReleasePhoneNumber",
    ),
    # The live sign-in test's reads (sign_in_test.live_findings).
    "sign_in_test": (
        "iam:GetSAMLProvider",
        "iam:GetRole",
        "iam:SimulatePrincipalPolicy",
        "connect:DescribeInstance",
        "connect:SearchUsers",
        "connect:ListUsers",
        "connect:DescribeUser",
    ),
}
# Actions any identity may call: "No permissions are required to perform this operation" (STS
# API reference, GetCallerIdentity); the simulator would still call them implicitly denied.
NO_PERMISSION_ACTIONS = frozenset({"sts:GetCallerIdentity"})
SIMULATE_ACTION = "iam:SimulatePrincipalPolicy"
# A name and an instance ID no setup makes, for the reads below.
PROBE_NAME = "connect-sso-wizard-preflight-probe"
# The key under which plan() hands apply() its checks and their warnings (StepContext.read_by_plan).
CHECKED = "checked_aws"
PROBE_INSTANCE_ID = "00000000-0000-4000-8000-000000000000"
# Reads that prove an action allowed without iam:SimulatePrincipalPolicy: AWS authorizes a
# request before it looks for the resource (IAM User Guide, "Understanding how IAM works": the
# request is authorized, then the actions are performed), so "not found" means allowed and
# AccessDenied means missing. (service, operation, parameters); {partition} and {account} are
# the caller's.
DRY_READS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "connect:ListInstances": ("connect", "list_instances", {"MaxResults": 1}),
    "connect:DescribeInstance": ("connect", "describe_instance", {"InstanceId": PROBE_INSTANCE_ID}),
    "connect:ListUsers": ("connect", "list_users", {"InstanceId": PROBE_INSTANCE_ID}),
    "connect:ListSecurityProfiles": (
        "connect",
        "list_security_profiles",
        {"InstanceId": PROBE_INSTANCE_ID},
    ),
    "connect:ListRoutingProfiles": (
        "connect",
        "list_routing_profiles",
        {"InstanceId": PROBE_INSTANCE_ID},
    ),
    "iam:GetRole": ("iam", "get_role", {"RoleName": PROBE_NAME}),
    "iam:ListAttachedRolePolicies": (
        "iam",
        "list_attached_role_policies",
        {"RoleName": PROBE_NAME},
    ),
    "iam:GetUser": ("iam", "get_user", {"UserName": PROBE_NAME}),
    "iam:ListAccessKeys": ("iam", "list_access_keys", {"UserName": PROBE_NAME}),
    "iam:GetPolicy": (
        "iam",
        "get_policy",
        {"PolicyArn": "arn:{partition}:iam::{account}:policy/" + PROBE_NAME},
    ),
    "iam:ListSAMLProviders": ("iam", "list_saml_providers", {}),
    "iam:GetSAMLProvider": (
        "iam",
        "get_saml_provider",
        {"SAMLProviderArn": "arn:{partition}:iam::{account}:saml-provider/" + PROBE_NAME},
    ),
}
# "service:Action": IAM's action syntax (service prefixes are lowercase letters, digits, hyphens).
ACTION_PATTERN = re.compile(r"^[a-z0-9-]+:[A-Za-z0-9*]+$")
# arn:<partition>:<service>::<account>:<resource>, the shape of every identity STS returns.
IDENTITY_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):(?P<service>iam|sts)::(?P<account>\d{12}):(?P<resource>.+)$"
)


@dataclass
class PreflightOutputs(StepOutputs):
    """Who the credentials are, where, and how far their permissions were checked."""

    step_key: ClassVar[str] = "preflight"
    account_id: str = ""
    caller_arn: str = ""
    # The user or role the permissions were checked for; "" when they could not be.
    principal_arn: str = ""
    region: str = ""
    partition: str = ""
    connect_available: bool = False
    # "simulated", "partial" (harmless reads only) or "none".
    permission_check: str = "none"
    checked_actions: int = 0
    unchecked_actions: int = 0
    # Always [] once applied: a missing action stops the step with a PermanentError.
    missing_actions: list[str] = field(default_factory=list)
    # What could not be checked (Messages; their stored form once read back).
    warnings: list[Any] = field(default_factory=list)


def flow_actions_for(step_keys: list[str] | tuple[str, ...]) -> list[str]:
    """The IAM actions the AWS steps among `step_keys` call, sorted, each once."""
    return sorted({action for key in step_keys for action in ACTIONS_BY_STEP.get(key, ())})


def parse_actions(value: Any) -> list[str]:
    """A list of IAM actions from a list or from text (one per line, or comma-separated)."""
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,]+", str(value or ""))
    actions = [str(item).strip() for item in items if str(item).strip()]
    wrong = [action for action in actions if not ACTION_PATTERN.match(action)]
    if wrong:
        raise PermanentError(
            Message(
                gettext_noop("These are not IAM actions: %(actions)s."),
                {"actions": ", ".join(wrong)},
            ),
            code="preflight_bad_action",
            hint=Message(
                gettext_noop("Write each as service:Action, e.g. connect:CreateInstance.")
            ),
        )
    return sorted(set(actions))


class PreflightForm(forms.Form):
    flow_actions = forms.CharField(
        label=_("IAM actions to check"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_(
            "One per line, e.g. connect:CreateInstance. Leave empty to check every "
            "action this setup calls."
        ),
    )

    def clean_flow_actions(self) -> list[str]:
        try:
            return parse_actions(self.cleaned_data.get("flow_actions", ""))
        except PermanentError as error:
            raise forms.ValidationError(f"{error.message} {error.hint}") from None


# botocore's endpoint data ships with it and can't change in a running process, but each new
# Session reads and parses it again (endpoints.json, ~0.3 s on a busy worker): read it once.
@functools.cache
def connect_regions(partition: str) -> tuple[str, ...]:
    """The regions botocore's endpoint data lists for Amazon Connect in `partition`."""
    return tuple(boto3.session.Session().get_available_regions("connect", partition_name=partition))


@functools.cache
def partition_of(region: str) -> str:
    try:
        return boto3.session.Session().get_partition_for_region(region)
    except UnknownRegionError:
        raise PermanentError(
            Message(
                gettext_noop("“%(region)s” is not an AWS region the wizard knows."),
                {"region": region},
            ),
            code="preflight_unknown_region",
            hint=Message(
                gettext_noop("Choose one of: %(regions)s."),
                {"regions": ", ".join(connect_regions("aws"))},
            ),
        ) from None


def principal_for(caller_arn: str) -> tuple[str, str]:
    """(kind, ARN to simulate) for an identity ARN: "user" or "role" with an IAM ARN, or another
    kind ("root", "federated-user", ...) with "" when no policy simulation applies. An
    assumed-role session maps to its role by name; the caller resolves the role's path."""
    match = IDENTITY_ARN.match(caller_arn)
    if match is None:
        return "unknown", ""
    partition, service, account, resource = match.group(
        "partition", "service", "account", "resource"
    )
    kind = resource.split("/", 1)[0]
    if service == "iam" and kind in ("user", "role"):
        return kind, caller_arn
    if service == "sts" and kind == "assumed-role":
        role_name = resource.split("/")[1]
        return "assumed-role", f"arn:{partition}:iam::{account}:role/{role_name}"
    return kind, ""


def _run_step_keys(ctx: StepContext) -> list[str]:
    from provisioning.flows import FLOWS

    flow_key = SetupRun.objects.filter(pk=ctx.run_id).values_list("flow_key", flat=True).first()
    flow = FLOWS.get(flow_key or "")
    return list(flow.step_keys) if flow else list(ACTIONS_BY_STEP)


class _Checks:
    """The checks of one plan or apply: the results, and warnings for what could not be checked."""

    def __init__(self) -> None:
        self.warnings: list[Message | str] = []

    def run(self, ctx: StepContext) -> PreflightOutputs:
        partition = partition_of(ctx.region)
        regions = connect_regions(partition)
        connect_available = ctx.region in regions
        if not connect_available:
            raise PermanentError(
                Message(
                    gettext_noop("Amazon Connect is not offered in %(region)s."),
                    {"region": ctx.region},
                ),
                code="preflight_connect_not_in_region",
                hint=Message(
                    gettext_noop("Start a new run in one of: %(regions)s."),
                    {"regions": ", ".join(regions)},
                ),
            )
        identity = ctx.aws("sts").get_caller_identity()
        caller_arn = identity["Arn"]
        actions = (
            parse_actions(ctx.inputs["flow_actions"])
            if ctx.inputs.get("flow_actions")
            else flow_actions_for(_run_step_keys(ctx))
        )
        actions = [action for action in actions if action not in NO_PERMISSION_ACTIONS]
        principal_arn = self._principal(ctx, caller_arn)
        check, checked, missing = "none", [], []
        if principal_arn:
            simulated = self._missing(ctx, principal_arn, actions)
            if simulated is not None:
                check, checked, missing = "simulated", actions, simulated
            else:
                check = "partial"
                checked, missing = self._dry_reads(ctx, actions, partition, identity["Account"])
                self._partial_warning(principal_arn, len(checked), len(actions))
        return PreflightOutputs(
            account_id=identity["Account"],
            caller_arn=caller_arn,
            principal_arn=principal_arn,
            region=ctx.region,
            partition=partition,
            connect_available=connect_available,
            permission_check=check,
            checked_actions=len(checked),
            unchecked_actions=len(actions) - len(checked),
            missing_actions=missing,
        )

    def _principal(self, ctx: StepContext, caller_arn: str) -> str:
        kind, principal_arn = principal_for(caller_arn)
        if kind == "root":
            self.warnings.append(
                Message(
                    _(
                        "These are the account's root user credentials: they may do anything, "
                        "so permissions were not checked. Use an IAM role or user instead."
                    )
                )
            )
            return ""
        if not principal_arn:
            self.warnings.append(
                Message(
                    _("Permissions can't be simulated for %(arn)s; they were not checked."),
                    {"arn": caller_arn},
                )
            )
            return ""
        if kind == "assumed-role":
            # The session ARN drops the role's path (e.g. /aws-reserved/sso.amazonaws.com/);
            # SimulatePrincipalPolicy needs the role's full ARN.
            role_name = principal_arn.rsplit("/", 1)[1]
            try:
                principal_arn = ctx.aws("iam").get_role(RoleName=role_name)["Role"]["Arn"]
            except PermanentError as error:
                if error.code not in ACCESS_DENIED_CODES:
                    raise
        return principal_arn

    def _missing(
        self, ctx: StepContext, principal_arn: str, actions: list[str]
    ) -> list[str] | None:
        """The actions the simulator doesn't allow, or None when the identity may not simulate."""
        if not actions:
            return []
        pages = ctx.aws("iam").get_paginator("simulate_principal_policy")
        decisions: dict[str, str] = {}
        try:
            for page in pages.paginate(PolicySourceArn=principal_arn, ActionNames=actions):
                for result in page["EvaluationResults"]:
                    decisions[result["EvalActionName"]] = result["EvalDecision"]
        except PermanentError as error:
            if error.code in ACCESS_DENIED_CODES:
                return None
            if error.code in NOT_FOUND_CODES:
                self.warnings.append(
                    Message(
                        _("IAM did not find %(arn)s to simulate its permissions."),
                        {"arn": principal_arn},
                    )
                )
                return []
            raise
        return sorted(action for action in actions if decisions.get(action) != "allowed")

    def _dry_reads(
        self, ctx: StepContext, actions: list[str], partition: str, account: str
    ) -> tuple[list[str], list[str]]:
        """(the actions checked, those proved missing). iam:SimulatePrincipalPolicy is known to be
        denied; the partial-check warning names it, and it never stops the step alone."""
        checked, missing = [], []
        for action in actions:
            if action == SIMULATE_ACTION:
                checked.append(action)
                continue
            if action not in DRY_READS:
                continue
            service, operation, template = DRY_READS[action]
            params = {
                key: value.format(partition=partition, account=account)
                if isinstance(value, str)
                else value
                for key, value in template.items()
            }
            checked.append(action)
            try:
                getattr(ctx.aws(service), operation)(**params)
            except PermanentError as error:
                if error.code in ACCESS_DENIED_CODES:
                    missing.append(action)
                elif error.code not in NOT_FOUND_CODES:
                    raise
        return checked, sorted(missing)

    def _partial_warning(self, principal_arn: str, checked: int, total: int) -> None:
        self.warnings.append(
            Message(
                gettext_noop(
                    "Partial check: %(arn)s may not call iam:SimulatePrincipalPolicy, so the "
                    "wizard "
                    "could not check all its permissions in advance. %(checked)d of the %(total)d "
                    "actions were proved by harmless reads; the other %(unchecked)d were not "
                    "checked, and a missing one will stop the step that needs it."
                ),
                {
                    "arn": principal_arn,
                    "checked": checked,
                    "total": total,
                    "unchecked": total - checked,
                },
            )
        )


def _missing_error(result: PreflightOutputs) -> PermanentError:
    missing = result.missing_actions
    params = {
        "arn": result.principal_arn,
        "count": len(missing),
        "actions": ", ".join(missing),
        "unchecked": result.unchecked_actions,
    }
    if result.permission_check == "partial":
        message = Message.counted(
            gettext_noop(
                "%(arn)s lacks %(count)d permission this setup needs: %(actions)s. This is a "
                "partial check: without iam:SimulatePrincipalPolicy the wizard could not check "
                "the other actions (%(unchecked)d), and they may be missing too."
            ),
            gettext_noop(
                "%(arn)s lacks %(count)d permissions this setup needs: %(actions)s. This is a "
                "partial check: without iam:SimulatePrincipalPolicy the wizard could not check "
                "the other actions (%(unchecked)d), and they may be missing too."
            ),
            len(missing),
            params,
        )
    else:
        message = Message.counted(
            gettext_noop("%(arn)s lacks %(count)d permission this setup needs: %(actions)s."),
            gettext_noop("%(arn)s lacks %(count)d permissions this setup needs: %(actions)s."),
            len(missing),
            params,
        )
    return PermanentError(
        message,
        code="preflight_missing_permissions",
        hint=Message(
            gettext_noop(
                "Add them to an IAM policy of that identity (checked on all resources: a policy "
                "limited to specific ARNs also shows here), then retry this step."
            )
        ),
    )


@register
class Preflight(Step):
    key = "preflight"
    title = _("AWS connection check")
    description = _(
        "Who the credentials are, whether Amazon Connect is offered in the region, and which "
        "permissions the setup needs that they lack."
    )
    form_class = PreflightForm

    def plan(self, ctx: StepContext) -> Plan:
        checks = _Checks()
        result = checks.run(ctx)
        if result.missing_actions:
            raise _missing_error(result)
        ctx.read_by_plan[CHECKED] = (result, list(checks.warnings))
        return Plan(
            changes=[
                Change(
                    "nothing",
                    "aws_identity",
                    result.caller_arn,
                    {"account_id": result.account_id},
                ),
                Change(
                    "nothing",
                    "connect_region",
                    ctx.region,
                    {"partition": result.partition, "connect_available": True},
                ),
                Change(
                    "nothing",
                    "iam_permissions",
                    result.principal_arn or result.caller_arn,
                    {
                        "permission_check": result.permission_check,
                        "checked_actions": result.checked_actions,
                        "unchecked_actions": result.unchecked_actions,
                        "missing_actions": [],
                    },
                ),
            ],
            warnings=checks.warnings,
        )

    def apply(self, ctx: StepContext) -> PreflightOutputs:
        # The plan's checks, made a moment ago, when apply follows it at once.
        checked: tuple[PreflightOutputs, list[Message | str]] | None = ctx.read_by_plan.pop(
            CHECKED, None
        )
        if checked is not None:
            result, warnings = checked
        else:
            checks = _Checks()
            result, warnings = checks.run(ctx), checks.warnings
            if result.missing_actions:
                raise _missing_error(result)
        result.warnings = list(warnings)
        return result

    def verify(self, ctx: StepContext) -> list[Finding]:
        # Its plan and apply are the checks; nothing it leaves behind can drift.
        return []

    def rollback(self, ctx: StepContext) -> None:
        # Reads only: it created nothing to remove.
        return None
