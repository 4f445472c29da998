"""What the IAM federation steps share: names derived from the run, run tags, the partition and
sign-in URLs of a region, the account ID, and policy documents compared and diffed as JSON."""

from __future__ import annotations

import difflib
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import botocore.session

from provisioning.errors import PermanentError

if TYPE_CHECKING:
    from provisioning.context import StepContext

# The tag every resource the wizard creates carries, naming the run that created it.
RUN_TAG_KEY = "connect-sso-wizard:run"
NAME_PREFIX = "ConnectSSO"
# IAM's name rules (IAM API reference: CreateSAMLProvider Name, CreateRole RoleName,
# CreatePolicy PolicyName). Java's \w, which these patterns use, is ASCII-only.
SAML_PROVIDER_NAME = re.compile(r"[\w._-]{1,128}", re.ASCII)
ROLE_NAME = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
# Where each partition's AWS sign-in receives SAML responses: the audiences a federation role's
# trust accepts (IAM User Guide, "Configure SAML assertions for the authentication response").
SIGNIN_HOSTS = {
    "aws": "signin.aws.amazon.com",
    "aws-cn": "signin.amazonaws.cn",
    "aws-us-gov": "signin.amazonaws-us-gov.com",
}
_PARTITIONS = botocore.session.Session()


def instance_label(ctx: StepContext) -> str:
    """What names the run's instance in resource names: its alias, else its ID, else the run."""
    alias = ctx.instance_alias or str(
        ctx.outputs.get("connect_instance", {}).get("instance_alias", "")
    )
    return alias or instance_id(ctx, required=False) or f"run-{str(ctx.run_id)[:8]}"


def instance_id(ctx: StepContext, *, required: bool = True) -> str:
    """The Connect instance ID of the run, or of the connect_instance step's outputs."""
    found = ctx.instance_id or str(ctx.outputs.get("connect_instance", {}).get("instance_id", ""))
    if not found and required:
        raise PermanentError(
            "This run has no Amazon Connect instance yet.",
            code="connect_instance_missing",
            hint="Run the “Amazon Connect instance” step first, or start the run with an instance.",
        )
    return found


def default_name(ctx: StepContext, max_length: int, suffix: str = "") -> str:
    """A name the same for every attempt of a run, so a re-run finds what an earlier one made."""
    return name_for_instance(instance_label(ctx), max_length, suffix)


def name_for_instance(label: str, max_length: int, suffix: str = "") -> str:
    """default_name for the instance `label` names (its alias, else its ID)."""
    label = re.sub(r"[^\w.-]", "-", label, flags=re.ASCII)
    return f"{NAME_PREFIX}-{label}"[: max_length - len(suffix)] + suffix


def checked_name(name: str, pattern: re.Pattern[str], what: str, allowed: str) -> str:
    if not pattern.fullmatch(name):
        raise PermanentError(
            f"“{name}” is not a valid {what} name.",
            code="iam_invalid_name",
            hint=f"Use {allowed}.",
        )
    return name


def run_tags(ctx: StepContext) -> list[dict[str, str]]:
    return [{"Key": RUN_TAG_KEY, "Value": str(ctx.run_id)}]


def tagged_run(tags: list[dict[str, str]] | None) -> str:
    """The run named by a resource's tags ("" when the wizard did not tag it)."""
    return next((tag["Value"] for tag in tags or [] if tag.get("Key") == RUN_TAG_KEY), "")


def created_here(ctx: StepContext, resource_type: str, identifier: str) -> bool:
    return ctx.created_here(resource_type, identifier)


def partition(region: str) -> str:
    return _PARTITIONS.get_partition_for_region(region)


def signin_audiences(region: str) -> list[str]:
    """The SAML:aud values a trust policy accepts: the global sign-in URL and, in the commercial
    partition, the region's own (an IdP may post to either)."""
    part = partition(region)
    host = SIGNIN_HOSTS.get(part, SIGNIN_HOSTS["aws"])
    audiences = [f"https://{host}/saml"]
    if part == "aws":
        audiences.append(f"https://{region}.{host}/saml")
    return audiences


def account_id(ctx: StepContext) -> str:
    """The AWS account of the run's connection: the preflight's answer, else STS's."""
    known = str(ctx.outputs.get("preflight", {}).get("account_id", ""))
    if known:
        return known
    return str(ctx.aws("sts").get_caller_identity()["Account"])


def as_document(value: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document from IAM: botocore decodes it to a dict; raw IAM sends URL-encoded JSON."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(unquote(value))
    except ValueError:
        return {}


def policy_json(document: dict[str, Any]) -> str:
    """One canonical text per document, so equal policies compare equal and diff cleanly."""
    return json.dumps(document, indent=2, sort_keys=True)


def same_policy(left: str | dict[str, Any], right: str | dict[str, Any]) -> bool:
    return policy_json(as_document(left)) == policy_json(as_document(right))


def policy_diff(old: dict[str, Any], new: dict[str, Any], *, old_label: str, new_label: str) -> str:
    return "".join(
        difflib.unified_diff(
            (policy_json(old) + "\n").splitlines(keepends=True),
            (policy_json(new) + "\n").splitlines(keepends=True),
            fromfile=old_label,
            tofile=new_label,
        )
    )
