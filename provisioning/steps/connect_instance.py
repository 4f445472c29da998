"""The connect_instance step: creates the run's Amazon Connect instance for SAML sign-in, or adopts
an existing SAML instance by alias or ID, and waits until it is ACTIVE.

Inputs: `instance_alias` (create, or adopt the instance with that alias) or `instance_id` (adopt;
an ARN works too), falling back to the run's own; `inbound_calls_enabled` and
`outbound_calls_enabled` (for a new instance, default true).
Outputs: `instance_id`, `instance_arn`, `instance_alias`, `access_url`,
`identity_management_type`, `adopted` (true when the instance existed before this run).
The run's instance (SetupRun.instance_id/instance_alias, ctx.instance_id of later steps) is set as
soon as the instance is known. Rollback deletes only an instance this run created.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import botocore.session
from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from provisioning.aws.client import NOT_FOUND_CODES, QUOTA_CODES
from provisioning.context import StepContext
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.flows import FLOWS
from provisioning.messages import Message
from provisioning.models import SetupRun
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register

RESOURCE_TYPE = "connect_instance"
# The tag every instance this wizard creates carries (docs/step-contract.md): a run that crashed
# after CreateInstance recognises its own instance by it.
RUN_TAG = "connect-sso-wizard:run"
SAML = "SAML"
# What plan() found, for the apply() that follows it at once (StepContext.read_by_plan), and the
# instance as apply() last described it, for the verify() right after (StepContext.read_by_apply).
FOUND_BY_PLAN = "found_instance"
READ_AFTER_WRITES = "described_instance"
# ListInstances' MaxResults upper bound in botocore's Connect model.
LIST_PAGE_SIZE = 10
# Connect's default quota, "Amazon Connect instances per account" (Amazon Connect service quotas,
# https://docs.aws.amazon.com/connect/latest/adminguide/amazon-connect-service-limits.html).
DEFAULT_INSTANCES_PER_ACCOUNT = 2
# "100 creations+deletions per 30 days" (Terraform AWS provider, aws_connect_instance: "a limit
# of 100 combined instance creation and deletions every 30 days"; CreateInstance API reference:
# "You must wait 30 days before you can restart creating and deleting instances").
CREATIONS_AND_DELETIONS_PER_30_DAYS = 100
# Words of the CreateInstance error that is about the 30-day limit rather than the instance count.
THIRTY_DAY_LIMIT_WORDS = ("30 days", "excessive number")
# A Connect instance ID is a UUID (DescribeInstance, "Instance ARN" in the console ends with it).
INSTANCE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


@functools.cache
def alias_rule() -> tuple[int, int, re.Pattern[str]]:
    """(min length, max length, pattern) of CreateInstance's InstanceAlias in botocore's model."""
    model = botocore.session.get_session().get_service_model("connect")
    alias = model.operation_model("CreateInstance").input_shape.members["InstanceAlias"]
    return alias.metadata["min"], alias.metadata["max"], re.compile(alias.metadata["pattern"])


def _suggest_alias(alias: str) -> str:
    """The closest alias AWS accepts: other characters become hyphens, no "d-" start, cut to
    length, letters or digits at both ends."""
    _minimum, maximum, pattern = alias_rule()
    suggestion = re.sub(r"[^A-Za-z0-9-]+", "-", alias).strip("-")
    suggestion = re.sub(r"^[dD]-+", "", suggestion)
    suggestion = suggestion[:maximum].strip("-")
    return suggestion if suggestion and pattern.match(suggestion) else "my-contact-center"


def alias_problem(alias: str) -> str:
    """Why AWS would refuse `alias` and what to type instead ("" when it is fine)."""
    minimum, maximum, pattern = alias_rule()
    if len(alias) < minimum:
        return str(_("Type an alias for the instance, e.g. “my-contact-center”."))
    if len(alias) > maximum:
        message = _("“%(alias)s” has %(length)s characters; an alias has at most %(maximum)s.")
        hint = _("Try “%(suggestion)s”.")
    elif alias[:2].lower() == "d-":
        message = _("An alias can't start with “d-” (AWS keeps that for directory IDs).")
        hint = _("Try “%(suggestion)s”.")
    elif not pattern.match(alias):
        message = _(
            "“%(alias)s” has characters an alias can't have: only letters, digits and hyphens, "
            "starting and ending with a letter or digit."
        )
        hint = _("Try “%(suggestion)s”.")
    else:
        return ""
    values = {
        "alias": alias,
        "length": len(alias),
        "maximum": maximum,
        "suggestion": _suggest_alias(alias),
    }
    return f"{message % values} {hint % values}"


def instance_id_problem(instance_id: str) -> str:
    if INSTANCE_ID.match(instance_id):
        return ""
    return str(
        _(
            "“%(value)s” is not an instance ID. It looks like "
            "12345678-90ab-cdef-1234-567890abcdef: the end of the instance ARN in the Amazon "
            "Connect console."
        )
    ) % {"value": instance_id}


class ConnectInstanceForm(forms.Form):
    instance_alias = forms.CharField(
        label=_("Instance alias"),
        required=False,
        help_text=_(
            "Create an instance with this alias, or use the one that has it. It becomes "
            "https://<alias>.my.connect.aws."
        ),
    )
    instance_id = forms.CharField(
        label=_("Or the ID of an existing instance"),
        required=False,
        help_text=_("Its identity management must be SAML 2.0."),
    )
    inbound_calls_enabled = forms.BooleanField(
        label=_("Incoming calls"), required=False, initial=True
    )
    outbound_calls_enabled = forms.BooleanField(
        label=_("Outgoing calls"), required=False, initial=True
    )

    def clean_instance_alias(self) -> str:
        alias = self.cleaned_data.get("instance_alias", "").strip()
        problem = alias_problem(alias) if alias else ""
        if problem:
            raise forms.ValidationError(problem)
        return alias

    def clean_instance_id(self) -> str:
        instance_id = _bare_id(self.cleaned_data.get("instance_id", "").strip())
        problem = instance_id_problem(instance_id) if instance_id else ""
        if problem:
            raise forms.ValidationError(problem)
        return instance_id

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("instance_alias") and not cleaned.get("instance_id"):
            raise forms.ValidationError(_("Type an alias, or the ID of an existing instance."))
        return cleaned


def _bare_id(reference: str) -> str:
    """An instance ID from an ID or an instance ARN (arn:...:instance/<id>)."""
    return reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference


@dataclass
class Wanted:
    """What the admin asked for, validated before any call."""

    alias: str
    instance_id: str
    inbound: bool
    outbound: bool

    @property
    def name(self) -> str:
        return self.alias or self.instance_id


def wanted(ctx: StepContext) -> Wanted:
    """What the admin asked for; the engine checked it with ConnectInstanceForm before plan
    (ConnectInstance.form_answers)."""
    answers = ConnectInstance().form_answers(ctx)
    return Wanted(
        alias=str(answers.get("instance_alias") or "").strip(),
        instance_id=_bare_id(str(answers.get("instance_id") or "").strip()),
        inbound=bool(ctx.inputs.get("inbound_calls_enabled", True)),
        outbound=bool(ctx.inputs.get("outbound_calls_enabled", True)),
    )


def client_token(ctx: StepContext, alias: str) -> str:
    """CreateInstance's idempotency token: the same for every attempt of this run at this alias,
    so a retry after a crash gets the instance the first attempt created."""
    return f"connect-sso-wizard-{ctx.run_id}-{alias.lower()}"


def _created_id(ctx: StepContext) -> str:
    return next((entry.identifier for entry in ctx.created_of(RESOURCE_TYPE)), "")


@dataclass(frozen=True)
class InstanceReading:
    """One instance as DescribeInstance returns it, the fields the step reads."""

    id: str
    arn: str = ""
    alias: str = ""
    status: str = ""
    # DescribeInstance's StatusReason.Message, when creation failed.
    status_reason: str = ""
    identity_management_type: str = ""
    access_url: str = ""
    created_time: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, instance: dict[str, Any]) -> InstanceReading:
        created = instance.get("CreatedTime")
        return cls(
            id=str(instance["Id"]),
            arn=str(instance.get("Arn") or ""),
            alias=str(instance.get("InstanceAlias") or ""),
            status=str(instance.get("InstanceStatus") or ""),
            status_reason=str((instance.get("StatusReason") or {}).get("Message") or ""),
            identity_management_type=str(instance.get("IdentityManagementType") or ""),
            access_url=str(instance.get("InstanceAccessUrl") or ""),
            created_time=created if isinstance(created, datetime) else None,
            tags=dict(instance.get("Tags") or {}),
        )

    @property
    def name(self) -> str:
        return self.alias or self.id


def _find_by_alias(connect: Any, alias: str) -> dict[str, Any] | None:
    # Aliases are host names (https://<alias>.my.connect.aws): they compare without case.
    for page in connect.get_paginator("list_instances").paginate(
        PaginationConfig={"PageSize": LIST_PAGE_SIZE}
    ):
        for summary in page["InstanceSummaryList"]:
            if (summary.get("InstanceAlias") or "").lower() == alias.lower():
                return summary
    return None


def _describe(connect: Any, instance_id: str) -> InstanceReading:
    return InstanceReading.from_wire(connect.describe_instance(InstanceId=instance_id)["Instance"])


def _require_saml(instance: InstanceReading) -> None:
    identity = instance.identity_management_type
    if identity != SAML:
        name = instance.name
        raise PermanentError(
            Message(
                gettext_noop(
                    "The instance “%(name)s” manages its users with %(identity)s, not SAML 2.0, "
                    "and an instance's identity management can't be changed after it is created."
                ),
                {"name": name, "identity": identity},
            ),
            code="connect_instance_not_saml",
            hint=Message(
                gettext_noop(
                    "Create a new instance for SAML sign-in: type a new alias in this step. "
                    "Nothing was changed."
                )
            ),
        )


def _belongs_to_run(ctx: StepContext, instance: InstanceReading) -> bool:
    return instance.tags.get(RUN_TAG) == str(ctx.run_id)


@dataclass
class Found:
    """The instance the step works on, and whether this run created it."""

    instance: InstanceReading | None
    created_by_run: bool


def _find(ctx: StepContext, connect: Any, want: Wanted) -> Found:
    """Read-only: the instance this run created, or the one the admin named; SAML is checked on
    one this run did not create."""
    created_id = _created_id(ctx)
    if created_id:
        return Found(_describe(connect, created_id), created_by_run=True)
    if want.instance_id:
        try:
            instance = _describe(connect, want.instance_id)
        except PermanentError as error:
            if error.code not in NOT_FOUND_CODES:
                raise
            raise PermanentError(
                Message(
                    gettext_noop("No Amazon Connect instance has the ID %(id)s in %(region)s."),
                    {"id": want.instance_id, "region": ctx.region},
                ),
                code="connect_instance_not_found",
                hint=Message(
                    gettext_noop(
                        "Check the ID, and that the run's region is the instance's region."
                    )
                ),
            ) from error
    else:
        summary = _find_by_alias(connect, want.alias)
        if summary is None:
            return Found(None, created_by_run=False)
        instance = _describe(connect, summary["Id"])
    if _belongs_to_run(ctx, instance):
        return Found(instance, created_by_run=True)
    _require_saml(instance)
    return Found(instance, created_by_run=False)


def _existing_instance_warnings(ctx: StepContext, instance: InstanceReading) -> list[Message | str]:
    """What the admin should know before using an instance that exists: that it does, that it
    signs in with SAML, and which earlier runs of this wizard federate it, with which IdP."""
    name = instance.name
    warnings: list[Message | str] = [
        Message(
            _(
                "An Amazon Connect instance named “{name}” already exists in {region} (created "
                "{created}, SAML sign-in). The wizard will use it and create no instance. If you "
                "meant a new instance, go back and type another alias."
            ),
            {"name": name, "region": ctx.region, "created": _created_on(instance)},
        )
    ]
    others = (
        SetupRun.objects.filter(instance_id=instance.id, region=ctx.region)
        .exclude(pk=ctx.run_id)
        .order_by("-created_at")
        .values_list("pk", "flow_key", "status")[:5]
    )
    for run_id, flow_key, status in others:
        warnings.append(
            Message(
                _(
                    "Run {run} ({idp}, {status}) already set up sign-in for this instance. A "
                    "second identity provider app adds a second way to sign in to it."
                ),
                {"run": str(run_id)[:8], "idp": _idp_of(flow_key), "status": status},
            )
        )
    return warnings


def _created_on(instance: InstanceReading) -> str:
    created = instance.created_time
    return created.date().isoformat() if created is not None else "?"


def _idp_of(flow_key: str) -> str:
    flow = FLOWS.get(flow_key)
    return {"entra": "Microsoft Entra ID", "okta": "Okta"}.get(flow.idp, flow.idp) if flow else "?"


def explain_create_error(error: PermanentError, alias: str) -> PermanentError:
    """CreateInstance's refusals in the admin's terms: a taken alias, one of the two quotas."""
    if error.code in QUOTA_CODES:
        if any(words in error.message.lower() for words in THIRTY_DAY_LIMIT_WORDS):
            return PermanentError(
                Message(
                    gettext_noop(
                        "AWS refused to create the instance: this account has reached Amazon "
                        "Connect's limit of %(limit)d instance creations and deletions per 30 days."
                    ),
                    {"limit": CREATIONS_AND_DELETIONS_PER_30_DAYS},
                ),
                code=error.code,
                hint=Message(
                    gettext_noop(
                        "This limit can't be raised: wait until 30 days after the earliest of "
                        "those creations or deletions, or adopt an existing SAML instance by its "
                        "alias or ID."
                    )
                ),
            )
        return PermanentError(
            Message(
                gettext_noop(
                    "AWS refused to create the instance: the quota “Amazon Connect instances per "
                    "account” (default %(default)d) is used up in this region."
                ),
                {"default": DEFAULT_INSTANCES_PER_ACCOUNT},
            ),
            code=error.code,
            hint=Message(
                gettext_noop(
                    "Request an increase in the AWS console › Service Quotas › Amazon Connect › "
                    "“Amazon Connect instances per account”, or delete an instance you no longer "
                    "need (deletions count toward the 30-day limit too), or adopt an existing "
                    "SAML instance."
                )
            ),
        )
    if "already used" in error.message or "already exists" in error.message:
        return PermanentError(
            Message(
                gettext_noop(
                    "The alias “%(alias)s” is already taken by another Amazon Connect instance, "
                    "in another AWS account or region: it becomes the address "
                    "https://%(alias)s.my.connect.aws, so it must be unique across AWS."
                ),
                {"alias": alias},
            ),
            code="connect_instance_alias_taken",
            hint=Message(
                gettext_noop(
                    "Type another alias, e.g. “%(suggestion)s” or one with your company's name."
                ),
                {"suggestion": _suggest_alias(alias + "-sso")},
            ),
        )
    return error


def _elapsed(instance: InstanceReading) -> str:
    created = instance.created_time
    if created is None:
        return ""
    seconds = max(0, int((datetime.now(UTC) - created).total_seconds()))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


@dataclass
class ConnectInstanceOutputs(StepOutputs):
    """The run's Connect instance, created or adopted."""

    step_key: ClassVar[str] = "connect_instance"

    instance_id: str = ""
    instance_arn: str = ""
    instance_alias: str = ""
    access_url: str = ""
    identity_management_type: str = ""
    adopted: bool = False


@register
class ConnectInstance(Step):
    key = "connect_instance"
    title = _("Amazon Connect instance")
    description = _(
        "Creates the Amazon Connect instance with SAML 2.0 sign-in, or uses an existing one."
    )
    form_class = ConnectInstanceForm

    def form_answers(self, ctx: StepContext) -> dict[str, Any]:
        answers = super().form_answers(ctx)
        if (
            not str(answers.get("instance_id") or "").strip()
            and not str(answers.get("instance_alias") or "").strip()
        ):
            # The run's own instance: chosen on the first page, or set by an earlier attempt.
            run_instance = {"instance_id": ctx.instance_id, "instance_alias": ctx.instance_alias}
            answers.update({key: value for key, value in run_instance.items() if value})
        return answers

    def plan(self, ctx: StepContext) -> Plan:
        want = wanted(ctx)
        found = _find(ctx, ctx.aws("connect"), want)
        ctx.read_by_plan[FOUND_BY_PLAN] = found
        if found.instance is None:
            return Plan(
                changes=[
                    Change(
                        "create",
                        RESOURCE_TYPE,
                        want.alias,
                        {
                            "identity_management_type": SAML,
                            "inbound_calls_enabled": want.inbound,
                            "outbound_calls_enabled": want.outbound,
                            "access_url": f"https://{want.alias}.my.connect.aws",
                        },
                    )
                ]
            )
        instance = found.instance
        adopting_by_alias = not found.created_by_run and not want.instance_id
        return Plan(
            changes=[
                Change(
                    "nothing" if found.created_by_run else "adopt",
                    RESOURCE_TYPE,
                    instance.name,
                    {
                        "instance_id": instance.id,
                        "status": instance.status,
                        "identity_management_type": instance.identity_management_type,
                    },
                )
            ],
            # An alias typed for a new instance that names an existing one is never adopted
            # silently: the admin may have meant a new instance, and this one may already be
            # federated with another IdP (a second app would add a second sign-in path to it).
            warnings=_existing_instance_warnings(ctx, instance) if adopting_by_alias else [],
            needs_confirmation=adopting_by_alias,
        )

    def apply(self, ctx: StepContext) -> ConnectInstanceOutputs:
        want = wanted(ctx)
        connect = ctx.aws("connect")
        # The plan's search, made a moment ago, when apply follows it at once.
        found: Found = ctx.read_by_plan.pop(FOUND_BY_PLAN, None) or _find(ctx, connect, want)
        if found.instance is None:
            instance_id = self._create(ctx, connect, want)
            alias = want.alias
        else:
            instance_id = found.instance.id
            alias = found.instance.alias
            if found.created_by_run:
                # Created by an attempt whose worker died before recording it.
                ctx.record_created(RESOURCE_TYPE, instance_id, alias=alias)
        ctx.set_run_instance(instance_id=instance_id, instance_alias=alias)
        instance = _describe(connect, instance_id)
        status = instance.status
        name = alias or instance_id
        if status == "CREATION_IN_PROGRESS":
            raise WaitForCloud(
                Message(
                    gettext_noop(
                        "Amazon Connect is creating the instance “%(name)s” (%(elapsed)s so far; "
                        "it usually takes a few minutes)."
                    ),
                    {"name": name, "elapsed": _elapsed(instance)},
                )
            )
        if status == "CREATION_FAILED":
            raise PermanentError(
                Message(
                    gettext_noop(
                        "Amazon Connect could not create the instance “%(name)s”: %(reason)s"
                    ),
                    {
                        "name": name,
                        "reason": instance.status_reason
                        or Message(gettext_noop("no reason given")),
                    },
                ),
                code="connect_instance_creation_failed",
                hint=Message(
                    gettext_noop(
                        "Roll back this run to delete the failed instance, fix what AWS names, "
                        "then start again."
                    )
                ),
            )
        _require_saml(instance)
        # Described after apply's last write, in the same task as the verify the runner calls
        # next: nothing of this run changes the instance in between.
        ctx.read_by_apply[READ_AFTER_WRITES] = instance
        return ConnectInstanceOutputs(
            instance_id=instance_id,
            instance_arn=instance.arn,
            instance_alias=alias,
            access_url=instance.access_url,
            identity_management_type=instance.identity_management_type,
            adopted=not ctx.created_here(RESOURCE_TYPE, instance_id),
        )

    def _create(self, ctx: StepContext, connect: Any, want: Wanted) -> str:
        """CreateInstance with this run's token, recorded at once for rollback."""
        try:
            created = connect.create_instance(
                ClientToken=client_token(ctx, want.alias),
                IdentityManagementType=SAML,
                InstanceAlias=want.alias,
                InboundCallsEnabled=want.inbound,
                OutboundCallsEnabled=want.outbound,
                Tags={RUN_TAG: str(ctx.run_id)},
            )
        except PermanentError as error:
            raise explain_create_error(error, want.alias) from error
        ctx.record_created(RESOURCE_TYPE, created["Id"], alias=want.alias)
        return created["Id"]

    def verify(self, ctx: StepContext) -> list[Finding]:
        instance: InstanceReading = ctx.read_by_apply.get(READ_AFTER_WRITES) or _describe(
            ctx.aws("connect"), ctx.instance_id
        )
        active = instance.status == "ACTIVE"
        saml = instance.identity_management_type == SAML
        return [
            Finding(
                check=Message(_("The instance is active")),
                ok=active,
                detail="" if active else instance.status,
                fix="" if active else str(_("Check the instance in the Amazon Connect console.")),
            ),
            Finding(
                check=Message(_("The instance uses SAML 2.0 sign-in")),
                ok=saml,
                detail="" if saml else instance.identity_management_type,
                fix="" if saml else str(_("Start a new run that creates a SAML instance.")),
            ),
        ]

    def rollback(self, ctx: StepContext) -> None:
        created = ctx.created_of(RESOURCE_TYPE)
        if not created:
            return
        connect = ctx.aws("connect")
        for entry in created:
            try:
                connect.delete_instance(InstanceId=entry.identifier)
            except PermanentError as error:
                if error.code not in NOT_FOUND_CODES:
                    raise
        if ctx.instance_id in {entry.identifier for entry in created}:
            ctx.set_run_instance(instance_id="", instance_alias=ctx.instance_alias)
