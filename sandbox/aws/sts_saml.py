"""Checks an AssumeRoleWithSAML call the way STS does before moto issues the credentials."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass

from defusedxml import ElementTree
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidInput, InvalidSignature

from sandbox.aws.saml_metadata import SAML_METADATA, XMLDSIG
from sandbox.aws.wire import ApiError

SAML_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
ROLE_SESSION_NAME_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
SESSION_DURATION_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/SessionDuration"
# STS's RoleSessionName pattern and length (botocore's sts model: roleSessionNameType).
ROLE_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
# Clock skew STS tolerates on NotBefore / NotOnOrAfter (AWS IAM user guide, SAML troubleshooting:
# "the assertion ... within 5 minutes").
CLOCK_SKEW = dt.timedelta(minutes=5)
# STS's SessionDuration bounds: 900 s to 43200 s (12 h); 3600 s when the IdP sends none.
MIN_SESSION_S, MAX_SESSION_S, DEFAULT_SESSION_S = 900, 43200, 3600
# lxml hardened as the common brief requires: no entities, no network, no huge trees.
SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@dataclass(frozen=True)
class SamlClaims:
    role_arn: str
    principal_arn: str
    role_session_name: str
    session_duration_s: int


def _signing_certificates(metadata: str) -> list[str]:
    root = ElementTree.fromstring(metadata.encode("utf-8"), forbid_dtd=True)
    certificates = []
    for key_descriptor in root.iter(f"{{{SAML_METADATA}}}KeyDescriptor"):
        if key_descriptor.get("use", "signing") != "signing":
            continue
        for element in key_descriptor.iter(f"{{{XMLDSIG}}}X509Certificate"):
            body = "".join((element.text or "").split())
            lines = [body[i : i + 64] for i in range(0, len(body), 64)]
            pem = "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"])
            certificates.append(pem)
    return certificates


def _signed_assertion(response: etree._Element, certificates: list[str]) -> etree._Element:
    """The Assertion as signed by one of the metadata's certificates (only signed data is read)."""
    assertion_tag = f"{{{SAML_ASSERTION}}}Assertion"
    for certificate in certificates:
        for location in (f"./{assertion_tag}/", "./"):
            try:
                result = XMLVerifier().verify(
                    response,
                    x509_cert=certificate,
                    expect_config=SignatureConfiguration(location=location),
                )
            except (InvalidSignature, InvalidInput):
                continue
            signed = result.signed_xml  # type: ignore[union-attr]
            if signed is not None and signed.tag == assertion_tag:
                return signed
            if signed is not None and signed.find(assertion_tag) is not None:
                return signed.find(assertion_tag)
    raise ApiError("InvalidIdentityToken", "Response signature invalid", 400)


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def check_saml_assertion(
    *,
    saml_response: str,
    role_arn: str,
    principal_arn: str,
    provider_metadata: str | None,
    role_exists: bool,
    now: dt.datetime | None = None,
) -> SamlClaims:
    """Raise the ApiError real STS answers with, or return what the signed assertion claims."""
    now = now or dt.datetime.now(dt.UTC)
    if provider_metadata is None:
        raise ApiError("InvalidIdentityToken", "Specified provider doesn't exist", 400)
    try:
        document = base64.b64decode(saml_response, validate=True)
        response = etree.fromstring(document, parser=SAFE_PARSER)
    except (binascii.Error, ValueError, etree.XMLSyntaxError) as error:
        raise ApiError("InvalidIdentityToken", "Invalid SAML response", 400) from error
    if response.tag != f"{{{SAML_PROTOCOL}}}Response":
        raise ApiError("InvalidIdentityToken", "Invalid SAML response", 400)

    assertion = _signed_assertion(response, _signing_certificates(provider_metadata))
    saml = f"{{{SAML_ASSERTION}}}"
    conditions = assertion.find(saml + "Conditions")
    if conditions is not None:
        not_before = _instant(conditions.get("NotBefore"))
        not_after = _instant(conditions.get("NotOnOrAfter"))
        if (not_before and now + CLOCK_SKEW < not_before) or (
            not_after and now - CLOCK_SKEW >= not_after
        ):
            raise ApiError("ExpiredTokenException", "Token expired", 400)

    attributes: dict[str, list[str]] = {}
    for attribute in assertion.iter(saml + "Attribute"):
        values = [(value.text or "").strip() for value in attribute.iter(saml + "AttributeValue")]
        attributes.setdefault(attribute.get("Name", ""), []).extend(values)

    pairs = [
        {part.strip() for part in value.split(",")} for value in attributes.get(ROLE_ATTRIBUTE, [])
    ]
    if not role_exists or {role_arn, principal_arn} not in pairs:
        raise ApiError("AccessDenied", "Not authorized to perform sts:AssumeRoleWithSAML", 403)
    session_names = attributes.get(ROLE_SESSION_NAME_ATTRIBUTE, [])
    if len(session_names) != 1 or not ROLE_SESSION_NAME.match(session_names[0]):
        raise ApiError(
            "InvalidIdentityToken",
            "The RoleSessionName attribute must be one value of 2-64 characters matching "
            r"[\w+=,.@-]",
            400,
        )
    duration = DEFAULT_SESSION_S
    if attributes.get(SESSION_DURATION_ATTRIBUTE):
        try:
            duration = int(attributes[SESSION_DURATION_ATTRIBUTE][0])
        except ValueError as error:
            raise ApiError("InvalidIdentityToken", "Invalid SessionDuration", 400) from error
        if not MIN_SESSION_S <= duration <= MAX_SESSION_S:
            raise ApiError("InvalidIdentityToken", "Invalid SessionDuration", 400)
    return SamlClaims(role_arn, principal_arn, session_names[0], duration)


def assertion_for_moto(claims: SamlClaims) -> str:
    """The checked claims as the plain assertion moto's STS parses (one value per attribute)."""
    samlp = f"{{{SAML_PROTOCOL}}}"
    saml = f"{{{SAML_ASSERTION}}}"
    response = etree.Element(
        samlp + "Response", nsmap={"samlp": SAML_PROTOCOL, "saml": SAML_ASSERTION}
    )
    assertion = etree.SubElement(response, saml + "Assertion")
    statement = etree.SubElement(assertion, saml + "AttributeStatement")
    for name, value in (
        (ROLE_ATTRIBUTE, f"{claims.role_arn},{claims.principal_arn}"),
        (ROLE_SESSION_NAME_ATTRIBUTE, claims.role_session_name),
        (SESSION_DURATION_ATTRIBUTE, str(claims.session_duration_s)),
    ):
        attribute = etree.SubElement(statement, saml + "Attribute", Name=name)
        etree.SubElement(attribute, saml + "AttributeValue").text = value
    return base64.b64encode(etree.tostring(response)).decode()
