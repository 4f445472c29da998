"""A federation check as the page draws it: the chain's links (the run page's diagram,
templates/chain.html) with each link's checked state, and the findings in the reader's language."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from provisioning.federation_check.fixes import ROTATION_FIXES, USERS_RUN_FIXES, console_steps
from provisioning.federation_check.messages import LINK_LABELS, finding_text, unread_text
from provisioning.federation_check.repair import not_repaired_because, repairing_steps
from provisioning.federation_check.result import FederationCheck, LinkState, Severity
from provisioning.flows import ROTATION_FLOWS, USER_FLOWS
from provisioning.models import FederationCheckRecord
from provisioning.steps.base import STEPS
from wizard.selectors.chain import LinkState as ChainState

LINK_STATE_LABELS = {
    # "OK" alone is the run page's "succeeded"; a checked link holds rather than succeeded.
    LinkState.OK: pgettext_lazy("checked link", "OK"),
    LinkState.WARNING: _("Warning"),
    LinkState.BROKEN: _("Broken"),
    LinkState.UNREAD: _("Not read"),
}
# The diagram's styles (colour, symbol) of the run page's states that mean the same.
_CHAIN_STATES = {
    LinkState.OK: ChainState.DONE,
    LinkState.WARNING: ChainState.NEEDS_YOU,
    LinkState.BROKEN: ChainState.BROKEN,
    LinkState.UNREAD: ChainState.NOT_STARTED,
}
_SYMBOLS = {
    LinkState.OK: "✓",
    LinkState.WARNING: "!",
    LinkState.BROKEN: "✕",
    LinkState.UNREAD: "○",
}
SEVERITY_LABELS = {Severity.BROKEN: _("Broken"), Severity.WARNING: _("Warning")}


def finding_anchor(link: str, number: int) -> str:
    """The page id of a link's `number`th finding: the first's is the one the chain's box of the
    link leads to; the others' are numbered, for a link may have several (an expiring certificate
    and a disabled app)."""
    return f"findings-{link}" if number == 1 else f"findings-{link}-{number}"


@dataclass(frozen=True)
class CheckedLink:
    """A link as templates/chain.html draws it; `href` leads to the link's first finding, and is
    empty when it has none (a link that holds leads nowhere)."""

    kind: str
    label: str
    fact: str
    checked: str
    found: bool

    @property
    def state(self) -> str:
        return _CHAIN_STATES[LinkState(self.checked)]

    @property
    def state_label(self) -> str:
        return str(LINK_STATE_LABELS[LinkState(self.checked)])

    @property
    def symbol(self) -> str:
        return _SYMBOLS[LinkState(self.checked)]

    @property
    def href(self) -> str:
        return f"#{finding_anchor(self.kind, 1)}" if self.found else ""


def check_links(result: FederationCheck) -> list[CheckedLink]:
    found = {finding.link for finding in result.findings}
    return [
        CheckedLink(link.key, str(LINK_LABELS[link.key]), link.fact, link.state, link.key in found)
        for link in result.links
    ]


# The run other than Repair that fixes a finding (provisioning/federation_check/fixes.py): the page
# offers it next to the finding.
ROTATE = "rotate"
USERS_RUN = "users_run"


def _other_fix(code: str) -> str:
    if code in ROTATION_FIXES:
        return ROTATE
    if code in USERS_RUN_FIXES:
        return USERS_RUN
    return ""


def check_findings(result: FederationCheck) -> list[dict[str, Any]]:
    """Each finding in the reader's language; `anchor` is its page id, `repaired` says whether
    Repair fixes it and `repaired_in` in which step (its title), `fixed_by` which other run does,
    `console` what the admin does in the IdP's console."""
    numbers: Counter[str] = Counter()
    findings = []
    for finding, step in zip(result.findings, repairing_steps(result), strict=True):
        numbers[finding.link] += 1
        findings.append(
            {
                "anchor": finding_anchor(finding.link, numbers[finding.link]),
                "code": finding.code,
                "repaired": bool(step),
                "repaired_in": _step_title(step),
                "fixed_by": _other_fix(finding.code),
                # Where in the IdP's console, unless Repair does it (Okta's AWS app: activated
                # in the plan the admin confirms).
                "console": "" if step else console_steps(finding.code, result.idp),
                "link": finding.link,
                "link_label": LINK_LABELS[finding.link],
                "severity": finding.severity,
                "severity_label": SEVERITY_LABELS[Severity(finding.severity)],
                **finding_text(finding),
            }
        )
    return findings


def _step_title(step_key: str) -> str:
    step_class = STEPS.get(step_key)
    return str(step_class.title) if step_class else ""


def users_run_url(record: FederationCheckRecord, result: FederationCheck) -> str:
    """The New setup page with "Connect users from groups" for the checked instance, through the
    check's connections, chosen ("" when the check found no instance or the IdP has no such
    flow)."""
    flow_key = USER_FLOWS.get(result.idp)
    if flow_key is None or not result.instance_id:
        return ""
    query = {
        "idp": result.idp,
        "flow_key": flow_key,
        "region": record.region,
        "instance_id": result.instance_id,
        "aws_connection": record.aws_connection_id,
        "idp_connection": record.idp_connection_id,
    }
    return f"{reverse('run_new')}?{urlencode(query)}"


def check_page(record: FederationCheckRecord) -> dict[str, Any]:
    """What the page shows of a check: nothing yet, the error, or the chain and findings."""
    if record.result is None:
        return {"record": record}
    result = FederationCheck.from_json(record.result)
    findings = check_findings(result)
    return {
        "record": record,
        "result": result,
        "links": check_links(result),
        "findings": findings,
        "unreadable": [unread_text(unread) for unread in result.unreadable],
        # Repair is offered when it fixes at least one finding (provisioning/federation_check/
        # repair.py); the others stay the admin's to fix.
        "repairable": any(finding["repaired"] for finding in findings),
        # A rotation starts from the watched federation the check read (every finished check
        # that found one is watched: provisioning/federation_watch.py, watch_from_check).
        "rotatable": record.watched_id is not None and result.idp in ROTATION_FLOWS,
        "users_run_url": users_run_url(record, result),
        # Why not, when no flow can repair this federation (a custom Okta SAML app).
        "not_repaired_because": not_repaired_because(result),
    }
