"""The watch against the sandbox: a federation the Entra flow built is watched; a link broken
through the SDK changes its state, which is an audit row, an e-mail (Django's locmem backend) and
a POST to a real webhook receiver on 127.0.0.1; an unchanged state sends nothing; the IdP signing
certificate's expiry notifies 60, 30 and 7 days before (once each) and breaks after."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from provisioning import federation_watch
from provisioning.federation_check.result import FederationCheck
from provisioning.federation_watch import watch_notifications_resend
from provisioning.models import (
    AuditEvent,
    AuditKind,
    Connection,
    FederationCheckRecord,
    NotificationSettings,
    RunStatus,
    SetupRun,
    WatchedFederation,
    WatchNotification,
    WatchState,
)
from provisioning.notifications import Notification, check_webhook_url, send_webhook
from provisioning.saml import parse_idp_metadata
from provisioning.services.federation_checks import federation_check_run
from provisioning.services.federation_watch import notifications_save, watches_check_due
from provisioning.steps.sign_in_test import chosen_people, sandbox_sign_in
from sandbox.knobs import Knobs
from sandbox.server import Sandbox
from tests.flows.entra_runs import (  # noqa: F401
    entra_sandbox,
    plan_file,
    setup_sso,
    step_context,
)
from tests.sandbox.aws_clients import aws_client

# The receiver's path stands for the secret part of a Slack or Teams webhook URL.
SECRET_PATH = "/services/T000/B000/not-to-be-logged"
# A proxy nobody answers at (port 9, discard, is closed here): a send through it fails.
UNREACHABLE_PROXY = "http://127.0.0.1:9"


class Receiver:
    """A webhook receiver: a real HTTP server on 127.0.0.1 keeping every JSON body posted."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.paths.append(self.path)
                self.send_response(status)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def built(entra_sandbox: Sandbox, sandbox_knobs: Knobs, tmp_path: Path) -> SetupRun:  # noqa: F811
    run, output = setup_sso(plan_file(tmp_path))
    assert run.status == RunStatus.SUCCEEDED, output
    return run


@pytest.fixture
def notified(receiver: Receiver, db: None) -> Receiver:
    notifications_save(
        user=None,
        email_recipients=["ops@example.com", "keiko@example.jp"],
        webhook_url=receiver.url,
        language="en",
    )
    return receiver


CheckNow = Callable[..., FederationCheckRecord]


@pytest.fixture
def check_now(django_capture_on_commit_callbacks: Any) -> CheckNow:
    """Beat's turn for every watched federation (however far its next check is), then the
    worker's check of each, judged at `now`; the notifications go out as after a commit."""

    def check(now: dt.datetime | None = None) -> FederationCheckRecord:
        WatchedFederation.objects.update(next_check_at=dt.datetime.now(dt.UTC))
        with django_capture_on_commit_callbacks(execute=False):
            (record,) = watches_check_due()
        with django_capture_on_commit_callbacks(execute=True):
            federation_check_run(check_id=str(record.pk), now=now)
        record.refresh_from_db()
        return record

    return check


def test_it_watches_what_a_run_built_and_notifies_once_when_a_link_breaks(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
    notified: Receiver,
    check_now: CheckNow,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = built.steps.get(key="entra_app").outputs
    (watched,) = WatchedFederation.objects.all()
    assert (watched.instance_id, watched.app_id, watched.region, watched.setup_id) == (
        built.instance_id,
        app["app_id"],
        built.region,
        built.pk,
    )
    assert watched.every_hours == 24

    first = check_now()
    watched.refresh_from_db()
    assert watched.state == WatchState.HEALTHY
    assert watched.latest_check_id == first.pk and first.watched_id == watched.pk
    assert notified.bodies == [] and mail.outbox == []

    role = built.steps.get(key="federation_role").outputs
    policy_arn = built.steps.get(key="federation_policy").outputs["policy_arn"]
    aws_client(entra_sandbox, "iam").detach_role_policy(
        RoleName=role["role_name"], PolicyArn=policy_arn
    )
    with caplog.at_level(logging.DEBUG):
        broken = check_now()

    watched.refresh_from_db()
    assert watched.state == WatchState.BROKEN
    assert watched.latest_check_id == broken.pk
    (body,) = notified.bodies
    assert body["state"] == "broken"
    assert body["check_id"] == str(broken.pk)
    assert body["federation"]["instance_id"] == built.instance_id
    assert "went from healthy to broken" in body["text"]
    assert "connect:GetFederationToken" in body["text"], body["text"]
    (email,) = mail.outbox
    (sent,) = WatchNotification.objects.all()
    assert body["event_id"] == str(sent.pk) and sent.sent_at is not None
    assert email.message()["Message-ID"] == f"<{sent.pk}@localhost>"
    assert email.to == ["ops@example.com", "keiko@example.jp"]
    assert "broken" in email.subject and email.body == body["text"]
    (event,) = AuditEvent.objects.filter(kind=AuditKind.FEDERATION)
    assert (event.old_value["state"], event.new_value["state"]) == ("healthy", "broken")
    assert event.translatable_message["msgid"].startswith("The federation %(federation)s went")
    assert SECRET_PATH not in caplog.text

    check_now()
    assert len(notified.bodies) == 1 and len(mail.outbox) == 1
    assert AuditEvent.objects.filter(kind=AuditKind.FEDERATION).count() == 1


class WorkerLost(Exception):
    """Stands for a worker killed between sending a notification and recording it sent."""


def test_a_notification_a_lost_worker_left_unrecorded_is_sent_again_with_the_same_event_id(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
    notified: Receiver,
    check_now: CheckNow,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    check_now()
    role = built.steps.get(key="federation_role").outputs
    policy_arn = built.steps.get(key="federation_policy").outputs["policy_arn"]
    aws_client(entra_sandbox, "iam").detach_role_policy(
        RoleName=role["role_name"], PolicyArn=policy_arn
    )

    def lost(*args: Any, **kwargs: Any) -> None:
        raise WorkerLost

    with monkeypatch.context() as crash:
        crash.setattr(federation_watch, "_record_sent", lost)
        with pytest.raises(WorkerLost):
            check_now()

    (pending,) = WatchNotification.objects.all()
    assert pending.sent_at is None and pending.attempts == 1
    assert len(notified.bodies) == 1 and len(mail.outbox) == 1
    # Beat's next turn leaves it to the worker that may still be sending it...
    assert watch_notifications_resend() == []
    # ...and sends it again once that worker is past all hope.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(
        seconds=settings.WIZARD_NOTIFICATION_RESEND_AFTER_S + 1
    )
    assert [n.pk for n in watch_notifications_resend(now=later)] == [pending.pk]

    first, second = notified.bodies
    assert first == second and first["event_id"] == str(pending.pk)
    assert first["state"] == "broken"
    ids = [email.message()["Message-ID"] for email in mail.outbox]
    assert ids == [f"<{pending.pk}@localhost>"] * 2, ids
    (recorded,) = WatchNotification.objects.all()
    assert recorded.sent_at is not None and recorded.attempts == 2
    assert (recorded.email_ok, recorded.webhook_ok) == (True, True)
    assert AuditEvent.objects.filter(kind=AuditKind.FEDERATION).count() == 1
    assert watch_notifications_resend(now=later + dt.timedelta(hours=1)) == []
    assert len(notified.bodies) == 2 and len(mail.outbox) == 2


def test_it_warns_60_30_and_7_days_before_the_certificate_expires_then_breaks(
    built: SetupRun, notified: Receiver, check_now: CheckNow
) -> None:
    expires = dt.datetime.fromisoformat(
        built.steps.get(key="entra_app").outputs["certificate_not_after"]
    )

    def days_before(days: float) -> dt.datetime:
        return expires - dt.timedelta(days=days)

    states = []
    for when in (
        days_before(90),
        days_before(59.5),
        days_before(45),
        days_before(29.5),
        days_before(29),
        days_before(10),
        days_before(6.5),
        days_before(1),
        expires + dt.timedelta(hours=1),
    ):
        check_now(when)
        states.append(WatchedFederation.objects.get().state)

    assert states == ["healthy"] + ["warning"] * 7 + ["broken"]
    texts = [body["text"].splitlines()[0] for body in notified.bodies]
    assert texts[0].endswith("went from healthy to warning.")
    assert "in 29 days" in texts[1] and "in 6 days" in texts[2], texts
    assert texts[3].endswith("went from warning to broken."), texts
    assert len(texts) == 4 == len(mail.outbox)
    assert [b["state"] for b in notified.bodies] == ["warning", "warning", "warning", "broken"]


def test_a_check_of_a_watched_federation_joins_its_watch(
    built: SetupRun, django_capture_on_commit_callbacks: Any
) -> None:
    (watched,) = WatchedFederation.objects.all()
    record = FederationCheckRecord.objects.create(
        aws_connection=Connection.objects.get(name="Sandbox AWS"),
        idp_connection=Connection.objects.get(name="Sandbox Entra ID"),
        region=built.region,
        instance=built.instance_alias,
    )
    with django_capture_on_commit_callbacks(execute=True):
        federation_check_run(check_id=str(record.pk))

    record.refresh_from_db()
    assert record.watched_id == watched.pk
    watched.refresh_from_db()
    assert (watched.state, watched.latest_check_id) == (WatchState.HEALTHY, record.pk)
    assert WatchedFederation.objects.count() == 1


def test_a_check_that_read_a_new_federation_is_watched_from_then_on(
    built: SetupRun, django_capture_on_commit_callbacks: Any
) -> None:
    WatchedFederation.objects.all().delete()
    record = FederationCheckRecord.objects.create(
        aws_connection=Connection.objects.get(name="Sandbox AWS"),
        idp_connection=Connection.objects.get(name="Sandbox Entra ID"),
        region=built.region,
        instance=built.instance_alias,
    )
    with django_capture_on_commit_callbacks(execute=True):
        federation_check_run(check_id=str(record.pk))

    (watched,) = WatchedFederation.objects.all()
    assert (watched.instance_id, watched.instance_alias) == (
        built.instance_id,
        built.instance_alias,
    )
    assert watched.setup_id is None and watched.state == WatchState.HEALTHY
    assert watched.next_check_at is not None
    # Its next check is a day away: the one just made stands for today's.
    assert watched.next_check_at - watched.last_checked_at > dt.timedelta(hours=23)


def test_a_webhook_that_fails_is_logged_by_its_host_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with Receiver(status=500) as failing, caplog.at_level(logging.DEBUG):
        sent = send_webhook(Notification(subject="s", text="t"), failing.url)

    assert sent is False
    assert failing.bodies == [{"text": "t", "subject": "s"}]
    assert "answered HTTP 500" in caplog.text
    assert SECRET_PATH not in caplog.text
    assert "127.0.0.1" in caplog.text


def test_the_webhook_url_is_stored_encrypted(db: None) -> None:
    notifications_save(
        user=None,
        email_recipients=[],
        webhook_url="https://hooks.example.com" + SECRET_PATH,
        language="ja",
    )
    stored = NotificationSettings.objects.get()
    assert SECRET_PATH not in stored.webhook_ciphertext
    assert stored.webhook_url == "https://hooks.example.com" + SECRET_PATH
    event = AuditEvent.objects.get(kind=AuditKind.NOTIFICATIONS)
    assert SECRET_PATH not in json.dumps([event.old_value, event.new_value, event.message])


def test_the_certificate_clock_brings_the_30_day_warning_then_the_break_and_aws_still_signs_in(
    built: SetupRun,
    entra_sandbox: Sandbox,  # noqa: F811
    notified: Receiver,
    check_now: CheckNow,
) -> None:
    """The sandbox's certificate clock (not the check's `now`) ages the app's certificate. Past
    its end, AWS sign-in still takes what it signs: IAM does not look at a metadata certificate's
    dates during SAML authentication (IAM User Guide, "Create a SAML identity provider in IAM"),
    so the watch's "broken" is the wizard's warning that Entra and the admins' tooling treat the
    certificate as finished, not a refusal the sandbox could invent."""
    thumbprint = built.steps.get(key="entra_app").outputs["certificate_thumbprint"]
    now = dt.datetime.now(dt.UTC)

    thumbprint = entra_sandbox.move_certificate_clock(
        thumbprint, not_after=now + dt.timedelta(days=20)
    )
    warned = check_now()
    watched = WatchedFederation.objects.get()
    findings = {f.code: f for f in FederationCheck.from_json(warned.result).findings}
    assert watched.state == WatchState.WARNING, findings
    assert set(findings) == {"certificate_expiring"}
    assert findings["certificate_expiring"].params["days"] == 19
    assert watched.expiry_notified_days == 30
    event = AuditEvent.objects.filter(kind=AuditKind.FEDERATION).latest("pk")
    assert (event.new_value["state"], event.new_value["certificate_days"]) == ("warning", 30)
    assert [body["state"] for body in notified.bodies] == ["warning"] and len(mail.outbox) == 1

    expired_at = now - dt.timedelta(hours=1)
    thumbprint = entra_sandbox.move_certificate_clock(thumbprint, not_after=expired_at)
    broken = check_now()
    watched.refresh_from_db()
    result = FederationCheck.from_json(broken.result)
    assert watched.state == WatchState.BROKEN
    assert [(f.code, f.severity) for f in result.findings] == [("certificate_expired", "broken")]
    assert result.findings[0].params["date"] == expired_at.date().isoformat()
    event = AuditEvent.objects.filter(kind=AuditKind.FEDERATION).latest("pk")
    assert (event.old_value["state"], event.new_value["state"]) == ("warning", "broken")
    assert [body["state"] for body in notified.bodies] == ["warning", "broken"]
    assert "expired" in notified.bodies[1]["text"]

    # What the IdP signs with and what IAM holds are the expired certificate...
    signing = entra_sandbox.apps["entra"].tenant.find_signing_certificate(thumbprint)
    assert signing is not None and signing.not_after < now
    provider_arn = built.steps.get(key="saml_provider").outputs["provider_arn"]
    held = aws_client(entra_sandbox, "iam").get_saml_provider(SAMLProviderArn=provider_arn)
    document = parse_idp_metadata(held["SAMLMetadataDocument"], check_dates=False)
    assert document.certificate.not_after == signing.not_after
    # ...and AWS sign-in accepts what it signed, as real IAM does.
    ctx = step_context(built, "sign_in_test")
    verdict = sandbox_sign_in(ctx, chosen_people(ctx)[0])
    assert verdict["ok"] is True, (verdict["detail"], verdict)


# A public address (example.com's) that a rebinding name answers to the check.
PUBLIC_ADDRESS = "93.184.216.34"
REAL_GETADDRINFO = socket.getaddrinfo
REAL_CREATE_CONNECTION = socket.create_connection


class RebindingResolver:
    """The DNS boundary (socket.getaddrinfo) answering like a rebinding attacker's name server:
    the first lookup of a name gets `first`, every later one `then`. An address typed as the
    host resolves as it is (the real resolver, no DNS)."""

    def __init__(self, first: str, then: str) -> None:
        self.first, self.then = first, then
        self.names: list[str] = []

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            self.names.append(host)
            address = self.first if len(self.names) == 1 else self.then
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)


class TlsReceiver(Receiver):
    """The receiver over HTTPS with the sandbox CA's certificate for localhost, noting the
    server name (SNI) each client asked for."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        assert sandbox.tls is not None
        self.ca_bundle = str(sandbox.tls.ca_bundle)
        self.server_names: list[str | None] = []
        self.hosts: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(sandbox.tls.server_cert), str(sandbox.tls.server_key))
        context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        handler = self.server.RequestHandlerClass
        receiver = self

        class HostNoting(handler):  # type: ignore[misc,valid-type]
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                receiver.hosts.append(self.headers.get("Host"))
                super().do_POST()

        self.server.RequestHandlerClass = HostNoting

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


def test_a_webhook_name_that_moves_to_loopback_after_it_was_saved_is_refused_at_send(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = False
    resolver = RebindingResolver(first=PUBLIC_ADDRESS, then="127.0.0.1")
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    url = "https://hooks.example.test/services/T0/B0/x"

    assert check_webhook_url(url) == url  # saved: the name was public then
    with caplog.at_level(logging.WARNING):
        sent = send_webhook(Notification(subject="s", text="t"), url)

    assert sent is False
    assert "refused now; nothing was sent" in caplog.text
    assert resolver.names == ["hooks.example.test", "hooks.example.test"]


def test_the_post_goes_to_the_address_the_check_passed_with_the_hosts_name_and_sni(
    sandbox: Sandbox, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers a public address to the send's check and loopback to any later lookup:
    the POST must not look it up again. The test's network routes the checked public address
    to a local HTTPS receiver (socket.create_connection), so what arrives shows the Host header
    and the TLS server name the real receiver would see, and the certificate is verified
    against the name (SSL_CERT_FILE: the sandbox CA). A proxy named in the environment (here one
    nothing listens at) is not used: it would look the name up itself."""
    settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = False
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(variable, UNREACHABLE_PROXY)
    with TlsReceiver(sandbox) as receiver:
        resolver = RebindingResolver(first=PUBLIC_ADDRESS, then="127.0.0.1")
        connected: list[tuple[str, int]] = []

        def route(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
            connected.append(address)
            return REAL_CREATE_CONNECTION(("127.0.0.1", receiver.port), *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", resolver)
        monkeypatch.setattr(socket, "create_connection", route)
        monkeypatch.setenv("SSL_CERT_FILE", receiver.ca_bundle)

        sent = send_webhook(
            Notification(subject="s", text="t"), f"https://localhost:{receiver.port}{SECRET_PATH}"
        )

    assert sent is True
    assert resolver.names == ["localhost"]  # once, by the check; never by the connection
    assert connected == [(PUBLIC_ADDRESS, receiver.port)]
    assert receiver.hosts == [f"localhost:{receiver.port}"]
    assert receiver.server_names == ["localhost"]
    assert receiver.paths == [SECRET_PATH]
    assert receiver.bodies == [{"text": "t", "subject": "s"}]
