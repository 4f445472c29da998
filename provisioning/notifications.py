"""Sends a notification to the admins: an e-mail through Django's mail settings and a POST to one
generic webhook, whose JSON body has the `text` field Slack's and Microsoft Teams' incoming
webhooks show, beside structured fields for anything else. A webhook URL's path is its credential:
it is checked before it is stored and again before each POST, and never logged beyond its host."""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils.translation import gettext_lazy as _

from provisioning.messages import Message

logger = logging.getLogger(__name__)

# Hosts a plain-http webhook may go to, and only while testing or in DEBUG: the tests' receiver.
LOCAL_WEBHOOK_HOSTS = frozenset({"127.0.0.1", "localhost"})
HTTPS_PORT = 443
# What the masked URL keeps of the path (Slack's "/services/T…/B…/secret": none of it).
MASK = "/…"


class WebhookUrlRefused(ValueError):
    """A webhook URL the wizard won't POST to, with what to fix (a Message)."""

    def __init__(self, reason: Message) -> None:
        super().__init__(reason.msgid)
        self.reason = reason


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL that passed the check, and the address to connect to: the one the check
    resolved and judged (None for the tests' local receiver, which is not looked up)."""

    url: str
    address: str | None


def check_webhook_url(url: str) -> str:
    """The URL, stripped, if the wizard may POST to it; WebhookUrlRefused saying why otherwise
    (webhook_target's checks)."""
    return webhook_target(url).url


def webhook_target(url: str) -> WebhookTarget:
    """The URL, stripped, and the checked address to connect to, if the wizard may POST to it;
    WebhookUrlRefused saying why otherwise.

    Only https; no user name or password before an "@" (`https://hooks.example.com@10.0.0.1/`
    reads as one host and goes to another); plain http only to 127.0.0.1 or localhost, and only
    when WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP (testing, DEBUG); otherwise no host that resolves to a
    private, loopback or link-local address."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as error:
        raise WebhookUrlRefused(
            Message(_("The webhook URL is not a valid URL (%(error)s)."), {"error": str(error)})
        ) from error
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookUrlRefused(
            Message(_("The webhook URL names no host. Paste the whole URL, from https:// on."))
        )
    if "@" in parts.netloc:
        raise WebhookUrlRefused(
            Message(_("The webhook URL contains a user name or password (the part before “@”)."))
        )
    scheme = parts.scheme.lower()
    if settings.WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP:
        if scheme == "https" or (scheme == "http" and host in LOCAL_WEBHOOK_HOSTS):
            return WebhookTarget(url, None)
    elif scheme == "https":
        return WebhookTarget(url, _checked_address(host, parts.port or HTTPS_PORT))
    raise WebhookUrlRefused(
        Message(
            _(
                "The webhook URL must start with https:// (Slack and Teams webhooks do); "
                "%(url)s does not."
            ),
            {"url": masked_webhook_url(url)},
        )
    )


def _checked_address(host: str, port: int) -> str:
    """The address to connect to, once every address the host resolves to is outside the
    wizard's network; refuses a host with any address inside it (private, loopback, link-local
    such as the cloud metadata service 169.254.169.254, or any other non-public one): the URL is
    typed by an admin and the wizard POSTs to it from inside (OWASP, "Server-Side Request
    Forgery Prevention Cheat Sheet"). Checked again before each POST, which then connects to the
    address returned here and resolves nothing more: a name that answers a public address to
    the check and a private one to the connection (DNS rebinding) reaches only the public one."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise WebhookUrlRefused(
            Message(
                _("The webhook's host %(host)s could not be resolved: check its spelling."),
                {"host": host},
            )
        ) from error
    for *_rest, address in found:
        ip = ipaddress.ip_address(str(address[0]).split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            if _is_address(host):
                said = _(
                    "The webhook's address %(address)s is a private, loopback or link-local "
                    "address the wizard does not post to. Use the webhook's public https URL "
                    "(Slack's and Teams' are)."
                )
            else:
                said = _(
                    "The webhook's host %(host)s is at %(address)s, a private, loopback or "
                    "link-local address the wizard does not post to. Use the webhook's public "
                    "https URL (Slack's and Teams' are)."
                )
            raise WebhookUrlRefused(Message(said, {"host": host, "address": str(ip)}))
    return str(found[0][4][0])


def _is_address(host: str) -> bool:
    """Whether the URL's host is written as an IP address rather than a name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def masked_webhook_url(url: str) -> str:
    """What a page may show of a webhook URL: its scheme and host, never its path."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "…"
    return f"{parts.scheme}://{host}{port}{MASK}"


@dataclass
class Notification:
    """One notification: a subject line, the text (Slack's and Teams' `text`), and the
    structured fields a webhook receiver may read instead. `event_id`, when set, names the event
    it tells of: sent again (at least once: a lost alert is worse than a second one), it carries
    the same id, in the webhook body's `event_id` and in the e-mail's Message-ID."""

    subject: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""

    def webhook_body(self) -> dict[str, Any]:
        event = {"event_id": self.event_id} if self.event_id else {}
        return {"text": self.text, "subject": self.subject, **event, **self.fields}

    def message_id(self) -> str:
        """The e-mail's Message-ID (RFC 5322 3.6.4, "<id-left@id-right>"): the event id at the
        sender's domain. Not Django's make_msgid, which differs on each call and host."""
        if not self.event_id:
            return ""
        domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
        return f"<{self.event_id}@{domain}>"


def send_email(notification: Notification, recipients: list[str]) -> bool:
    """Through Django's mail settings (EMAIL_HOST..., DEFAULT_FROM_EMAIL); False if it failed."""
    if not recipients:
        return False
    message_id = notification.message_id()
    try:
        EmailMessage(
            notification.subject,
            notification.text,
            settings.DEFAULT_FROM_EMAIL,
            recipients,
            headers={"Message-ID": message_id} if message_id else None,
        ).send(fail_silently=False)
    except Exception as error:  # noqa: BLE001 - SMTP, DNS, TLS: any failure is only reported
        logger.warning("Could not send the notification e-mail: %s", type(error).__name__)
        return False
    return True


def pinned_request(target: WebhookTarget) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL to connect to, headers, httpx request extensions) for a checked webhook: the URL
    names the checked address instead of the host, so nothing is resolved again, while the Host
    header and the TLS server name (SNI, and the name the certificate is verified against) stay
    the host's, as the receiver expects."""
    if target.address is None:
        return target.url, {}, {}
    parts = urlsplit(target.url)
    hostname = parts.hostname or ""
    address = f"[{target.address}]" if ":" in target.address else target.address
    port = f":{parts.port}" if parts.port else ""
    host_header = f"[{hostname}]" if ":" in hostname else hostname
    connect_url = urlunsplit(parts._replace(netloc=address + port))
    return connect_url, {"Host": host_header + port}, {"sni_hostname": hostname}


def send_webhook(notification: Notification, url: str) -> bool:
    """POSTs the notification as JSON; False if the URL is refused or the receiver failed. The
    log names only the host: the path is the webhook's secret."""
    if not url:
        return False
    try:
        target = webhook_target(url)
    except WebhookUrlRefused:
        logger.warning("The notification webhook URL is refused now; nothing was sent.")
        return False
    host = masked_webhook_url(target.url)
    connect_url, headers, extensions = pinned_request(target)
    try:
        # No redirects: a webhook that moves is a configuration to fix, not a place to follow.
        # An explicit transport: httpx mounts the HTTP(S)_PROXY/ALL_PROXY variables only when
        # none is given (httpx/_client.py, "allow_env_proxies = trust_env and transport is
        # None"), and a proxy would connect to the host by name itself, past the address the
        # check judged. The transport still reads SSL_CERT_FILE (its trust_env).
        with httpx.Client(
            transport=httpx.HTTPTransport(),
            timeout=settings.WIZARD_WEBHOOK_TIMEOUT_S,
            follow_redirects=False,
        ) as client:
            response = client.post(
                connect_url,
                json=notification.webhook_body(),
                headers=headers,
                extensions=extensions,
            )
    except httpx.HTTPError as error:
        logger.warning("The notification webhook at %s failed: %s", host, type(error).__name__)
        return False
    if response.status_code >= 300:
        logger.warning(
            "The notification webhook at %s answered HTTP %s.", host, response.status_code
        )
        return False
    return True
