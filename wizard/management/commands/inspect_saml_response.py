"""`manage.py inspect_saml_response FILE [--instance ID --region R --aws CONNECTION]
[--metadata FILE]`: checks a posted sign-in the way AWS does and names the first broken link.

FILE holds the base64 SAMLResponse, the decoded XML, the whole form body or a HAR file. With
`--aws` the command reads IAM and Connect through that connection (this process, not a web
request); else `--metadata` (the IdP's metadata) stands in for the IAM identity provider. It
prints one line per check and the verdict; exits 0 when no link is broken, 1 when one is, and 2
when FILE can't be read.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils.translation import gettext as _

from provisioning.audit import AuditScope
from provisioning.errors import ProvisioningError
from provisioning.models import Cloud, Connection
from provisioning.services.sign_in_inspection import (
    Inspection,
    sandbox_signin_urls,
    sign_in_inspect,
    sign_in_targets,
)
from provisioning.signin_checks.posted_sign_in import (
    MAX_HAR_BYTES,
    UnreadableSignIn,
    read_posted_sign_in,
)

EXIT_BROKEN = 1
EXIT_UNREADABLE = 2


class Command(BaseCommand):
    help = "Check a SAML response (base64, XML, form body or HAR file) the way AWS does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--instance", default="", help="Connect instance ID")
        parser.add_argument("--region", default="", help="the instance's region")
        parser.add_argument("--aws", default="", help="AWS connection name (or id) to read")
        parser.add_argument("--metadata", default="", help="IdP metadata XML file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            raw = _read(Path(options["file"]))
            posted = read_posted_sign_in(raw, extra_signin_urls=sandbox_signin_urls())
            metadata = _read(Path(options["metadata"])).decode() if options["metadata"] else ""
            targets = sign_in_targets(
                posted, instance_id=options["instance"], region=options["region"]
            )
        except (OSError, UnreadableSignIn, UnicodeDecodeError) as error:
            self.stderr.write(_("Can't read it: {error}").format(error=error))
            raise SystemExit(EXIT_UNREADABLE) from error
        facts = None
        if options["aws"]:
            from provisioning.aws.signin_facts import read_signin_facts

            try:
                facts = read_signin_facts(
                    _connection(options["aws"]),
                    audit=AuditScope(actor_label=f"inspect_saml_response@{socket.gethostname()}"),
                    provider_arn=targets.provider_arn,
                    role_arn=targets.role_arn,
                    instance_id=targets.instance_id,
                    region=targets.region,
                    role_session_name=targets.role_session_name,
                )
            except (ProvisioningError, Connection.DoesNotExist) as error:
                self.stderr.write(_("Can't read AWS: {error}").format(error=error))
                raise SystemExit(EXIT_UNREADABLE) from error
        inspection = sign_in_inspect(
            posted=posted,
            aws_facts=facts,
            pasted_metadata=metadata,
            instance_id=targets.instance_id,
            region=targets.region,
        )
        self._print(inspection)
        if inspection.first_failure is not None:
            raise SystemExit(EXIT_BROKEN)

    def _print(self, inspection: Inspection) -> None:
        for row in inspection.rows():
            self.stdout.write(
                f"{row['outcome_label']:<12} {row['name']}: {row['detail']}".rstrip(": ")
            )
        verdict = inspection.verdict()
        if verdict["broken"]:
            self.stdout.write(
                _("Broken link: {name}. The agent sees: “{error}”. Fix: {fix}").format(
                    name=verdict["name"], error=verdict["error"], fix=verdict["fix"]
                )
            )
        elif any(row["outcome"] == "not_checked" for row in inspection.rows()):
            self.stdout.write(
                _(
                    "No broken link among the checks made; the ones not checked need --aws "
                    "(IAM and Connect)."
                )
            )
        else:
            self.stdout.write(_("No broken link: AWS would accept this sign-in."))


def _read(path: Path) -> bytes:
    if path.stat().st_size > MAX_HAR_BYTES:
        raise UnreadableSignIn(
            _("%(path)s is larger than %(limit)s bytes: save only the sign-in's request.")
            % {"path": path, "limit": MAX_HAR_BYTES}
        )
    return path.read_bytes()


def _connection(name: str) -> Connection:
    connections = Connection.objects.filter(cloud=Cloud.AWS)
    if name.isdigit():
        return connections.get(pk=int(name))
    return connections.get(name=name)
