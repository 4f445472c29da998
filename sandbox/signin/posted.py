"""What the browser posted to the sign-in endpoint, read before anything is trusted: the SAML
response's XML, the role pair it claims (which names the IAM provider whose certificates check
the signature, as at AWS) and who it says is signing in (for CloudTrail's events)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from lxml import etree

from sandbox.aws.sts_saml import (
    MAX_ASSERTION_CHARS,
    ROLE_ATTRIBUTE,
    ROLE_SESSION_NAME_ATTRIBUTE,
    SAFE_PARSER,
    SAML_ASSERTION,
    SAML_PROTOCOL,
)
from sandbox.signin.refusals import INVALID_SAML_RESPONSE, Cause, SignInRefused

_NS = {"samlp": SAML_PROTOCOL, "saml": SAML_ASSERTION}
SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
# The Role attribute's value: "role ARN,provider ARN", either order, no spaces (IAM User Guide,
# "Configure SAML assertions for the authentication response", Role attribute).
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}", re.ASCII)
_PROVIDER_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:saml-provider/[\w.-]{1,128}", re.ASCII)


@dataclass(frozen=True)
class RolePair:
    role_arn: str
    provider_arn: str


@dataclass(frozen=True)
class Posted:
    """The decoded response and what it claims, unchecked."""

    xml: bytes
    role_pair: RolePair
    issuer: str
    subject: str
    recipient: str
    role_session_name: str


def _invalid(check: str, detail: str) -> SignInRefused:
    return SignInRefused(
        cause=Cause.INVALID_SAML_RESPONSE, check=check, detail=detail, error=INVALID_SAML_RESPONSE
    )


def _pair(value: str) -> RolePair | None:
    parts = value.split(",")
    if len(parts) != 2:
        return None
    for role_arn, provider_arn in (parts, parts[::-1]):
        if _ROLE_ARN.fullmatch(role_arn) and _PROVIDER_ARN.fullmatch(provider_arn):
            return RolePair(role_arn, provider_arn)
    return None


def _values(assertion: etree._Element, name: str) -> list[str] | None:
    found = assertion.findall(f"saml:AttributeStatement/saml:Attribute[@Name='{name}']", _NS)
    if not found:
        return None
    return [(v.text or "").strip() for a in found for v in a.findall("saml:AttributeValue", _NS)]


def _claimed_pair(assertion: etree._Element, chosen_role: str) -> RolePair:
    values = _values(assertion, ROLE_ATTRIBUTE)
    if values is None:
        near = [
            name
            for a in assertion.findall("saml:AttributeStatement/saml:Attribute", _NS)
            if (name := a.get("Name", "")).lower().rstrip("/") == ROLE_ATTRIBUTE.lower()
        ]
        hint = f"; found {', '.join(near)} (names are case-sensitive)" if near else ""
        raise _invalid("role_attribute", f"no attribute named exactly {ROLE_ATTRIBUTE}{hint}")
    pairs = [pair for value in values if (pair := _pair(value)) is not None]
    if not pairs:
        raise _invalid(
            "role_attribute", f"the Role attribute holds no 'role ARN,provider ARN' ({values!r})"
        )
    # Several pairs: AWS shows a role picker; the sandbox takes the `role` form field's choice.
    if not chosen_role:
        return pairs[0]
    chosen = next((pair for pair in pairs if pair.role_arn == chosen_role), None)
    if chosen is None:
        raise _invalid(
            "role_attribute", f"the chosen role {chosen_role} is not in the Role attribute"
        )
    return chosen


def read_posted(saml_response: str, chosen_role: str = "") -> Posted:
    """The response the browser posted: base64 within STS's size, one plain assertion, a Success
    status, a role pair; refuses what AWS's sign-in page would call an invalid SAML response."""
    if not saml_response:
        raise _invalid("form", "the POST has no SAMLResponse field")
    if len(saml_response) > MAX_ASSERTION_CHARS:
        raise _invalid("form", f"SAMLResponse is over {MAX_ASSERTION_CHARS} characters")
    try:
        xml = base64.b64decode("".join(saml_response.split()), validate=True)
        response = etree.fromstring(xml, parser=SAFE_PARSER)
    except (binascii.Error, ValueError) as error:
        raise _invalid("form", "SAMLResponse is not base64") from error
    except etree.XMLSyntaxError as error:
        raise _invalid("xml", f"SAMLResponse is not acceptable XML: {error}") from error
    if response.tag != f"{{{SAML_PROTOCOL}}}Response":
        raise _invalid("xml", f"the root element is {response.tag}, not samlp:Response")
    if response.findall(".//saml:EncryptedAssertion", _NS):
        raise _invalid(
            "xml",
            "the assertion is encrypted; the sandbox's IAM providers hold no decryption key, "
            "turn assertion encryption off in the IdP",
        )
    assertions = response.findall(".//saml:Assertion", _NS)
    if len(assertions) != 1:
        raise _invalid("xml", f"the response holds {len(assertions)} assertions, not one")
    status = response.find("samlp:Status/samlp:StatusCode", _NS)
    if status is None or status.get("Value") != SUCCESS:
        raise _invalid(
            "status", f"the IdP's status is {None if status is None else status.get('Value')}"
        )
    assertion = assertions[0]
    confirmation = assertion.find(
        "saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", _NS
    )
    names = _values(assertion, ROLE_SESSION_NAME_ATTRIBUTE) or [""]
    return Posted(
        xml=xml,
        role_pair=_claimed_pair(assertion, chosen_role),
        issuer=(assertion.findtext("saml:Issuer", "", _NS) or "").strip(),
        subject=(assertion.findtext("saml:Subject/saml:NameID", "", _NS) or "").strip(),
        recipient="" if confirmation is None else confirmation.get("Recipient", ""),
        role_session_name=names[0],
    )
