"""Finds the SAML response in what an admin pastes (base64, XML, the form body or a browser's HAR
file) and reads the assertion's facts from it, without trusting it and without the network."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from django.utils.translation import gettext_noop
from lxml import etree

from provisioning.messages import Message, render
from provisioning.signin_checks.saml_response import (
    MAX_SAML_RESPONSE_BYTES,
    SAML_ASSERTION,
    SAML_PROTOCOL,
    XMLDSIG,
    is_aws_signin_url,
    parse_untrusted_xml,
    refusal_reason,
)

# A HAR saved from the browser's developer tools holds every request of the page with bodies;
# a sign-in through an IdP's pages is a few megabytes at most. Anything bigger is refused unread.
MAX_HAR_BYTES = 16 * 1024 * 1024
# The form body is the base64 response plus RelayState: the base64 grows 4/3, the rest is small.
MAX_FORM_BYTES = MAX_SAML_RESPONSE_BYTES * 2
_NS = {"samlp": SAML_PROTOCOL, "saml": SAML_ASSERTION, "ds": XMLDSIG}


class UnreadableSignIn(ValueError):
    """What was given holds no SAML response the inspector can read; the message says why, in
    the language active when it is shown (the page's, the CLI's)."""

    def __init__(self, message: Message | str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return str(render(self.message))


@dataclass(frozen=True)
class PostedSignIn:
    """The response as the browser posted it, and where it was found."""

    xml: bytes
    relay_state: str
    found_in: str  # "har", "form", "base64" or "xml"
    posted_to: str = ""


@dataclass(frozen=True)
class AssertionFacts:
    """What the assertion says, read without trusting it (the checks decide what holds)."""

    issuer: str
    destination: str
    audiences: tuple[str, ...]
    recipient: str
    not_before: dt.datetime | None
    not_on_or_after: dt.datetime | None
    name_id: str
    name_id_format: str
    signed: tuple[str, ...]  # "Response" and/or "Assertion"
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)


def _from_base64(text: str) -> bytes:
    compact = "".join(text.split())
    if len(compact) > MAX_SAML_RESPONSE_BYTES * 4 // 3 + 4:
        raise UnreadableSignIn(
            Message(
                gettext_noop("the SAMLResponse is larger than %(limit)d bytes"),
                {"limit": MAX_SAML_RESPONSE_BYTES},
            )
        )
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UnreadableSignIn(
            Message(
                gettext_noop(
                    "this is not a SAML response: paste the base64 SAMLResponse, the decoded XML, "
                    "the whole form body (SAMLResponse=...&RelayState=...) or a HAR file"
                )
            )
        ) from exc


def _from_form(text: str, found_in: str, posted_to: str = "") -> PostedSignIn:
    if len(text) > MAX_FORM_BYTES:
        raise UnreadableSignIn(
            Message(
                gettext_noop("the form body is larger than %(limit)d bytes"),
                {"limit": MAX_FORM_BYTES},
            )
        )
    fields = parse_qs(text.strip(), keep_blank_values=True)
    responses = fields.get("SAMLResponse", [])
    if len(responses) != 1:
        raise UnreadableSignIn(
            Message(gettext_noop("the form body holds no single SAMLResponse field"))
        )
    # Base64 has no spaces: a space here was a "+" pasted without URL-encoding.
    return PostedSignIn(
        xml=_from_base64(responses[0].replace(" ", "+")),
        relay_state=(fields.get("RelayState") or [""])[0],
        found_in=found_in,
        posted_to=posted_to,
    )


def _from_har(raw: bytes, extra_signin_urls: Sequence[str]) -> PostedSignIn:
    try:
        har = json.loads(raw)
        entries = har["log"]["entries"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableSignIn(
            Message(gettext_noop("this JSON is not a HAR file (no log.entries)"))
        ) from exc
    for entry in entries if isinstance(entries, list) else []:
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") != "POST":
            continue
        url = str(request.get("url", "")).split("?", 1)[0]
        if not (is_aws_signin_url(url) or url in extra_signin_urls):
            continue
        post = request.get("postData") or {}
        params = {
            str(p.get("name")): str(p.get("value", ""))
            for p in post.get("params") or []
            if isinstance(p, dict)
        }
        # The text is the body exactly as sent; browsers differ in whether `params` are decoded.
        text = post.get("text")
        if isinstance(text, str) and "SAMLResponse=" in text:
            return _from_form(text, "har", posted_to=url)
        if "SAMLResponse" in params:
            return PostedSignIn(
                xml=_from_base64(params["SAMLResponse"]),
                relay_state=params.get("RelayState", ""),
                found_in="har",
                posted_to=url,
            )
    raise UnreadableSignIn(
        Message(
            gettext_noop(
                "the HAR file holds no POST to https://signin.aws.amazon.com/saml (or a regional "
                "sign-in URL): record it from the IdP's sign-in with “Preserve log” ticked"
            )
        )
    )


def read_posted_sign_in(raw: bytes, *, extra_signin_urls: Sequence[str] = ()) -> PostedSignIn:
    """The SAML response and relay state in `raw`, whichever of the four forms it is in.
    `extra_signin_urls`: other sign-in endpoints to look for in a HAR (the sandbox's)."""
    if len(raw) > MAX_HAR_BYTES:
        raise UnreadableSignIn(
            Message(gettext_noop("this is larger than %(limit)d bytes"), {"limit": MAX_HAR_BYTES})
        )
    text = raw.decode("utf-8-sig", errors="replace").strip()
    if not text:
        raise UnreadableSignIn(Message(gettext_noop("nothing was given")))
    if text.startswith("{"):
        return _from_har(raw, extra_signin_urls)
    if text.startswith("<"):
        if len(raw) > MAX_SAML_RESPONSE_BYTES:
            raise UnreadableSignIn(
                Message(
                    gettext_noop("the XML is larger than %(limit)d bytes"),
                    {"limit": MAX_SAML_RESPONSE_BYTES},
                )
            )
        return PostedSignIn(xml=text.encode(), relay_state="", found_in="xml")
    if "SAMLResponse=" in text:
        return _from_form(text, "form")
    return PostedSignIn(xml=_from_base64(text), relay_state="", found_in="base64")


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _text(element: etree._Element | None) -> str:
    return "" if element is None else (element.text or "").strip()


def assertion_facts(xml: bytes) -> AssertionFacts:
    """The facts of the response's (first) assertion, for the admin to read."""
    try:
        response = parse_untrusted_xml(xml)
    except ValueError as exc:
        raise UnreadableSignIn(
            Message(
                gettext_noop("the SAML response is not acceptable XML: %(reason)s"),
                {"reason": refusal_reason(exc)},
            )
        ) from exc
    assertion = response.find(".//saml:Assertion", _NS)
    if assertion is None:
        raise UnreadableSignIn(
            Message(
                gettext_noop(
                    "the response holds no plain Assertion (an EncryptedAssertion can't be read "
                    "here: AWS sign-in needs assertion encryption off unless IAM holds the private "
                    "key)"
                )
            )
        )
    conditions = assertion.find("saml:Conditions", _NS)
    confirmation = assertion.find(
        "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", _NS
    )
    expiries = [
        moment
        for moment in (
            _instant(None if conditions is None else conditions.get("NotOnOrAfter")),
            _instant(None if confirmation is None else confirmation.get("NotOnOrAfter")),
        )
        if moment is not None
    ]
    name_id = assertion.find("saml:Subject/saml:NameID", _NS)
    signed = tuple(
        label
        for label, element in (("Response", response), ("Assertion", assertion))
        if element.find("ds:Signature", _NS) is not None
    )
    return AssertionFacts(
        issuer=_text(assertion.find("saml:Issuer", _NS)),
        destination=response.get("Destination", ""),
        audiences=tuple(
            _text(a) for a in assertion.findall(".//saml:AudienceRestriction/saml:Audience", _NS)
        ),
        recipient="" if confirmation is None else confirmation.get("Recipient", ""),
        not_before=_instant(None if conditions is None else conditions.get("NotBefore")),
        not_on_or_after=min(expiries) if expiries else None,
        name_id=_text(name_id),
        name_id_format="" if name_id is None else name_id.get("Format", ""),
        signed=signed,
        attributes=tuple(
            (
                attribute.get("Name", ""),
                tuple(_text(value) for value in attribute.findall("saml:AttributeValue", _NS)),
            )
            for attribute in assertion.findall("saml:AttributeStatement/saml:Attribute", _NS)
        ),
    )
