"""Files the Service Quotas requests Japanese phone numbers need, tracks them, and claims the
numbers once AWS Support has approved (as admins do it by hand; Amazon Connect Administrator
Guide, "Region requirements for ordering and porting phone numbers").

AWS Support reviews documents for days, so the step never waits for it: it files what is missing
and finishes, saying what it waits for; run it again once the request is approved to claim the
numbers. Quota requests can't be withdrawn, so rollback releases only the numbers it claimed.

Japanese numbers always need the documents, whatever the quotas allow: the plan shows the
checklist and the step goes no further until the admin confirms the documents are ready.
ClaimPhoneNumber only starts a claim: the step waits (re-enqueued) until DescribePhoneNumber says
CLAIMED, and fails with AWS's message if it says FAILED.

Inputs: did_numbers (Tokyo 03 numbers wanted), toll_free_numbers (0120 numbers wanted),
concurrent_calls (concurrent active calls wanted for the instance; 0 leaves the quota alone),
documents_confirmed (the admin has the documents ready; required when numbers are wanted).
Outputs: quota_requests ([{quota_code, quota_name, desired_value, request_id, status, case_id}]),
waiting_for_aws_support (bool), phone_numbers ([{phone_number_id, phone_number, type}]).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django import forms
from django.utils.translation import gettext_lazy as _

from provisioning.context import StepContext
from provisioning.errors import PermanentError, WaitForCloud
from provisioning.messages import Message, joined
from provisioning.steps.base import Change, Finding, Plan, Step, StepOutputs, register
from provisioning.steps.connect_users import run_instance

RUN_TAG = "connect-sso-wizard:run"
SERVICE_CODE = "connect"
# Service Quotas codes of Amazon Connect (admin guide, "Amazon Connect service quotas").
PHONE_NUMBERS_QUOTA = "L-8F812903"
CONCURRENT_CALLS_QUOTA = "L-12AB7C57"
# A new account's values, used when Service Quotas reports none ("If the applied quota value is
# not available for a quota, the quota is not retrieved": GetServiceQuota in botocore's model).
# Source: "Connect Customer service quotas",
# https://docs.aws.amazon.com/connect/latest/adminguide/amazon-connect-service-limits.html.
DOCUMENTED_DEFAULTS = {PHONE_NUMBERS_QUOTA: 5.0, CONCURRENT_CALLS_QUOTA: 10.0}
OPEN_STATUSES = ("PENDING", "CASE_OPENED")
# Number types and the E.164 prefixes of Tokyo geographic numbers (03) and free dial (0120).
NUMBER_PREFIXES = {"DID": "+813", "TOLL_FREE": "+81120"}
COUNTRY = "JP"
INPUT_FOR_TYPE = {"DID": "did_numbers", "TOLL_FREE": "toll_free_numbers"}
# What AWS Support asks for before it grants Japanese numbers (Amazon Connect
# Administrator Guide, "Region requirements for ordering and porting phone numbers"; what admins
# go through by hand), in both languages: the documents themselves are Japanese.
DOCUMENT_CHECKLIST = [
    {
        "en": "Government-issued ID of the company's representative.",
        "ja": "代表者の公的な身分証明書。",
    },
    {
        "en": "Proof of the company's address: a utility bill under 6 months old, a certificate "
        "of registered matters, or a tax or social-insurance certificate. 03 numbers need a "
        "Tokyo address.",
        "ja": "会社の住所を証明する書類：発行から6か月以内の公共料金の請求書、登記事項証明書、"
        "または納税証明書・社会保険の証明書。03番号には東京の住所が必要です。",
    },
    {
        "en": "Proof that the representative belongs to the company.",
        "ja": "代表者が会社に所属していることを証明する書類。",
    },
    {
        "en": "Each number carries 1 concurrent call by default: ask for more concurrent active "
        "calls per instance if you need them.",
        "ja": "各番号の同時通話数は既定で1です。必要に応じてインスタンスあたりの"
        "同時アクティブ通話数の引き上げも申請してください。",
    },
]


class PhonePrerequisitesForm(forms.Form):
    did_numbers = forms.IntegerField(
        label=_("Tokyo 03 numbers wanted"), min_value=0, max_value=100, initial=0
    )
    toll_free_numbers = forms.IntegerField(
        label=_("0120 numbers wanted"), min_value=0, max_value=100, initial=0
    )
    concurrent_calls = forms.IntegerField(
        label=_("Concurrent calls wanted"),
        min_value=0,
        max_value=10000,
        initial=0,
        help_text=_("0 leaves the concurrent calls quota as it is."),
    )
    documents_confirmed = forms.BooleanField(
        label=_("The documents AWS Support asks for Japanese numbers are ready"),
        required=False,
        help_text=_(
            "The plan lists them. AWS asks for them for every Japanese number, even when the "
            "quotas already allow it."
        ),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        wanted = (cleaned.get("did_numbers") or 0) + (cleaned.get("toll_free_numbers") or 0)
        if wanted and not cleaned.get("documents_confirmed"):
            self.add_error(
                "documents_confirmed",
                _("Japanese numbers need these documents: confirm they are ready."),
            )
        return cleaned


@dataclass
class QuotaState:
    code: str
    name: str
    value: float
    desired: float
    # The latest request for this instance that asks for at least `desired`, if any.
    request: dict[str, Any] | None = None

    @property
    def enough(self) -> bool:
        return self.value >= self.desired

    @property
    def needs_request(self) -> bool:
        if self.enough:
            return False
        return self.request is None or self.request["Status"] not in (*OPEN_STATUSES, "APPROVED")

    def as_output(self) -> dict[str, Any]:
        request = self.request or {}
        return {
            "quota_code": self.code,
            "quota_name": self.name,
            "current_value": self.value,
            "desired_value": self.desired,
            "request_id": request.get("Id", ""),
            "status": "APPROVED" if self.enough and request else request.get("Status", ""),
            "case_id": request.get("CaseId", ""),
        }


@dataclass
class PhoneSurvey:
    instance_arn: str
    # Numbers on the instance this run claimed, by type: index -> summary.
    ours: dict[str, dict[int, dict[str, Any]]]
    quotas: list[QuotaState] = field(default_factory=list)

    @property
    def phone_quota_ready(self) -> bool:
        """Numbers are wanted and the instance's phone-number quota has room for them."""
        return any(q.code == PHONE_NUMBERS_QUOTA and q.enough for q in self.quotas)


def _description(ctx: StepContext, number_type: str, index: int) -> str:
    return f"connect-sso-wizard run {ctx.run_id} {number_type} {index}"


def _wanted(ctx: StepContext, number_type: str) -> int:
    return int(ctx.inputs.get(INPUT_FOR_TYPE[number_type]) or 0)


def _quota_value(ctx: StepContext, code: str, arn: str) -> tuple[str, float]:
    """(name, value) Service Quotas reports for the instance: the applied value, else AWS's
    default, else the documented default."""
    quotas = ctx.aws("service-quotas")
    reads = (
        lambda: quotas.get_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=code, ContextId=arn),
        lambda: quotas.get_aws_default_service_quota(ServiceCode=SERVICE_CODE, QuotaCode=code),
    )
    for read in reads:
        try:
            quota = read()["Quota"]
            return str(quota.get("QuotaName", code)), float(quota["Value"])
        except PermanentError as error:
            if error.code != "NoSuchResourceException":
                raise
    return code, DOCUMENTED_DEFAULTS[code]


def _quota(ctx: StepContext, code: str, arn: str, desired: float) -> QuotaState:
    quotas = ctx.aws("service-quotas")
    name, value = _quota_value(ctx, code, arn)
    history = [
        request
        for page in quotas.get_paginator(
            "list_requested_service_quota_change_history_by_quota"
        ).paginate(ServiceCode=SERVICE_CODE, QuotaCode=code)
        for request in page["RequestedQuotas"]
    ]
    relevant = [
        request
        for request in history
        if (request.get("QuotaContext") or {}).get("ContextId") == arn
        and float(request.get("DesiredValue", 0)) >= desired
    ]
    relevant.sort(key=lambda request: str(request.get("Created", "")), reverse=True)
    # An open or approved request counts before a newer denied one.
    relevant.sort(key=lambda request: request["Status"] not in (*OPEN_STATUSES, "APPROVED"))
    return QuotaState(
        code=code,
        name=name,
        value=value,
        desired=desired,
        request=relevant[0] if relevant else None,
    )


def survey(ctx: StepContext) -> PhoneSurvey:
    instance_id = run_instance(ctx)
    connect = ctx.aws("connect")
    arn = connect.describe_instance(InstanceId=instance_id)["Instance"]["Arn"]
    held = [
        summary
        for page in connect.get_paginator("list_phone_numbers_v2").paginate(TargetArn=arn)
        for summary in page["ListPhoneNumbersSummaryList"]
    ]
    ours: dict[str, dict[int, dict[str, Any]]] = {
        number_type: {} for number_type in NUMBER_PREFIXES
    }
    others = 0
    for summary in held:
        prefix = f"connect-sso-wizard run {ctx.run_id} "
        description = str(summary.get("PhoneNumberDescription", ""))
        number_type, _, index = description.removeprefix(prefix).partition(" ")
        if description.startswith(prefix) and number_type in ours and index.isdigit():
            ours[number_type][int(index)] = summary
        else:
            others += 1
    found = PhoneSurvey(instance_arn=arn, ours=ours)
    numbers_wanted = sum(_wanted(ctx, number_type) for number_type in NUMBER_PREFIXES)
    if numbers_wanted:
        found.quotas.append(_quota(ctx, PHONE_NUMBERS_QUOTA, arn, others + numbers_wanted))
    calls_wanted = int(ctx.inputs.get("concurrent_calls") or 0)
    if calls_wanted:
        found.quotas.append(_quota(ctx, CONCURRENT_CALLS_QUOTA, arn, calls_wanted))
    return found


def _has_inputs(ctx: StepContext) -> bool:
    return any(name in ctx.inputs for name in (*INPUT_FOR_TYPE.values(), "concurrent_calls"))


def _numbers_wanted(ctx: StepContext) -> int:
    return sum(_wanted(ctx, number_type) for number_type in NUMBER_PREFIXES)


def _documents_missing(ctx: StepContext) -> bool:
    """Numbers are wanted and the admin has not confirmed the documents (AWS asks for
    them for every Japanese number, whatever the quotas allow)."""
    return bool(_numbers_wanted(ctx)) and not ctx.inputs.get("documents_confirmed")


def _checklist() -> Change:
    return Change(
        "nothing",
        "document_checklist",
        "Documents for AWS Support / AWS サポートに提出する書類",
        details={"items": DOCUMENT_CHECKLIST},
    )


def _request(ctx: StepContext, found: PhoneSurvey, quota: QuotaState) -> None:
    quotas = ctx.aws("service-quotas")
    try:
        quota.request = quotas.request_service_quota_increase(
            ServiceCode=SERVICE_CODE,
            QuotaCode=quota.code,
            DesiredValue=quota.desired,
            ContextId=found.instance_arn,
        )["RequestedQuota"]
    except PermanentError as error:
        # Another request for this quota and instance is open (filed since the survey, or for a
        # smaller value): track that one rather than fail.
        if error.code != "ResourceAlreadyExistsException":
            raise
        open_requests = [
            request
            for status in OPEN_STATUSES
            for request in quotas.list_requested_service_quota_change_history_by_quota(
                ServiceCode=SERVICE_CODE, QuotaCode=quota.code, Status=status
            )["RequestedQuotas"]
            if (request.get("QuotaContext") or {}).get("ContextId") == found.instance_arn
        ]
        if not open_requests:
            raise
        quota.request = open_requests[0]


def _claim_in_progress(ctx: StepContext, summary: dict[str, Any]) -> list[str]:
    """[the number] while AWS is still claiming it, [] once CLAIMED; FAILED fails the step with
    AWS's message. ClaimPhoneNumber is asynchronous: "Call the DescribePhoneNumber API to verify
    the status of a previous ClaimPhoneNumber operation" (botocore's Connect model)."""
    connect = ctx.aws("connect")
    described = connect.describe_phone_number(PhoneNumberId=summary["PhoneNumberId"])
    status = described["ClaimedPhoneNumberSummary"].get("PhoneNumberStatus") or {}
    if status.get("Status") == "IN_PROGRESS":
        return [summary["PhoneNumber"]]
    if status.get("Status") == "FAILED":
        raise PermanentError(
            Message(
                _("Amazon Connect could not claim {number}: {reason}"),
                {"number": summary["PhoneNumber"], "reason": status.get("Message") or "-"},
            ),
            code="phone_number_claim_failed",
            hint=Message(
                _(
                    "Fix what AWS names (often the instance's phone-number quota), then roll "
                    "back this step to release the failed number and run it again. AWS keeps a "
                    "failed number for you for one day."
                )
            ),
        )
    return []


@dataclass
class PhonePrerequisitesOutputs(StepOutputs):
    """The quota requests the step made or found, and the Japanese numbers the run claimed."""

    step_key: ClassVar[str] = "phone_prerequisites"

    # {quota_code, quota_name, current_value, desired_value, request_id, status, ...} per quota.
    quota_requests: list[dict[str, Any]] = field(default_factory=list)
    waiting_for_aws_support: bool = False
    # {phone_number_id, phone_number, type} per number claimed.
    phone_numbers: list[dict[str, Any]] = field(default_factory=list)


@register
class PhonePrerequisites(Step):
    key = "phone_prerequisites"
    # Run again once AWS Support approved the requests: the plan then claims the numbers.
    rerunnable = True
    title = _("Japanese phone numbers")
    description = _(
        "Asks AWS for the phone-number and concurrent-call quotas Japanese numbers need, and "
        "claims the numbers once AWS Support approves. Prepare the documents listed in the plan."
    )
    form_class = PhonePrerequisitesForm

    def plan(self, ctx: StepContext) -> Plan:
        if not _has_inputs(ctx):
            return Plan(needs_input=True)
        if _documents_missing(ctx):
            return Plan(changes=[_checklist()], needs_input=True)
        found = survey(ctx)
        changes = [_checklist()]
        for quota in found.quotas:
            changes.append(
                Change(
                    "create" if quota.needs_request else "nothing",
                    "service_quota_request",
                    quota.name,
                    details=quota.as_output(),
                )
            )
        for number_type in NUMBER_PREFIXES:
            missing = _wanted(ctx, number_type) - len(found.ours[number_type])
            if missing > 0:
                changes.append(
                    Change(
                        "create",
                        "phone_number",
                        f"{number_type} {NUMBER_PREFIXES[number_type]}…",
                        details={
                            "count": missing,
                            "when": "now"
                            if found.phone_quota_ready
                            else "after AWS Support approves the quota",
                        },
                    )
                )
        return Plan(
            changes=changes,
            warnings=[
                Message(
                    _(
                        "A quota request can't be withdrawn: rolling back releases only the "
                        "numbers this run claimed."
                    )
                )
            ],
        )

    def apply(self, ctx: StepContext) -> PhonePrerequisitesOutputs:
        if _documents_missing(ctx):
            raise PermanentError(
                Message(_("Japanese numbers need the documents AWS Support asks for.")),
                code="phone_documents_unconfirmed",
                hint=Message(
                    _(
                        "Prepare the documents in the plan's checklist, then confirm they are "
                        "ready in the step's form (documents_confirmed in a plan file)."
                    )
                ),
            )
        found = survey(ctx)
        for quota in found.quotas:
            if quota.needs_request:
                _request(ctx, found, quota)
        numbers: list[dict[str, Any]] = []
        claiming: list[str] = []
        phone_quota_ready = found.phone_quota_ready
        for number_type in NUMBER_PREFIXES:
            for index in range(_wanted(ctx, number_type)):
                summary = found.ours[number_type].get(index)
                if summary is None and phone_quota_ready:
                    summary = self._claim(ctx, found, number_type, index)
                if summary is not None:
                    ctx.record_created(
                        "phone_number",
                        summary["PhoneNumberId"],
                        phone_number=summary["PhoneNumber"],
                    )
                    claiming += _claim_in_progress(ctx, summary)
                    numbers.append(
                        {
                            "phone_number_id": summary["PhoneNumberId"],
                            "phone_number": summary["PhoneNumber"],
                            "type": number_type,
                        }
                    )
        if claiming:
            raise WaitForCloud(
                Message(
                    _("Amazon Connect is still claiming {numbers}."),
                    {"numbers": ", ".join(claiming)},
                )
            )
        return PhonePrerequisitesOutputs(
            quota_requests=[quota.as_output() for quota in found.quotas],
            waiting_for_aws_support=any(not quota.enough for quota in found.quotas),
            phone_numbers=numbers,
        )

    def _claim(
        self, ctx: StepContext, found: PhoneSurvey, number_type: str, index: int
    ) -> dict[str, Any]:
        connect = ctx.aws("connect")
        available = connect.search_available_phone_numbers(
            TargetArn=found.instance_arn,
            PhoneNumberCountryCode=COUNTRY,
            PhoneNumberType=number_type,
            PhoneNumberPrefix=NUMBER_PREFIXES[number_type],
            MaxResults=1,
        )["AvailableNumbersList"]
        if not available:
            raise PermanentError(
                Message(
                    _("AWS has no %(type)s number starting %(prefix)s available right now."),
                    {"type": number_type, "prefix": NUMBER_PREFIXES[number_type]},
                ),
                code="no_numbers_available",
                hint=Message(
                    _("Retry the step later, or ask AWS Support for numbers of that type.")
                ),
            )
        number = available[0]["PhoneNumber"]
        claimed = connect.claim_phone_number(
            TargetArn=found.instance_arn,
            PhoneNumber=number,
            PhoneNumberDescription=_description(ctx, number_type, index),
            Tags={RUN_TAG: str(ctx.run_id)},
            # Same run, type and index: the same token, so a retried call claims once.
            ClientToken=str(uuid.uuid5(ctx.run_id, f"{number_type}-{index}")),
        )
        return {"PhoneNumberId": claimed["PhoneNumberId"], "PhoneNumber": number}

    def verify(self, ctx: StepContext) -> list[Finding]:
        if not _has_inputs(ctx) or _documents_missing(ctx):
            return []
        found = survey(ctx)
        findings = [
            Finding(
                check=Message(
                    _("Quota “%(quota)s” is at least %(desired)s"),
                    {"quota": quota.name, "desired": f"{quota.desired:g}"},
                ),
                ok=quota.enough,
                # Waiting for AWS Support is the expected state, not a failure of this step.
                blocking=quota.needs_request,
                detail=(
                    Message(_("now %(value)s"), {"value": f"{quota.value:g}"})
                    if quota.enough
                    else Message(
                        _(
                            "now %(value)s; request %(request)s is %(status)s: AWS Support "
                            "reviews the documents. Run this step again once it is approved."
                        ),
                        {
                            "value": f"{quota.value:g}",
                            "request": quota.as_output()["request_id"],
                            "status": quota.as_output()["status"],
                        },
                    )
                ),
                fix=""
                if quota.enough or not quota.needs_request
                else Message(_("Retry the step.")),
            )
            for quota in found.quotas
        ]
        wanted = {number_type: _wanted(ctx, number_type) for number_type in NUMBER_PREFIXES}
        if found.phone_quota_ready:
            short = {t: n - len(found.ours[t]) for t, n in wanted.items() if len(found.ours[t]) < n}
            findings.append(
                Finding(
                    check=Message(_("The phone numbers are claimed")),
                    ok=not short,
                    detail=joined(
                        [
                            Message(_("%(count)s %(type)s missing"), {"count": n, "type": t})
                            for t, n in short.items()
                        ]
                    )
                    if short
                    else "",
                    fix=Message(_("Retry the step.")) if short else "",
                )
            )
        return findings

    def rollback(self, ctx: StepContext) -> None:
        connect = ctx.aws("connect")
        for resource in ctx.created_of("phone_number"):
            try:
                connect.release_phone_number(PhoneNumberId=resource.identifier)
            except PermanentError as error:
                if error.code != "ResourceNotFoundException":
                    raise
