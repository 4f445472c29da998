"""Starts the three clouds' stand-ins over HTTPS on loopback and writes var/sandbox.json."""

from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.aws.cloudtrail import CloudTrail
from sandbox.ca import TlsFiles, ensure_tls_files
from sandbox.knobs import Knobs
from sandbox.saml_idp import moved_in_time
from sandbox.wire_log import WireLog

LOOPBACK = "127.0.0.1"
# Fixed credentials of the sandbox's accounts: they open nothing but the stand-ins on loopback.
AWS_REGION = "ap-northeast-1"
AWS_ACCOUNT_ID = "123456789012"
AWS_ACCESS_KEY_ID = "AKIASANDBOXEXAMPLE01"
AWS_SECRET_ACCESS_KEY = "sandbox-secret-access-key-not-a-real-one"  # noqa: S105
ENTRA_TENANT_ID = "5a1d2b3c-0000-4000-8000-00000000aaaa"
ENTRA_CLIENT_ID = "6b2e3c4d-0000-4000-8000-00000000bbbb"
ENTRA_CLIENT_SECRET = "sandbox-entra-client-secret"  # noqa: S105
ENTRA_DOMAIN = "contoso-sandbox.onmicrosoft.com"
OKTA_TOKEN = "00sandbox-okta-api-token"  # noqa: S105
OKTA_DOMAIN = "example-sandbox.okta.test"
# The clouds whose whole exchanges the wire log records; AWS records its own answers (see
# sandbox.aws.app), since botocore builds its requests from the same model they are checked with.
RECORDED_CLOUDS = frozenset({"entra", "okta"})


class KeepAliveRequestHandler(WSGIRequestHandler):
    """HTTP/1.1, so SDK clients reuse their TLS connection instead of a handshake per call
    (werkzeug's default HTTP/1.0 closes every connection)."""

    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per SDK call would drown the worker's output in `make run`.
        return None


class WsgiApp(Protocol):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any: ...


@dataclass
class Sandbox:
    """One process serving AWS (moto + extensions), AWS sign-in, Entra (login + Graph) and Okta.

    Ports 0 pick free ports. Apps are built after the ports are bound, so each can read the
    others' URLs from `endpoints` (the IdPs post SAML responses to the AWS sign-in endpoint).
    """

    state_dir: Path
    knobs: Knobs = field(default_factory=Knobs)
    ports: dict[str, int] = field(
        default_factory=lambda: {"aws": 0, "signin": 0, "entra": 0, "okta": 0}
    )
    endpoints: dict[str, str] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)
    wire_log: WireLog = field(default_factory=WireLog)
    _servers: dict[str, BaseWSGIServer] = field(default_factory=dict, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    tls: TlsFiles | None = None
    # The account's CloudTrail event history: the sign-in endpoint records, LookupEvents reads.
    cloudtrail: CloudTrail = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.cloudtrail = CloudTrail(
            delivery_delay_s=lambda: self.knobs.cloudtrail_delivery_delay_s
        )

    def start(self) -> dict[str, str]:
        self.tls = ensure_tls_files(self.state_dir / "ca")
        for name, port in self.ports.items():
            # The app is a trampoline until every port is known (see class docstring).
            server = make_server(
                LOOPBACK,
                port,
                self._dispatch_to(name),
                threaded=True,
                request_handler=KeepAliveRequestHandler,
                ssl_context=(str(self.tls.server_cert), str(self.tls.server_key)),
            )
            self._servers[name] = server
        base = {name: f"https://{LOOPBACK}:{server.port}" for name, server in self._servers.items()}
        self.endpoints = {
            "aws_endpoint_url": base["aws"],
            "aws_region": AWS_REGION,
            "aws_account_id": AWS_ACCOUNT_ID,
            "aws_access_key_id": AWS_ACCESS_KEY_ID,
            "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
            "aws_signin_url": base["signin"] + "/saml",
            "ca_bundle": str(self.tls.ca_bundle),
            "entra_authority": base["entra"],
            "entra_tenant_id": ENTRA_TENANT_ID,
            "entra_client_id": ENTRA_CLIENT_ID,
            "entra_client_secret": ENTRA_CLIENT_SECRET,
            "graph_base_url": base["entra"] + "/v1.0",
            "okta_org_url": base["okta"].replace(LOOPBACK, "localhost"),
            "okta_token": OKTA_TOKEN,
        }
        self._build_apps()
        for name, server in self._servers.items():
            thread = threading.Thread(
                target=server.serve_forever, name=f"sandbox-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self.endpoints

    def _build_apps(self) -> None:
        from sandbox.aws.app import build_aws_app
        from sandbox.entra.app import build_entra_app
        from sandbox.okta.app import build_okta_app
        from sandbox.signin.app import build_signin_app

        self.apps["aws"] = build_aws_app(self)
        self.apps["signin"] = build_signin_app(self)
        self.apps["entra"] = build_entra_app(self)
        self.apps["okta"] = build_okta_app(self)

    def _dispatch_to(self, name: str) -> WsgiApp:
        recorded = name in RECORDED_CLOUDS

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if recorded:
                return self.wire_log.serve(name, self.apps[name], environ, start_response)
            return self.apps[name](environ, start_response)

        return app

    def move_certificate_clock(self, thumbprint: str, *, not_after: dt.datetime) -> str:
        """The certificate clock knob (issue 15): the IdP signing certificate with this (SHA-1)
        thumbprint is moved in time to end at `not_after`, as if the days between had passed,
        wherever the sandbox holds it: the Entra service principal or Okta app that signs with
        it, and every IAM SAML provider's metadata document that carries it (IAM keeps the copy
        it was given, so a real certificate ages there too). Its key stays, so what it signs
        still verifies. Returns the moved certificate's thumbprint. No cloud has such a call:
        tests and demonstrations use it to reach a certificate's last days, or past them,
        without waiting for them."""
        from sandbox.aws.app import replace_metadata_certificate

        holders = [self.apps["entra"].tenant, self.apps["okta"].org]
        old = next(
            (found for holder in holders if (found := holder.find_signing_certificate(thumbprint))),
            None,
        )
        if old is None:
            raise KeyError(f"no IdP app of the sandbox signs with the certificate {thumbprint}")
        new = moved_in_time(old, not_after)
        for holder in holders:
            holder.replace_signing_certificate(old, new)
        replace_metadata_certificate(old.cert_base64, new.cert_base64)
        return new.thumbprint

    def write_endpoints(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.endpoints, indent=2) + "\n")
        path.chmod(0o600)

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
