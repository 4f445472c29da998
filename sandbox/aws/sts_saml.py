"""Checks an AssumeRoleWithSAML call the way STS does before moto issues the credentials."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from defusedxml import ElementTree
from lxml import etree
from signxml import SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidInput, InvalidSignature

from sandbox.aws.policy_evaluation import Ask, decide
from sandbox.aws.saml_metadata import SAML_METADATA, XMLDSIG
from sandbox.aws.wire import ApiError

SAML_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
ROLE_SESSION_NAME_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
SESSION_DURATION_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/SessionDuration"
BEARER = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
# STS's RoleSessionName rule as its error names it, ASCII only (botocore's sts model,
# roleSessionNameType: [\w+=,.@-]*, 2 to 64).
ROLE_SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
# AssumeRoleWithSAML's SAMLAssertion: 4 to 100000 characters (STS API reference).
MIN_ASSERTION_CHARS, MAX_ASSERTION_CHARS = 4, 100_000
# The audiences and recipients AWS sign-in takes (IAM User Guide, "Configure SAML assertions
# for the authentication response"): the global endpoint, a regional one, the legacy URN.
SIGNIN_URL = "https://signin.aws.amazon.com/saml"
REGIONAL_SIGNIN_URL = re.compile(
    r"https://[a-z]{2}(-gov)?-[a-z]+-\d\.signin\.aws\.amazon\.com/saml"
)
AWS_URN = "urn:amazon:webservices"
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


class StsRefusal(ApiError):
    """STS's error, with which of its checks failed and exactly what it found: the sandbox's
    sign-in page reports both, where real AWS shows only its error page."""

    def __init__(self, code: str, message: str, status: int, *, check: str, detail: str) -> None:
        super().__init__(code, message, status)
        self.check = check
        self.detail = detail


@dataclass(frozen=True)
class RoleFacts:
    """What IAM holds about the role the call names."""

    arn: str
    trust_policy: dict[str, Any]
    max_session_duration_s: int


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
    """The Assertion as signed by one of the metadata's certificates (only signed data is read).

    A certificate's validity period is not looked at: "IAM does not evaluate or take action on
    the expiration of the SAML metadata document or X.509 certificates in SAML metadata documents
    during SAML authentication. SAML authentication validity is enforced at the assertion level,
    using the NotOnOrAfter attribute" (IAM User Guide, "Create a SAML identity provider in IAM",
    following the SAML V2.0 Metadata Interoperability Profile). signxml refuses a certificate
    outside its dates at `verification_time` (now by default), so it is asked at the
    certificate's first valid moment: only the key decides."""
    assertion_tag = f"{{{SAML_ASSERTION}}}Assertion"
    for certificate in certificates:
        try:
            valid_from = x509.load_pem_x509_certificate(certificate.encode()).not_valid_before_utc
        except ValueError:
            continue
        for location in (f"./{assertion_tag}/", "./"):
            try:
                result = XMLVerifier().verify(
                    response,
                    x509_cert=certificate,
                    expect_config=SignatureConfiguration(
                        location=location, verification_time=valid_from
                    ),
                )
            except (InvalidSignature, InvalidInput):
                continue
            signed = result.signed_xml  # type: ignore[union-attr]
            if signed is not None and signed.tag == assertion_tag:
                return signed
            if signed is not None and signed.find(assertion_tag) is not None:
                return signed.find(assertion_tag)
    raise StsRefusal(
        "InvalidIdentityToken",
        "Response signature invalid",
        400,
        check="signature",
        detail="the assertion is not signed by a certificate of the provider's metadata",
    )


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _invalid(check: str, detail: str, message: str = "Invalid SAML response") -> StsRefusal:
    return StsRefusal("InvalidIdentityToken", message, 400, check=check, detail=detail)


def _is_signin_url(url: str) -> bool:
    return url == SIGNIN_URL or REGIONAL_SIGNIN_URL.fullmatch(url) is not None


def _metadata_entity_id(metadata: str) -> str:
    root = ElementTree.fromstring(metadata.encode("utf-8"), forbid_dtd=True)
    if root.tag == f"{{{SAML_METADATA}}}EntityDescriptor":
        return root.get("entityID", "")
    found = root.find(f"{{{SAML_METADATA}}}EntityDescriptor")
    return "" if found is None else found.get("entityID", "")


def _attributes(assertion: etree._Element) -> dict[str, list[str]]:
    saml = f"{{{SAML_ASSERTION}}}"
    attributes: dict[str, list[str]] = {}
    for attribute in assertion.iter(saml + "Attribute"):
        values = [(value.text or "").strip() for value in attribute.iter(saml + "AttributeValue")]
        attributes.setdefault(attribute.get("Name", ""), []).extend(values)
    return attributes


def _bearer_data(assertion: etree._Element) -> etree._Element | None:
    saml = f"{{{SAML_ASSERTION}}}"
    for confirmation in assertion.iter(saml + "SubjectConfirmation"):
        if confirmation.get("Method") == BEARER:
            return confirmation.find(saml + "SubjectConfirmationData")
    return None


def _check_time_window(assertion: etree._Element, now: dt.datetime) -> None:
    conditions = assertion.find(f"{{{SAML_ASSERTION}}}Conditions")
    bearer = _bearer_data(assertion)
    try:
        not_before = _instant(None if conditions is None else conditions.get("NotBefore"))
        ends = [
            moment
            for moment in (
                _instant(None if conditions is None else conditions.get("NotOnOrAfter")),
                _instant(None if bearer is None else bearer.get("NotOnOrAfter")),
            )
            if moment is not None
        ]
    except ValueError as error:
        raise _invalid("time_window", f"a validity time is not an xs:dateTime: {error}") from error
    if not_before is not None and now + CLOCK_SKEW < not_before:
        raise StsRefusal(
            "ExpiredTokenException",
            "Token expired",
            400,
            check="time_window",
            detail=f"the assertion is not valid before {not_before.isoformat()}",
        )
    if not ends:
        raise _invalid("time_window", "the assertion has no NotOnOrAfter")
    if now - CLOCK_SKEW >= min(ends):
        raise StsRefusal(
            "ExpiredTokenException",
            "Token expired",
            400,
            check="time_window",
            detail=f"the assertion expired at {min(ends).isoformat()}",
        )


def check_saml_assertion(
    *,
    saml_response: str,
    role_arn: str,
    principal_arn: str,
    provider_metadata: str | None,
    role: RoleFacts | None,
    now: dt.datetime | None = None,
) -> SamlClaims:
    """Raise the error real STS answers with (a StsRefusal naming the failed check), or return
    what the signed assertion claims. The checks, in this order, are STS's documented ones (IAM
    User Guide, "Configure SAML assertions for the authentication response" and "Troubleshoot
    SAML 2.0 federation with AWS"; STS API reference, AssumeRoleWithSAML)."""
    now = now or dt.datetime.now(dt.UTC)
    if provider_metadata is None:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Specified provider doesn't exist",
            400,
            check="saml_provider",
            detail=f"IAM has no SAML provider {principal_arn}",
        )
    if not MIN_ASSERTION_CHARS <= len(saml_response) <= MAX_ASSERTION_CHARS:
        raise _invalid(
            "response",
            f"SAMLAssertion is {len(saml_response)} characters; STS takes "
            f"{MIN_ASSERTION_CHARS} to {MAX_ASSERTION_CHARS}",
        )
    try:
        document = base64.b64decode(saml_response, validate=True)
        response = etree.fromstring(document, parser=SAFE_PARSER)
    except (binascii.Error, ValueError, etree.XMLSyntaxError) as error:
        raise _invalid("response", f"SAMLAssertion is not base64 XML: {error}") from error
    if response.tag != f"{{{SAML_PROTOCOL}}}Response":
        raise _invalid("response", f"the root element is {response.tag}, not samlp:Response")

    assertion = _signed_assertion(response, _signing_certificates(provider_metadata))
    saml = f"{{{SAML_ASSERTION}}}"
    # "Issuer not present in specified provider": the Issuer must be the entityID of the
    # provider's metadata (IAM User Guide, SAML troubleshooting).
    issuer = (assertion.findtext(saml + "Issuer") or "").strip()
    entity_id = _metadata_entity_id(provider_metadata)
    if issuer != entity_id:
        raise StsRefusal(
            "InvalidIdentityToken",
            "Issuer not present in specified provider",
            400,
            check="issuer",
            detail=(
                f"the assertion's Issuer {issuer!r} is not the provider's entityID {entity_id!r}"
            ),
        )
    # Audience: "https://signin.aws.amazon.com/saml" (or a regional sign-in endpoint, or the
    # older urn:amazon:webservices) in an AudienceRestriction ("Configure SAML assertions").
    audiences = [(element.text or "").strip() for element in assertion.iter(saml + "Audience")]
    if not any(_is_signin_url(a) or a == AWS_URN for a in audiences):
        raise _invalid(
            "audience",
            f"the assertion's audiences {audiences!r} name no AWS sign-in endpoint",
        )
    # Recipient: the bearer SubjectConfirmationData's Recipient is the sign-in URL the response
    # is posted to; it is SAML:aud in a trust policy ("Available keys for SAML-based
    # federation").
    bearer = _bearer_data(assertion)
    recipient = "" if bearer is None else bearer.get("Recipient", "")
    if not _is_signin_url(recipient):
        raise _invalid(
            "recipient", f"the assertion's Recipient {recipient!r} is not an AWS sign-in URL"
        )
    _check_time_window(assertion, now)

    attributes = _attributes(assertion)
    session_names = attributes.get(ROLE_SESSION_NAME_ATTRIBUTE, [])
    if not session_names:
        raise _invalid(
            "role_session_name",
            "the assertion has no RoleSessionName attribute",
            "RoleSessionName is required in AuthnResponse",
        )
    if len(session_names) != 1 or not ROLE_SESSION_NAME.fullmatch(session_names[0]):
        raise _invalid(
            "role_session_name",
            f"RoleSessionName {session_names!r} is not one value of [a-zA-Z_0-9+=,.@-]{{2,64}}",
            "RoleSessionName in AuthnResponse must match [a-zA-Z_0-9+=,.@-]{2,64}",
        )
    pairs = [
        {part.strip() for part in value.split(",")} for value in attributes.get(ROLE_ATTRIBUTE, [])
    ]
    if role is None or {role_arn, principal_arn} not in pairs:
        raise StsRefusal(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithSAML",
            403,
            check="role",
            detail=(
                f"role {role_arn} does not exist (names are case-sensitive)"
                if role is None
                else f"the signed Role attribute does not pair {role_arn} with {principal_arn}"
            ),
        )
    subject = (assertion.findtext(f"{saml}Subject/{saml}NameID") or "").strip()
    trust = decide(
        [("the trust policy", role.trust_policy)],
        Ask(
            action="sts:AssumeRoleWithSAML",
            principal=("Federated", principal_arn),
            keys={"SAML:aud": recipient, "SAML:iss": issuer, "SAML:sub": subject},
        ),
    )
    if not trust.allowed:
        raise StsRefusal(
            "AccessDenied",
            "Not authorized to perform sts:AssumeRoleWithSAML",
            403,
            check="trust_policy",
            detail=(
                f"the trust policy of {role.arn} does not let Federated {principal_arn} do "
                f"sts:AssumeRoleWithSAML with SAML:aud {recipient}: {trust.why}"
            ),
        )
    duration = DEFAULT_SESSION_S
    if attributes.get(SESSION_DURATION_ATTRIBUTE):
        value = attributes[SESSION_DURATION_ATTRIBUTE][0]
        if not value.isdigit() or not MIN_SESSION_S <= int(value) <= MAX_SESSION_S:
            raise _invalid(
                "session_duration",
                f"SessionDuration {value!r} is not {MIN_SESSION_S} to {MAX_SESSION_S} seconds",
            )
        duration = int(value)
        if duration > role.max_session_duration_s:
            raise StsRefusal(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
                400,
                check="session_duration",
                detail=(
                    f"SessionDuration {duration} is above the role's maximum session duration "
                    f"{role.max_session_duration_s}"
                ),
            )
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
