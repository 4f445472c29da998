"""Starts the three clouds' stand-ins over HTTPS on loopback and writes var/sandbox.json."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

from cheroot.ssl.builtin import BuiltinSSLAdapter
from cheroot.wsgi import Server as WsgiServer

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


# How long an idle kept-alive connection stays open: 60 s, ELB's default idle timeout ("By default,
# ELB sets the idle timeout value for your load balancer to 60 seconds", docs.aws.amazon.com/
# elasticloadbalancing/latest/application/edit-load-balancer-attributes.html). It is longer than
# the SDKs' own pool expiry (httpx's keepalive_expiry 5 s, www.python-httpx.org/advanced/
# resource-limits; aiohttp's keepalive_timeout 15 s), so those clients drop an idle connection
# before the sandbox does; urllib3 (boto3, requests) checks a pooled connection is still open
# before it reuses it.
KEEP_ALIVE_IDLE_S = 60
# How long the TLS handshake of a new connection may take. cheroot does it on the thread that
# accepts connections, so a client that connects and says nothing holds up the others' accepts
# (never their requests) for this long at most; a loopback handshake takes milliseconds.
TLS_HANDSHAKE_TIMEOUT_S = 5
# Threads serving requests, per cloud. An idle kept-alive connection holds none (cheroot parks it
# in a selector); a thread is taken only while a request is read and answered, and a request that
# finds them all busy waits its turn (the queue is unbounded), no sandbox request waits on another.
# 16 is above the most requests one cloud gets at once here: the test process and its threads,
# two pytest-xdist workers' Celery workers, the web server's threads and the browser, or the
# benchmarks' four workers.
REQUEST_THREADS = 16
# Idle connections kept open per cloud; past that an answer says `Connection: close`. Each
# client's pool keeps a few (urllib3 and httpx keep up to 10 and 20 per host).
IDLE_CONNECTIONS_KEPT = 64
# Connections waiting to be accepted (listen(2)'s backlog): werkzeug's LISTEN_QUEUE, which the
# sandbox had before; cheroot's default of 5 would drop a burst of new connections while its
# accepting thread does a handshake.
LISTEN_BACKLOG = 128
# How long stop() waits for a request in progress before it closes its connection.
STOP_TIMEOUT_S = 2
# The most of a request body the server reads and throws away when the app answered without
# reading it all (see _read_rest_of_body): above the largest body a stand-in takes, the sign-in
# form's 200,000 bytes (sandbox/signin/app.py MAX_FORM_BYTES).
UNREAD_BODY_LIMIT_BYTES = 1024 * 1024

logger = logging.getLogger(__name__)


class _TlsAdapter(BuiltinSSLAdapter):
    """cheroot's TLS with a bound on the handshake (TLS_HANDSHAKE_TIMEOUT_S); cheroot sets
    the connection's own timeout back afterwards."""

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        sock.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
        return super().wrap(sock)


class _CloudServer(WsgiServer):
    """A persistent-connection HTTP/1.1 server for one cloud: real AWS, Graph,
    login.microsoftonline.com and Okta keep a client's TLS connection open between calls, so
    the SDKs (urllib3's and httpx's pools, aiohttp's connector) pay one handshake, not one per
    call. cheroot keeps connections alive; werkzeug's dev server always closes them."""

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # cheroot writes dropped connections and timeouts to stderr; only an app's error (logged
        # at ERROR, with its traceback) is worth a line in `make run`'s output.
        logger.log(level, msg, exc_info=traceback)


def _werkzeug_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The environ the apps were written against (werkzeug's dev server, moto's own server):
    RAW_URI as sent, and PATH_INFO with every escape decoded. cheroot keeps `%2F` encoded in
    PATH_INFO, and botocore percent-encodes the ARNs it puts in paths."""
    raw_uri = environ.get("REQUEST_URI", "")
    if raw_uri:
        environ["RAW_URI"] = raw_uri
        # A path may start with "//", which urlsplit would read as a host.
        parts = urlsplit(raw_uri)
        path = parts.path if parts.scheme else raw_uri.split("?", 1)[0]
        environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
    return environ


def _read_rest_of_body(body: Any) -> None:
    """Reads what the app left of the request body before the answer goes out. cheroot closes
    the connection after a 413 without reading the rest (server.py send_headers: "Close conn to
    avoid garbage"); a socket closed with unread data sends a reset, and a client still sending
    the body (the sign-in endpoint's oversized post) gets the reset instead of the 413. RFC 9112
    section 9.6 warns of exactly this "TCP reset problem"."""
    left = UNREAD_BODY_LIMIT_BYTES
    while left > 0 and (chunk := body.read(min(left, 65536))):
        left -= len(chunk)


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
    _servers: dict[str, _CloudServer] = field(default_factory=dict, repr=False)
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
            server = _CloudServer(
                (LOOPBACK, port),
                self._dispatch_to(name),
                numthreads=REQUEST_THREADS,
                timeout=KEEP_ALIVE_IDLE_S,
                shutdown_timeout=STOP_TIMEOUT_S,
                request_queue_size=LISTEN_BACKLOG,
            )
            server.keep_alive_conn_limit = IDLE_CONNECTIONS_KEPT
            server.ssl_adapter = _TlsAdapter(str(self.tls.server_cert), str(self.tls.server_key))
            _bind_in_daemon_thread(server)
            self._servers[name] = server
        base = {
            name: f"https://{LOOPBACK}:{server.bind_addr[1]}"
            for name, server in self._servers.items()
        }
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
            thread = threading.Thread(target=server.serve, name=f"sandbox-{name}", daemon=True)
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
            environ = _werkzeug_environ(environ)
            body = environ["wsgi.input"]
            if recorded:
                answer = self.wire_log.serve(name, self.apps[name], environ, start_response)
            else:
                answer = self.apps[name](environ, start_response)
            _read_rest_of_body(body)
            return answer

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
        """Closes every connection, idle or not (a request in progress gets STOP_TIMEOUT_S), and
        frees the ports. The four servers stop side by side: each waits for its selector loop."""
        stopping = [
            threading.Thread(target=server.stop, name=f"sandbox-stop-{name}")
            for name, server in self._servers.items()
        ]
        for thread in stopping:
            thread.start()
        for thread in [*stopping, *self._threads]:
            thread.join(timeout=STOP_TIMEOUT_S + 5)
        self._servers.clear()
        self._threads.clear()


def _bind_in_daemon_thread(server: _CloudServer) -> None:
    """Binds the server's port and starts its request threads. cheroot's threads take their
    daemon flag from the thread that starts them: started here, they are daemons like the serving
    threads, so a sandbox never stopped doesn't keep its process from exiting."""
    failure: list[BaseException] = []

    def prepare() -> None:
        try:
            server.prepare()
        except BaseException as error:  # handed to the caller's thread below
            failure.append(error)

    thread = threading.Thread(target=prepare, name="sandbox-bind", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
