"""The federation chain a run builds, as the links the chain diagram draws: IdP app → claims and
relay state → IAM SAML provider → federation role and policy → Connect instance → Connect users.

`chain_links` reads a run's steps; a health view that checks a federation outside a run builds
the same `Link`s from its findings and hands them to the same diagram (templates/chain.html)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from provisioning.models import RunStatus, SetupRun, StepRun, StepStatus


class LinkState:
    """How far one link of the chain is; each has a word and a symbol, never colour alone."""

    NOT_STARTED = "not_started"
    WORKING = "working"
    NEEDS_YOU = "needs_you"
    DONE = "done"
    BROKEN = "broken"
    ROLLED_BACK = "rolled_back"
    # Every step of the link was skipped (a repair skips the user steps): the run neither made
    # nor checked it, which "Done" would claim.
    SKIPPED = "skipped"


STATE_LABELS = {
    LinkState.NOT_STARTED: _("Not started"),
    LinkState.WORKING: _("Working"),
    LinkState.NEEDS_YOU: _("Needs you"),
    LinkState.DONE: _("Done"),
    LinkState.BROKEN: _("Broken"),
    LinkState.ROLLED_BACK: _("Rolled back"),
    LinkState.SKIPPED: _("Skipped"),
}
STATE_SYMBOLS = {
    LinkState.NOT_STARTED: "○",
    LinkState.WORKING: "◔",
    LinkState.NEEDS_YOU: "!",
    LinkState.DONE: "✓",
    LinkState.BROKEN: "✕",
    LinkState.ROLLED_BACK: "↺",
    LinkState.SKIPPED: "–",
}


@dataclass(frozen=True)
class Link:
    """One link of the chain: what it is, its key fact (a name, a count), its state, where to go."""

    kind: str
    label: str
    fact: str
    state: str
    href: str

    @property
    def state_label(self) -> str:
        return str(STATE_LABELS[self.state])

    @property
    def symbol(self) -> str:
        return STATE_SYMBOLS[self.state]


@dataclass(frozen=True)
class LinkKind:
    key: str
    label: Any
    # The steps of any flow that build this link, in flow order.
    steps: tuple[str, ...]


LINK_KINDS = (
    # A certificate rotation changes two links: the IdP app's signing certificate (a new one,
    # then the switch) and the SAML provider's metadata (both certificates, then the new one).
    LinkKind(
        "idp_app",
        _("IdP app"),
        ("entra_app", "okta_app", "signing_certificate_new", "signing_certificate_switch"),
    ),
    LinkKind(
        "claims",
        _("Claims and relay state"),
        (
            "entra_claims",
            "okta_app_provider",
            "okta_group_mapping",
            "okta_role_listing_user",
            "okta_role_download_confirmed",
        ),
    ),
    LinkKind(
        "saml_provider",
        _("IAM SAML provider"),
        ("saml_provider", "saml_provider_overlap", "saml_provider_retire_old"),
    ),
    LinkKind(
        "federation_role", _("Federation role and policy"), ("federation_policy", "federation_role")
    ),
    LinkKind("connect_instance", _("Connect instance"), ("connect_instance",)),
    LinkKind(
        "connect_users",
        _("Connect users"),
        ("entra_assignments", "okta_assignments", "connect_users", "group_users"),
    ),
)
# The sign-in test builds no link: it tries the whole chain, so while it runs no link is "working"
# (the step's own card says it is testing), and a failed test shows on its card, not on a link.
# A step still being worked on, by the engine or waiting for the cloud.
ACTIVE = {StepStatus.PLANNING, StepStatus.APPLYING}
FINISHED = {StepStatus.SUCCEEDED, StepStatus.SKIPPED}


def link_state(steps: Sequence[StepRun], run_status: str) -> str:
    """One link's state from its steps: broken beats needs-you beats working beats done; a link
    whose steps were all skipped is skipped."""
    statuses = {step.status for step in steps}
    if StepStatus.FAILED in statuses:
        return LinkState.BROKEN
    if StepStatus.PLANNED in statuses and run_status == RunStatus.WAITING:
        return LinkState.NEEDS_YOU
    if statuses & ACTIVE:
        return LinkState.WORKING
    if statuses == {StepStatus.SKIPPED}:
        return LinkState.SKIPPED
    if statuses <= FINISHED:
        return LinkState.DONE
    # Undone, not "not started": the admin must see the link existed and was taken apart.
    if StepStatus.ROLLED_BACK in statuses:
        return LinkState.ROLLED_BACK
    if statuses & FINISHED and run_status in (RunStatus.RUNNING, RunStatus.PENDING):
        return LinkState.WORKING
    return LinkState.NOT_STARTED


def _first(steps: Iterable[StepRun], *names: str) -> str:
    """The first of `names` that a step's outputs hold (the steps name the same fact apart)."""
    for step in steps:
        outputs = step.outputs or {}
        for name in names:
            value = outputs.get(name)
            if value not in (None, "", [], {}):
                return str(value)
    return ""


def _user_count(steps: Iterable[StepRun]) -> str:
    for step in steps:
        outputs = step.outputs or {}
        if outputs.get("unchanged") is True and step.key == "group_users":
            # A sync run that found nothing changed in its groups counts no user (not 1).
            return gettext("nothing changed since the last sync")
        users = outputs.get("users")
        total = len(users) if isinstance(users, list) else None
        if total is None and "created" in outputs:
            counts = [outputs.get(key) for key in ("created", "updated", "unchanged")]
            total = sum(len(c) if isinstance(c, list) else int(c or 0) for c in counts)
        if total is not None and step.key in ("connect_users", "group_users"):
            return ngettext("%(count)d user", "%(count)d users", total) % {"count": total}
    return ""


def _fact(kind: str, steps: Sequence[StepRun], run: SetupRun) -> str:
    if kind == "idp_app":
        return _first(steps, "display_name", "app_label")
    if kind == "claims":
        return _first(steps, "relay_state", "relay_state_url", "identity_provider_arn")
    if kind == "saml_provider":
        return _first(steps, "provider_name")
    if kind == "federation_role":
        return _first(steps, "role_name", "policy_name")
    if kind == "connect_instance":
        return _first(steps, "instance_alias") or run.instance_alias or run.instance_id
    return _user_count(steps)


def chain_links(run: SetupRun, steps: Sequence[StepRun] | None = None) -> list[Link]:
    """The links `run` builds, in chain order. A users run draws the chain of the setup it adds
    users to (its parent run) with its own users link; a link no step of either builds is left
    out."""
    steps = list(run.steps.all()) if steps is None else list(steps)
    upstream: list[StepRun] = []
    parent: SetupRun | None = None
    if run.parent_id:
        parent = SetupRun.objects.filter(pk=run.parent_id).first()
        if parent is not None:
            upstream = list(parent.steps.order_by("position"))
    links = []
    for kind in LINK_KINDS:
        own = [step for step in steps if step.key in kind.steps]
        source, mine = (run, own) if own else (parent, [s for s in upstream if s.key in kind.steps])
        if source is None or not mine:
            continue
        state = link_state(mine, source.status)
        # The link leads to the step it waits on, or else to the first of its steps.
        target = next(
            (step for step in mine if step.status not in FINISHED),
            mine[0],
        )
        href = reverse("run_detail", kwargs={"run_id": source.pk}) + f"#step-{target.key}"
        links.append(Link(kind.key, str(kind.label), _fact(kind.key, mine, source), state, href))
    return links
