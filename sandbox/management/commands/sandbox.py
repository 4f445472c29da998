"""`python manage.py sandbox`: serve the local clouds over HTTPS on loopback until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from sandbox.knobs import Knobs
from sandbox.server import Sandbox


class Command(BaseCommand):
    help = "Serve the sandbox AWS, Entra ID and Okta on 127.0.0.1 and write var/sandbox.json."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--aws-port", type=int, default=8443)
        parser.add_argument("--signin-port", type=int, default=8444)
        parser.add_argument("--entra-port", type=int, default=8445)
        parser.add_argument("--okta-port", type=int, default=8446)
        parser.add_argument("--rate-scale", type=float, help="multiply every API rate limit")
        parser.add_argument("--no-rate-limits", action="store_true")
        parser.add_argument("--instance-delay", type=float, help="seconds an instance is creating")
        parser.add_argument("--graph-delay", type=float, help="seconds before Graph objects show")
        parser.add_argument("--agents", type=int, help="agents seeded in each IdP directory")
        parser.add_argument("--state-dir", default=str(settings.VAR_DIR / "sandbox"))
        parser.add_argument("--endpoints-file", default=str(settings.SANDBOX_FILE))

    def handle(self, *args: Any, **options: Any) -> None:
        overrides: dict[str, Any] = {}
        if options["rate_scale"] is not None:
            overrides["rate_scale"] = options["rate_scale"]
        if options["no_rate_limits"]:
            overrides["rate_limits_enabled"] = False
        if options["instance_delay"] is not None:
            overrides["instance_creation_delay_s"] = options["instance_delay"]
        if options["graph_delay"] is not None:
            overrides["graph_visibility_delay_s"] = options["graph_delay"]
        if options["agents"] is not None:
            overrides["directory_agents"] = options["agents"]
        sandbox = Sandbox(
            state_dir=Path(options["state_dir"]),
            knobs=Knobs.from_env(**overrides),
            ports={
                "aws": options["aws_port"],
                "signin": options["signin_port"],
                "entra": options["entra_port"],
                "okta": options["okta_port"],
            },
        )
        endpoints = sandbox.start()
        sandbox.write_endpoints(Path(options["endpoints_file"]))
        for key in (
            "aws_endpoint_url",
            "aws_signin_url",
            "entra_authority",
            "graph_base_url",
            "okta_org_url",
            "ca_bundle",
        ):
            self.stdout.write(f"{key:18} {endpoints[key]}")
        self.stdout.write(f"endpoints written to {options['endpoints_file']}; Ctrl-C stops")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            sandbox.stop()
