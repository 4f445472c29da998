"""`manage.py check_federation --aws CONNECTION --region REGION --instance ID_OR_ALIAS --idp
CONNECTION [--app APP_ID] [--json]`: checks a federation into Amazon Connect, read-only, and prints
one line per link and per finding. Exit 0 healthy, 1 a link broken, 2 could not read."""

from __future__ import annotations

import json
import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from provisioning.audit import AuditScope
from provisioning.errors import ProvisioningError
from provisioning.federation_check.check import check_federation
from provisioning.federation_check.messages import LINK_LABELS, finding_text, unread_text
from provisioning.federation_check.result import EXIT_UNREAD, FederationCheck, LinkState, Severity
from provisioning.models import Cloud, Connection
from wizard.selectors.federation_checks import LINK_STATE_LABELS, SEVERITY_LABELS


def _connection(name: str, clouds: tuple[str, ...], what: str) -> Connection:
    found = Connection.objects.filter(name=name, cloud__in=clouds).first()
    if found is None:
        names = ", ".join(
            Connection.objects.filter(cloud__in=clouds).values_list("name", flat=True)
        )
        raise LookupError(
            _("No {what} connection is named “{name}”. Connections: {names}.").format(
                what=what, name=name, names=names or "-"
            )
        )
    return found


class Command(BaseCommand):
    help = "Check a federation into Amazon Connect (read-only): every link and what is wrong."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--aws", required=True, help="AWS connection name")
        parser.add_argument("--region", required=True, help="the instance's region")
        parser.add_argument("--instance", required=True, help="Connect instance ID or alias")
        parser.add_argument("--idp", required=True, help="Entra ID or Okta connection name")
        parser.add_argument("--app", default="", help="the IdP app (Entra appId, Okta app id)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            aws = _connection(options["aws"], (Cloud.AWS,), "AWS")
            idp = _connection(options["idp"], (Cloud.ENTRA, Cloud.OKTA), "Entra ID or Okta")
        except LookupError as error:
            self.stderr.write(str(error))
            raise SystemExit(EXIT_UNREAD) from error
        if not options["json"]:
            self.stdout.write(_("Reading only: this check changes nothing in any cloud."))
        try:
            result = check_federation(
                aws_connection=aws,
                region=options["region"],
                instance=options["instance"],
                idp_connection=idp,
                app_id=options["app"].strip(),
                audit=AuditScope(actor_label=f"check_federation@{socket.gethostname()}"),
            )
        except ProvisioningError as error:
            self.stderr.write(_("Could not check: {error}").format(error=error.message))
            raise SystemExit(EXIT_UNREAD) from error
        if options["json"]:
            self.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
        else:
            self._print(result)
        if result.exit_code:
            raise SystemExit(result.exit_code)

    def _print(self, result: FederationCheck) -> None:
        for link in result.links:
            state = str(LINK_STATE_LABELS[LinkState(link.state)])
            fact = f" — {link.fact}" if link.fact else ""
            self.stdout.write(f"{state:<10} {LINK_LABELS[link.key]}{fact}")
        for unread in map(unread_text, result.unreadable):
            self.stdout.write(
                _("Could not read {what}: missing permission {permission}.").format(
                    what=unread["what"], permission=unread["permission"]
                )
            )
        for finding in result.findings:
            text = finding_text(finding)
            self.stdout.write(
                f"{SEVERITY_LABELS[Severity(finding.severity)]!s:<10} "
                f"[{LINK_LABELS[finding.link]}] {text['what']} "
                + _("Why: {why} Fix: {fix}").format(why=text["why"], fix=text["fix"])
            )
        if result.healthy:
            self.stdout.write(_("Healthy: every link holds."))
