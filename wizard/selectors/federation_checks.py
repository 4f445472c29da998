"""A federation check as the page draws it: the chain's links (the run page's diagram,
templates/chain.html) with each link's checked state, and the findings in the reader's language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from provisioning.federation_check.messages import LINK_LABELS, finding_text, unread_text
from provisioning.federation_check.repair import fixable, not_repaired_because
from provisioning.federation_check.result import FederationCheck, LinkState, Severity
from provisioning.models import FederationCheckRecord
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


@dataclass(frozen=True)
class CheckedLink:
    """A link as templates/chain.html draws it; `href` leads to the link's findings."""

    kind: str
    label: str
    fact: str
    checked: str

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
        return f"#findings-{self.kind}"


def check_links(result: FederationCheck) -> list[CheckedLink]:
    return [
        CheckedLink(link.key, str(LINK_LABELS[link.key]), link.fact, link.state)
        for link in result.links
    ]


def check_findings(result: FederationCheck) -> list[dict[str, Any]]:
    """Each finding in the reader's language; `repaired` says whether Repair fixes it."""
    repaired = set(fixable(result))
    return [
        {
            "repaired": finding.code in repaired,
            "link": finding.link,
            "link_label": LINK_LABELS[finding.link],
            "severity": finding.severity,
            "severity_label": SEVERITY_LABELS[Severity(finding.severity)],
            **finding_text(finding),
        }
        for finding in result.findings
    ]


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
        # Why not, when no flow can repair this federation (a custom Okta SAML app).
        "not_repaired_because": not_repaired_because(result),
    }
