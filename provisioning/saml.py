"""Reads an identity provider's SAML 2.0 metadata safely, checks it can sign AWS sign-ins, and
fetches it from an https URL in live mode without letting a typed URL reach private addresses."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import difflib
import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element, ParseError

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException
from django.utils.translation import gettext_noop

from provisioning.errors import PermanentError, RetryableError
from provisioning.messages import Message

SAML_METADATA = "urn:oasis:names:tc:SAML:2.0:metadata"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
_MD = f"{{{SAML_METADATA}}}"
_DS = f"{{{XMLDSIG}}}"

# A real IdP metadata document is a few KB (Entra's, with two certificates and a signature, about
# 6 KB); a mebibyte leaves room for any real one and refuses anything meant to exhaust memory.
MAX_METADATA_BYTES = 1024 * 1024
# Entra and Okta notify admins 60 and 30 days before a SAML signing certificate expires; the
# wizard warns at the later of the two, when a rollover is due.
CERTIFICATE_WARNING_DAYS = 30
# Seconds for connecting and for each read when fetching metadata; the whole fetch gets twice that.
FETCH_TIMEOUT_S = 10
# Entra's and Okta's metadata URLs answer directly; a couple of hops covers a vanity domain.
MAX_REDIRECTS = 3
HTTPS_PORT = 443
# Names that reach the fetching host itself or a local network whatever DNS says.
LOCAL_HOST_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")
LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK_BYTES = 64 * 1024
# Entra serves app federation metadata with a UTF-8 byte-order mark, and IAM's CreateSAMLProvider
# and UpdateSAMLProvider fail to parse a document that starts with one (MicrosoftDocs/azure-docs
# issue 65434; Microsoft's answer there: applications should cope with the BOM). The wizard drops
# it wherever metadata comes in: Entra's download, a paste, a plan file, a metadata URL.
UTF8_BYTE_ORDER_MARK = b"\xef\xbb\xbf"

WHERE_TO_GET_IT = Message(
    gettext_noop(
        "Download the IdP metadata again: in Entra, the “Federation Metadata XML” on the app's "
        "“Single sign-on” page; in Okta, the “Metadata URL” (or “Identity Provider metadata”) on "
        "the app's “Sign On” tab."
    )
)


@dataclass(frozen=True)
class CertificateInfo:
    """One signing certificate from the metadata, in the terms the IdP's admin page uses."""

    subject: str
    fingerprint_sha256: str  # colon-separated upper-case hex, as browsers and openssl show it
    thumbprint_sha1: str  # upper-case hex without separators, as Entra shows it
    not_before: dt.datetime
    not_after: dt.datetime
    pem: str

    def to_json(self) -> dict[str, str]:
        return {
            "subject": self.subject,
            "fingerprint_sha256": self.fingerprint_sha256,
            "thumbprint_sha1": self.thumbprint_sha1,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
        }


@dataclass(frozen=True)
class IdpMetadata:
    """What the wizard needs from IdP metadata; `document` is the text IAM is given."""

    entity_id: str
    signing_certificates: tuple[CertificateInfo, ...]
    sso_urls: tuple[str, ...]
    document: str
    warnings: tuple[Message, ...] = field(default=())

    @property
    def certificate(self) -> CertificateInfo:
        """The certificate to show first: the one that expires last (the IdP's newest)."""
        return max(self.signing_certificates, key=lambda certificate: certificate.not_after)

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(cert.fingerprint_sha256 for cert in self.signing_certificates)


def parse_idp_metadata(
    document: bytes | str, *, now: dt.datetime | None = None, check_dates: bool = True
) -> IdpMetadata:
    """Parse and check IdP metadata; raise PermanentError saying what to fix if it can't serve.

    Requires an md:EntityDescriptor (or an md:EntitiesDescriptor holding exactly one IdP) with an
    IDPSSODescriptor that supports SAML 2.0 and carries a signing certificate. With
    `check_dates`, refuses metadata whose every signing certificate has expired and warns about
    one that expires within CERTIFICATE_WARNING_DAYS.
    """
    raw = without_byte_order_mark(
        document.encode("utf-8") if isinstance(document, str) else bytes(document)
    )
    if len(raw) > MAX_METADATA_BYTES:
        raise PermanentError(
            Message(
                gettext_noop(
                    "The metadata is %(size)s bytes; IdP metadata is a few KB, and the wizard "
                    "accepts at most %(limit)s."
                ),
                {"size": f"{len(raw):,}", "limit": f"{MAX_METADATA_BYTES:,}"},
            ),
            code="saml_metadata_too_large",
            hint=WHERE_TO_GET_IT,
        )
    if not raw.strip():
        raise PermanentError(
            Message(gettext_noop("The metadata is empty.")),
            code="saml_metadata_empty",
            hint=WHERE_TO_GET_IT,
        )
    root = _parse_xml(raw)
    entity = _identity_provider_entity(root)
    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise PermanentError(
            Message(gettext_noop("The metadata's EntityDescriptor has no entityID.")),
            code="saml_metadata_no_entity_id",
            hint=WHERE_TO_GET_IT,
        )
    idp = _saml2_idp_descriptor(entity)
    certificates = _signing_certificates(idp)
    sso_urls = tuple(
        location
        for service in idp.findall(_MD + "SingleSignOnService")
        if (location := (service.get("Location") or "").strip())
    )
    warnings = certificate_warnings(certificates, now=now) if check_dates else []
    return IdpMetadata(
        entity_id=entity_id,
        signing_certificates=tuple(certificates),
        sso_urls=sso_urls,
        document=raw.decode("utf-8", errors="replace"),
        warnings=tuple(warnings),
    )


def without_byte_order_mark(raw: bytes) -> bytes:
    """`raw` without the UTF-8 byte-order mark it may start with; everything else untouched."""
    return raw.removeprefix(UTF8_BYTE_ORDER_MARK)


def certificate_warnings(
    certificates: Sequence[CertificateInfo], *, now: dt.datetime | None = None
) -> list[Message]:
    """Warnings about the certificates' dates; PermanentError if none is valid now."""
    now = now or dt.datetime.now(dt.UTC)
    valid = [cert for cert in certificates if cert.not_before <= now < cert.not_after]
    expired = [cert for cert in certificates if cert.not_after <= now]
    if not valid:
        if expired:
            newest = max(expired, key=lambda cert: cert.not_after)
            raise PermanentError(
                Message(
                    gettext_noop(
                        "The IdP's signing certificate “%(subject)s” expired on %(date)s. IAM "
                        "does not check certificate dates, but the wizard does not build a "
                        "federation on an expired certificate."
                    ),
                    {"subject": newest.subject, "date": f"{newest.not_after:%Y-%m-%d}"},
                ),
                code="saml_certificate_expired",
                hint=Message(
                    gettext_noop(
                        "Create a new SAML signing certificate in the IdP app (Entra: “SAML "
                        "Certificates” › “Edit” › “New Certificate”, then make it active; Okta: "
                        "“Sign On” › “SAML Signing Certificates” › “Generate new certificate”), "
                        "then download the metadata again."
                    )
                ),
            )
        soonest = min(certificates, key=lambda cert: cert.not_before)
        raise PermanentError(
            Message(
                gettext_noop(
                    "The IdP's signing certificate “%(subject)s” is valid only from %(time)s UTC."
                ),
                {"subject": soonest.subject, "time": f"{soonest.not_before:%Y-%m-%d %H:%M}"},
            ),
            code="saml_certificate_not_yet_valid",
            hint=Message(
                gettext_noop(
                    "Check the IdP server's clock, or wait until the certificate becomes valid."
                )
            ),
        )
    warnings = [
        Message(
            gettext_noop(
                "The signing certificate “%(subject)s” (%(fingerprint)s) expired on %(date)s. "
                "IAM does not check the dates, so sign-ins it signs still pass today; make the "
                "newer certificate active in the IdP all the same."
            ),
            {
                "subject": cert.subject,
                "fingerprint": cert.fingerprint_sha256,
                "date": f"{cert.not_after:%Y-%m-%d}",
            },
        )
        for cert in expired
    ]
    horizon = now + dt.timedelta(days=CERTIFICATE_WARNING_DAYS)
    for cert in valid:
        if cert.not_after < horizon:
            days = max(0, (cert.not_after - now).days)
            warnings.append(
                Message.counted(
                    gettext_noop(
                        "The signing certificate “%(subject)s” expires in %(days)d day "
                        "(%(date)s). Roll it over in the IdP and update this provider's metadata "
                        "before then, or sign-ins stop working."
                    ),
                    gettext_noop(
                        "The signing certificate “%(subject)s” expires in %(days)d days "
                        "(%(date)s). Roll it over in the IdP and update this provider's metadata "
                        "before then, or sign-ins stop working."
                    ),
                    days,
                    {"subject": cert.subject, "days": days, "date": f"{cert.not_after:%Y-%m-%d}"},
                )
            )
    return warnings


def _parse_xml(raw: bytes) -> Element:
    if raw.lstrip()[:200].lower().startswith((b"<!doctype html", b"<html")):
        raise PermanentError(
            Message(
                gettext_noop("This is a web page, not metadata (a sign-in page or an error page).")
            ),
            code="saml_metadata_not_xml",
            hint=WHERE_TO_GET_IT,
        )
    try:
        # No DTD at all (so no entity expansion), no external references, no network.
        return ElementTree.fromstring(raw, forbid_dtd=True, forbid_entities=True)
    except DefusedXmlException as error:
        raise PermanentError(
            Message(
                gettext_noop(
                    "The metadata declares a DTD or entities, which IdP metadata never needs; the "
                    "wizard refuses such documents to stay safe from XML attacks."
                )
            ),
            code="saml_metadata_unsafe_xml",
            hint=WHERE_TO_GET_IT,
        ) from error
    except ParseError as error:
        raise PermanentError(
            Message(
                gettext_noop("The metadata is not well-formed XML (%(error)s)."),
                {"error": str(error)},
            ),
            code="saml_metadata_not_xml",
            hint=WHERE_TO_GET_IT,
        ) from error


def _identity_provider_entity(root: Element) -> Element:
    if root.tag == _MD + "EntityDescriptor":
        entity = root
    elif root.tag == _MD + "EntitiesDescriptor":
        identity_providers = [
            entity
            for entity in root.iter(_MD + "EntityDescriptor")
            if entity.find(_MD + "IDPSSODescriptor") is not None
        ]
        if len(identity_providers) != 1:
            raise PermanentError(
                Message.counted(
                    gettext_noop(
                        "This metadata describes %(count)d identity provider; the wizard needs "
                        "the metadata of exactly one (your IdP app's)."
                    ),
                    gettext_noop(
                        "This metadata describes %(count)d identity providers; the wizard needs "
                        "the metadata of exactly one (your IdP app's)."
                    ),
                    len(identity_providers),
                    {"count": len(identity_providers)},
                ),
                code="saml_metadata_not_one_idp",
                hint=WHERE_TO_GET_IT,
            )
        entity = identity_providers[0]
    elif _local_name(root.tag) in ("EntityDescriptor", "EntitiesDescriptor"):
        namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
        raise PermanentError(
            Message(
                gettext_noop(
                    "The metadata's %(element)s is in the wrong XML namespace: “%(namespace)s”, "
                    "where SAML 2.0 metadata uses “%(expected)s”."
                ),
                {
                    "element": _local_name(root.tag),
                    "namespace": namespace or Message(gettext_noop("none")),
                    "expected": _MD[1:-1],
                },
            ),
            code="saml_metadata_wrong_namespace",
            hint=Message(
                gettext_noop(
                    "Download the metadata again from the IdP instead of editing it by hand. "
                    "%(where)s"
                ),
                {"where": WHERE_TO_GET_IT},
            ),
        )
    else:
        raise PermanentError(
            Message(
                gettext_noop(
                    "This is not SAML 2.0 metadata: its root element is “%(element)s”, not "
                    "EntityDescriptor."
                ),
                {"element": _local_name(root.tag)},
            ),
            code="saml_metadata_wrong_root",
            hint=WHERE_TO_GET_IT,
        )
    if entity.find(_MD + "IDPSSODescriptor") is None:
        if entity.find(_MD + "SPSSODescriptor") is not None:
            raise PermanentError(
                Message(
                    gettext_noop(
                        "This is SP metadata (a service provider's, such as AWS's own "
                        "saml-metadata.xml), not IdP metadata."
                    )
                ),
                code="saml_metadata_is_sp",
                hint=Message(
                    gettext_noop(
                        "Download the Federation Metadata XML from the Entra app's “Single "
                        "sign-on” page, or the metadata from the Okta app's “Sign On” tab."
                    )
                ),
            )
        raise PermanentError(
            Message(
                gettext_noop(
                    "The metadata has no IDPSSODescriptor: it does not describe a SAML identity "
                    "provider."
                )
            ),
            code="saml_metadata_no_idp",
            hint=WHERE_TO_GET_IT,
        )
    return entity


def _saml2_idp_descriptor(entity: Element) -> Element:
    for idp in entity.findall(_MD + "IDPSSODescriptor"):
        if SAML2_PROTOCOL in (idp.get("protocolSupportEnumeration") or "").split():
            return idp
    raise PermanentError(
        Message(
            gettext_noop(
                "The identity provider in this metadata does not support SAML 2.0, which AWS "
                "requires."
            )
        ),
        code="saml_metadata_not_saml2",
        hint=Message(
            gettext_noop(
                "Make sure the IdP app uses SAML 2.0 (not WS-Federation or SAML 1.1). %(where)s"
            ),
            {"where": WHERE_TO_GET_IT},
        ),
    )


def _signing_certificates(idp: Element) -> list[CertificateInfo]:
    certificates: list[CertificateInfo] = []
    unreadable = 0
    for key_descriptor in idp.findall(_MD + "KeyDescriptor"):
        # A KeyDescriptor without `use` serves signing too (SAML 2.0 metadata, section 2.4.1.1).
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for element in key_descriptor.iter(_DS + "X509Certificate"):
            certificate = _certificate(element.text or "")
            if certificate is None:
                unreadable += 1
            elif certificate.fingerprint_sha256 not in {c.fingerprint_sha256 for c in certificates}:
                certificates.append(certificate)
    if certificates:
        return certificates
    if unreadable:
        raise PermanentError(
            Message(
                gettext_noop(
                    "The signing certificate in the metadata can't be read (it is not a base64 "
                    "X.509 certificate); the document may have been cut or edited."
                )
            ),
            code="saml_certificate_unreadable",
            hint=WHERE_TO_GET_IT,
        )
    raise PermanentError(
        Message(
            gettext_noop(
                "The metadata has no signing certificate; AWS needs one to check the IdP's "
                "signatures."
            )
        ),
        code="saml_metadata_no_certificate",
        hint=Message(
            gettext_noop(
                "In the IdP app, make sure a SAML signing certificate is active. %(where)s"
            ),
            {"where": WHERE_TO_GET_IT},
        ),
    )


def _certificate(text: str) -> CertificateInfo | None:
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
        certificate = x509.load_der_x509_certificate(der)
    except (binascii.Error, ValueError):
        return None
    sha256 = certificate.fingerprint(hashes.SHA256()).hex().upper()
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        fingerprint_sha256=":".join(sha256[i : i + 2] for i in range(0, len(sha256), 2)),
        # SHA-1 only as a label: it is how Entra names a certificate, not a security check.
        thumbprint_sha1=certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
    )


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# Fetching by URL (live mode) ----------------------------------------------------------------

Resolver = Callable[[str, int], Sequence[str]]


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_metadata_url(url: str) -> tuple[str, int]:
    """(host, port) of a metadata URL an admin typed, or PermanentError; no network involved.

    Only https; no user name or password in the URL (`https://login.example.com@10.0.0.1/` reads
    as a trusted host but goes to the address after the @); no IP address literal, no local name.
    """
    refuse = _url_refusal(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port or HTTPS_PORT
    except ValueError as error:
        raise refuse(
            Message(gettext_noop("it is not a valid URL (%(error)s)"), {"error": str(error)})
        ) from error
    if parts.scheme.lower() != "https":
        raise refuse(Message(gettext_noop("only https:// metadata URLs are fetched")))
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise refuse(
            Message(gettext_noop("it contains a user name or password (the part before “@”)"))
        )
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise refuse(Message(gettext_noop("it names no host")))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise refuse(Message(gettext_noop("it names an IP address; use the IdP's host name")))
    if host in LOCAL_HOST_NAMES or host.endswith(LOCAL_HOST_SUFFIXES) or "." not in host:
        raise refuse(
            Message(gettext_noop("“%(host)s” is a local name, not a public host"), {"host": host})
        )
    if port != HTTPS_PORT:
        raise refuse(
            Message(
                gettext_noop(
                    "it uses port %(port)d; IdP metadata is served on the https port %(https)d"
                ),
                {"port": port, "https": HTTPS_PORT},
            )
        )
    return host, port


def public_addresses(host: str, port: int, *, resolver: Resolver = _system_resolver) -> list[str]:
    """The host's addresses if every one is public; PermanentError otherwise (a name that
    resolves to a private, loopback or link-local address is refused, whatever it looks like)."""
    try:
        addresses = list(dict.fromkeys(resolver(host, port)))
    except (OSError, UnicodeError) as error:
        raise PermanentError(
            Message(
                gettext_noop("The metadata host “%(host)s” can't be resolved (%(error)s)."),
                {"host": host, "error": str(error)},
            ),
            code="saml_metadata_url_unresolvable",
            hint=Message(
                gettext_noop(
                    "Check the URL for typos, and that the worker's host can resolve public names."
                )
            ),
        ) from error
    if not addresses:
        raise PermanentError(
            Message(gettext_noop("The metadata host “%(host)s” has no address."), {"host": host}),
            code="saml_metadata_url_unresolvable",
        )
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (mapped or ip).is_global or ip.is_multicast:
            raise _url_refusal(host)(
                Message(
                    gettext_noop(
                        "“%(host)s” resolves to %(address)s, which is not a public address"
                    ),
                    {"host": host, "address": address},
                )
            )
    return addresses


def fetch_metadata_url(
    url: str,
    *,
    resolver: Resolver = _system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """The body at `url`, at most MAX_METADATA_BYTES, following redirects only to URLs that pass
    the same checks; the connection goes to the address that was checked (no DNS rebinding)."""
    context = ssl_context or ssl.create_default_context()
    deadline = time.monotonic() + 2 * FETCH_TIMEOUT_S
    current = url.strip()
    for _ in range(MAX_REDIRECTS + 1):
        host, port = check_metadata_url(current)
        address = public_addresses(host, port, resolver=resolver)[0]
        parts = urlsplit(current)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = _PinnedHTTPSConnection(host, port, address, context=context)
        try:
            connection.request(
                "GET", path, headers={"Accept": "application/samlmetadata+xml, application/xml"}
            )
            response = connection.getresponse()
            if response.status in REDIRECT_STATUSES:
                location = response.getheader("Location") or ""
                if not location:
                    raise _fetch_failed(
                        current,
                        Message(
                            gettext_noop("HTTP %(status)d without a Location"),
                            {"status": response.status},
                        ),
                    )
                current = urljoin(current, location)
                continue
            if response.status >= 500:
                raise RetryableError(
                    Message(
                        gettext_noop("The metadata URL answered HTTP %(status)d."),
                        {"status": response.status},
                    ),
                    code="saml_metadata_url_unavailable",
                    hint=Message(
                        gettext_noop(
                            "The wizard retries; check the IdP's status page if it keeps failing."
                        )
                    ),
                )
            if response.status != 200:
                raise _fetch_failed(current, f"HTTP {response.status}")  # a status, no words
            return _read_capped(response, deadline)
        except (OSError, http.client.HTTPException) as error:
            raise RetryableError(
                Message(
                    gettext_noop("The metadata URL could not be read: %(error)s"),
                    {"error": str(error)},
                ),
                code="saml_metadata_url_unreachable",
                hint=Message(
                    gettext_noop("Check the URL and the worker's network access to the IdP.")
                ),
            ) from error
        finally:
            connection.close()
    raise _fetch_failed(
        url,
        Message(gettext_noop("more than %(count)d redirects"), {"count": MAX_REDIRECTS}),
    )


def _read_capped(response: http.client.HTTPResponse, deadline: float) -> bytes:
    declared = response.getheader("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_METADATA_BYTES:
        raise _too_large()
    body = bytearray()
    while chunk := response.read(_READ_CHUNK_BYTES):
        body.extend(chunk)
        if len(body) > MAX_METADATA_BYTES:
            raise _too_large()
        if time.monotonic() > deadline:
            raise RetryableError(
                Message(gettext_noop("The metadata URL is answering too slowly.")),
                code="saml_metadata_url_timeout",
            )
    return bytes(body)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a name, over a TCP connection to the address that was checked for that name."""

    def __init__(self, host: str, port: int, address: str, *, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=FETCH_TIMEOUT_S, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _url_refusal(url: str) -> Callable[[Message], PermanentError]:
    def refuse(reason: Message) -> PermanentError:
        return PermanentError(
            Message(
                gettext_noop("The wizard won't fetch metadata from “%(url)s”: %(reason)s."),
                {"url": url, "reason": reason},
            ),
            code="saml_metadata_url_refused",
            hint=Message(
                gettext_noop(
                    "Paste or upload the metadata instead, or use the https URL the IdP shows "
                    "(Entra: “App Federation Metadata Url”; Okta: “Metadata URL”)."
                )
            ),
        )

    return refuse


def _fetch_failed(url: str, reason: Message | str) -> PermanentError:
    return PermanentError(
        Message(
            gettext_noop("The metadata could not be fetched from “%(url)s”: %(reason)s."),
            {"url": url, "reason": reason},
        ),
        code="saml_metadata_url_failed",
        hint=Message(
            gettext_noop("Open the URL in a browser to check it, or paste the metadata instead.")
        ),
    )


def _too_large() -> PermanentError:
    return PermanentError(
        Message(
            gettext_noop(
                "The metadata URL returned more than %(limit)s bytes; that is not IdP metadata."
            ),
            {"limit": f"{MAX_METADATA_BYTES:,}"},
        ),
        code="saml_metadata_too_large",
        hint=WHERE_TO_GET_IT,
    )


def metadata_summary(metadata: IdpMetadata) -> dict[str, Any]:
    """What a plan shows about metadata: entity ID, the certificate to check, and the SSO URL."""
    certificate = metadata.certificate
    return {
        "entity_id": metadata.entity_id,
        "certificate_subject": certificate.subject,
        "certificate_fingerprint": certificate.fingerprint_sha256,
        "certificate_thumbprint": certificate.thumbprint_sha1,
        "certificate_not_after": certificate.not_after.isoformat(),
        "certificates": len(metadata.signing_certificates),
        "sso_url": metadata.sso_urls[0] if metadata.sso_urls else "",
    }


def metadata_lines(metadata: IdpMetadata) -> list[str]:
    """The facts IAM uses from metadata, one per line, for a diff between two documents."""
    lines = [f"entityID: {metadata.entity_id}"]
    for cert in sorted(metadata.signing_certificates, key=lambda cert: cert.not_after):
        lines.append(
            f"signing certificate: {cert.subject} {cert.fingerprint_sha256} "
            f"valid until {cert.not_after:%Y-%m-%d}"
        )
    return lines


def metadata_diff(held: IdpMetadata | None, new: IdpMetadata) -> str:
    """What changes in IAM's view of the metadata (None: what IAM holds does not parse)."""
    old = metadata_lines(held) if held is not None else ["(unreadable metadata)"]
    return "\n".join(
        difflib.unified_diff(
            old, metadata_lines(new), fromfile="in IAM", tofile="new metadata", lineterm=""
        )
    )
