"""Reads an IdP's SAML response and checks it as AWS sign-in does: XML, signature, audience,
recipient, validity window and the AWS claims (Role pairs, RoleSessionName)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from cryptography import x509
from defusedxml.common import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring
from django.utils.translation import gettext_noop
from lxml import etree
from signxml import InvalidInput, InvalidSignature, SignatureConfiguration, XMLVerifier
from signxml.exceptions import InvalidCertificate, InvalidDigest

from provisioning.messages import Message
from provisioning.signin_checks.refusals import (
    INVALID_SAML_RESPONSE,
    ISSUER_NOT_IN_PROVIDER,
    ROLE_SESSION_NAME_PATTERN,
    ROLE_SESSION_NAME_REQUIRED,
    Cause,
    SignInRefused,
)

SAML_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML_METADATA = "urn:oasis:names:tc:SAML:2.0:metadata"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
ROLE_SESSION_NAME_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
_NS = {"samlp": SAML_PROTOCOL, "saml": SAML_ASSERTION, "md": SAML_METADATA, "ds": XMLDSIG}

# Real responses are a few kilobytes; Entra's with hundreds of group claims stay well under this.
MAX_SAML_RESPONSE_BYTES = 256 * 1024
# The clock skew allowed on NotBefore/NotOnOrAfter: the same 5 minutes as the sandbox's STS
# (sandbox/aws/sts_saml.py), so the sign-in page and STS never disagree about a response's age.
CLOCK_SKEW = dt.timedelta(minutes=5)
# The audiences AWS sign-in accepts (IAM User Guide, "Configure SAML assertions for the
# authentication response"): the global and regional endpoints, and the legacy URN.
AWS_SIGNIN_GLOBAL_URL = "https://signin.aws.amazon.com/saml"
AWS_SIGNIN_URN = "urn:amazon:webservices"
_REGIONAL_SIGNIN_URL = re.compile(
    r"https://[a-z]{2}(-gov)?-[a-z]+-\d\.signin\.aws\.amazon\.com/saml"
)
# STS's RoleSessionName rule, ASCII only (\w in Python would also take Unicode letters).
ROLE_SESSION_NAME_RULE = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
ROLE_ARN_RULE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}")
PROVIDER_ARN_RULE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:saml-provider/[A-Za-z0-9_.-]{1,128}")


@dataclass(frozen=True)
class RolePair:
    """One value of the Role attribute: the role to assume and the IAM SAML provider vouching."""

    role_arn: str
    provider_arn: str


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    signing_certificates: tuple[str, ...]  # PEM


@dataclass(frozen=True)
class CheckedAssertion:
    """What AWS takes from a verified assertion."""

    issuer: str
    audience: str
    recipient: str
    role_pair: RolePair
    role_session_name: str


def _invalid(check: str, detail: Message, error: str = INVALID_SAML_RESPONSE) -> SignInRefused:
    return SignInRefused(cause=Cause.INVALID_SAML_RESPONSE, check=check, detail=detail, error=error)


def refusal_reason(exc: ValueError) -> Message | str:
    """Why parse_untrusted_xml refused a document: its Message (to render in the reader's
    language), or the text of another ValueError."""
    reason = exc.args[0] if exc.args else ""
    return reason if isinstance(reason, Message) else str(exc)


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
    )


def parse_untrusted_xml(xml: bytes) -> etree._Element:
    """Parses XML from outside: no DTD, no entities, no network, no huge trees. defusedxml reads it
    first and refuses the known XML attacks; lxml then parses it for the signature check."""
    try:
        defused_fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        refused = type(exc).__name__
        raise ValueError(
            Message(
                gettext_noop("XML with a DOCTYPE or entities is refused (%(refused)s)"),
                {"refused": refused},
            )
        ) from exc
    except ParseError as exc:
        raise ValueError(_not_well_formed(exc)) from exc
    try:
        root = etree.fromstring(xml, parser=_hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise ValueError(_not_well_formed(exc)) from exc
    docinfo = etree.ElementTree(root).docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError(Message(gettext_noop("XML with a DOCTYPE is refused")))
    if any(True for _ in root.iter(etree.Entity)):
        raise ValueError(Message(gettext_noop("XML with entities is refused")))
    return root


def _not_well_formed(exc: Exception) -> Message:
    return Message(gettext_noop("not well-formed XML: %(error)s"), {"error": str(exc)})


def decode_saml_response(form_value: str) -> bytes:
    """The SAMLResponse form field, base64-decoded, within the size limit."""
    if not form_value:
        raise _invalid("form", Message(gettext_noop("the POST has no SAMLResponse field")))
    if len(form_value) > MAX_SAML_RESPONSE_BYTES * 4 // 3 + 4:
        raise _invalid(
            "form",
            Message(
                gettext_noop("SAMLResponse is larger than %(limit)d bytes"),
                {"limit": MAX_SAML_RESPONSE_BYTES},
            ),
        )
    try:
        return base64.b64decode("".join(form_value.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _invalid("form", Message(gettext_noop("SAMLResponse is not base64"))) from exc


def parse_saml_response(xml: bytes) -> etree._Element:
    """The samlp:Response element, holding exactly one plain (unencrypted) Assertion."""
    try:
        response = parse_untrusted_xml(xml)
    except ValueError as exc:
        raise _invalid(
            "xml",
            Message(
                gettext_noop("SAMLResponse is not acceptable XML: %(reason)s"),
                {"reason": refusal_reason(exc)},
            ),
        ) from exc
    if response.tag != f"{{{SAML_PROTOCOL}}}Response":
        raise _invalid(
            "xml",
            Message(
                gettext_noop("the root element is %(tag)s, not samlp:Response"),
                {"tag": response.tag},
            ),
        )
    if response.findall(".//saml:EncryptedAssertion", _NS):
        raise _invalid(
            "xml",
            Message(
                gettext_noop(
                    "the assertion is encrypted; the sandbox's IAM providers have no decryption "
                    "key, turn assertion encryption off in the IdP"
                )
            ),
        )
    assertions = response.findall(".//saml:Assertion", _NS)
    if len(assertions) != 1:
        raise _invalid(
            "xml",
            Message.counted(
                gettext_noop("the response holds %(count)d assertion, not exactly one"),
                gettext_noop("the response holds %(count)d assertions, not exactly one"),
                len(assertions),
                {"count": len(assertions)},
            ),
        )
    status = response.find("samlp:Status/samlp:StatusCode", _NS)
    if status is None or status.get("Value") != STATUS_SUCCESS:
        value = None if status is None else status.get("Value")
        raise _invalid(
            "status",
            Message(
                gettext_noop("the IdP's response status is %(value)s, not Success"),
                {"value": str(value)},
            ),
        )
    return response


def attribute_values(assertion: etree._Element, name: str) -> list[str] | None:
    """The values of the attribute named exactly `name`, None when it is absent."""
    attributes = assertion.findall(f"saml:AttributeStatement/saml:Attribute[@Name='{name}']", _NS)
    if not attributes:
        return None
    return [
        (value.text or "").strip()
        for attribute in attributes
        for value in attribute.findall("saml:AttributeValue", _NS)
    ]


def _near_misses(assertion: etree._Element, name: str) -> list[str]:
    """Attribute names that differ from `name` only in case or a trailing slash: the usual typo."""
    wanted = name.lower().rstrip("/")
    return [
        found
        for attribute in assertion.findall("saml:AttributeStatement/saml:Attribute", _NS)
        if (found := attribute.get("Name", "")) != name and found.lower().rstrip("/") == wanted
    ]


def _missing_claim_detail(assertion: etree._Element, name: str) -> Message:
    misses = _near_misses(assertion, name)
    if misses:
        return Message(
            gettext_noop(
                "no attribute named exactly %(name)s; found %(found)s (names are case-sensitive)"
            ),
            {"name": name, "found": ", ".join(misses)},
        )
    return Message(gettext_noop("no attribute named %(name)s"), {"name": name})


def parse_role_pair(value: str) -> RolePair | None:
    """`roleArn,providerArn` in either order, as AWS accepts; no spaces around the comma."""
    parts = value.split(",")
    if len(parts) != 2:
        return None
    for role_arn, provider_arn in (parts, parts[::-1]):
        if ROLE_ARN_RULE.fullmatch(role_arn) and PROVIDER_ARN_RULE.fullmatch(provider_arn):
            return RolePair(role_arn=role_arn, provider_arn=provider_arn)
    return None


def role_pairs(assertion: etree._Element) -> list[RolePair]:
    """The Role attribute's well-formed pairs, in order; refuses if there are none."""
    values = attribute_values(assertion, ROLE_ATTRIBUTE)
    if values is None:
        raise _invalid("role_attribute", _missing_claim_detail(assertion, ROLE_ATTRIBUTE))
    pairs = [pair for value in values if (pair := parse_role_pair(value)) is not None]
    if not pairs:
        raise _invalid(
            "role_attribute",
            Message(
                gettext_noop(
                    "the Role attribute holds no 'roleArn,providerArn' pair (values: %(values)s)"
                ),
                {"values": repr(values)},
            ),
        )
    return pairs


def choose_role_pair(pairs: Sequence[RolePair], chosen_role_arn: str | None) -> RolePair:
    """AWS shows a role picker when there are several; the sandbox takes the `role` form field's
    choice, else the first pair."""
    if not chosen_role_arn:
        return pairs[0]
    for pair in pairs:
        if pair.role_arn == chosen_role_arn:
            return pair
    raise _invalid(
        "role_attribute",
        Message(
            gettext_noop("the chosen role %(role)s is not in the Role attribute"),
            {"role": chosen_role_arn},
        ),
    )


def assertion_of(response: etree._Element) -> etree._Element:
    return response.findall(".//saml:Assertion", _NS)[0]


def parse_idp_metadata(metadata_xml: str) -> IdpMetadata:
    """The entityID and signing certificates of an IAM SAML provider's metadata document."""
    root = parse_untrusted_xml(metadata_xml.encode())
    descriptor = root if root.tag == f"{{{SAML_METADATA}}}EntityDescriptor" else None
    if descriptor is None:
        descriptor = root.find(".//md:EntityDescriptor", _NS)
    if descriptor is None:
        raise ValueError(Message(gettext_noop("metadata has no EntityDescriptor")))
    certificates: list[str] = []
    for key in descriptor.findall("md:IDPSSODescriptor/md:KeyDescriptor", _NS):
        if key.get("use", "signing") != "signing":
            continue
        for cert in key.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
            body = "".join((cert.text or "").split())
            if body:
                lines = [body[i : i + 64] for i in range(0, len(body), 64)]
                certificates.append(
                    "-----BEGIN CERTIFICATE-----\n"
                    + "\n".join(lines)
                    + "\n-----END CERTIFICATE-----\n"
                )
    return IdpMetadata(
        entity_id=descriptor.get("entityID", ""), signing_certificates=tuple(certificates)
    )


def verify_signed_assertion(xml: bytes, metadata: IdpMetadata) -> etree._Element:
    """The Assertion as signed by one of the provider's certificates (signed directly, or through
    a signed Response). Only what this returns may be trusted: it is what the signature covers."""
    response = parse_saml_response(xml)
    assertion = assertion_of(response)
    if assertion.find("ds:Signature", _NS) is not None:
        location = f"./{{{SAML_ASSERTION}}}Assertion/"
    elif response.find("ds:Signature", _NS) is not None:
        location = "./"
    else:
        raise _invalid(
            "signature", Message(gettext_noop("neither the Response nor the Assertion is signed"))
        )
    if not metadata.signing_certificates:
        raise _invalid(
            "signature",
            Message(gettext_noop("the IAM SAML provider's metadata has no signing certificate")),
        )
    failures: list[str] = []
    altered = False
    for certificate in metadata.signing_certificates:
        # AWS verifies with the key alone: "IAM does not evaluate or take action on the
        # expiration of ... X.509 certificates in SAML metadata documents during SAML
        # authentication" (IAM User Guide, "Create a SAML identity provider in IAM"). signxml
        # refuses a certificate outside its dates at verification_time (now by default), so it
        # is asked at the certificate's first valid moment.
        try:
            valid_from = x509.load_pem_x509_certificate(certificate.encode()).not_valid_before_utc
        except ValueError as exc:
            failures.append(str(exc))
            continue
        config = SignatureConfiguration(location=location, verification_time=valid_from)
        try:
            result = XMLVerifier().verify(xml, x509_cert=certificate, expect_config=config)
        except InvalidDigest as exc:
            # The key is right (SignedInfo verified) but the signed content changed.
            altered = True
            failures.append(str(exc))
            continue
        except (InvalidSignature, InvalidCertificate, InvalidInput) as exc:
            failures.append(str(exc).rstrip(": ") or type(exc).__name__)
            continue
        signed = result.signed_xml  # type: ignore[union-attr]
        if signed is not None and signed.tag == f"{{{SAML_PROTOCOL}}}Response":
            signed_assertions = signed.findall(".//saml:Assertion", _NS)
            signed = signed_assertions[0] if len(signed_assertions) == 1 else None
        if signed is None or signed.tag != f"{{{SAML_ASSERTION}}}Assertion":
            failures.append("the signature does not cover the assertion")
            continue
        return signed
    if altered:
        reason = Message(gettext_noop("the response was changed after the IdP signed it"))
    else:
        reason = Message(
            gettext_noop(
                "it is signed with a key that is not among the IAM SAML provider's signing "
                "certificates: upload the IdP's current metadata to the provider"
            )
        )
    raise _invalid(
        "signature",
        Message(
            gettext_noop("the signature does not verify: %(reason)s (%(failures)s)"),
            {"reason": reason, "failures": "; ".join(failures)},
        ),
    )


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def is_aws_signin_url(url: str) -> bool:
    return url == AWS_SIGNIN_GLOBAL_URL or _REGIONAL_SIGNIN_URL.fullmatch(url) is not None


def check_assertion(
    assertion: etree._Element,
    *,
    response_destination: str | None,
    metadata: IdpMetadata,
    role_pair: RolePair,
    now: dt.datetime,
) -> CheckedAssertion:
    """Issuer, audience, recipient, validity window and RoleSessionName of a verified assertion."""
    issuer = assertion_issuer(assertion, metadata)
    audience = assertion_audience(assertion)
    recipient = assertion_recipient(assertion, response_destination)
    check_validity_window(assertion, now)
    return CheckedAssertion(
        issuer=issuer,
        audience=audience,
        recipient=recipient,
        role_pair=role_pair,
        role_session_name=assertion_role_session_name(assertion),
    )


def assertion_issuer(assertion: etree._Element, metadata: IdpMetadata) -> str:
    issuer = (assertion.findtext("saml:Issuer", default="", namespaces=_NS) or "").strip()
    if issuer != metadata.entity_id:
        raise _invalid(
            "issuer",
            Message(
                gettext_noop(
                    "the assertion's Issuer %(issuer)s is not the IAM SAML provider's entityID "
                    "%(entity_id)s: the provider holds another app's metadata"
                ),
                {"issuer": repr(issuer), "entity_id": repr(metadata.entity_id)},
            ),
            error=ISSUER_NOT_IN_PROVIDER,
        )
    return issuer


def assertion_audience(assertion: etree._Element) -> str:
    audiences = [
        (a.text or "").strip()
        for a in assertion.findall("saml:Conditions/saml:AudienceRestriction/saml:Audience", _NS)
    ]
    audience = next((a for a in audiences if is_aws_signin_url(a) or a == AWS_SIGNIN_URN), None)
    if audience is None:
        raise _invalid(
            "audience",
            Message(
                gettext_noop(
                    "the assertion's audience %(audiences)s is not %(url)s (or the regional "
                    "https://<region>.signin.aws.amazon.com/saml, or %(urn)s); set the IdP app's "
                    "identifier (entity ID) to it"
                ),
                {"audiences": repr(audiences), "url": AWS_SIGNIN_GLOBAL_URL, "urn": AWS_SIGNIN_URN},
            ),
        )
    return audience


def _bearer_confirmation(assertion: etree._Element) -> etree._Element | None:
    return assertion.find(
        "saml:Subject/saml:SubjectConfirmation[@Method='urn:oasis:names:tc:SAML:2.0:cm:bearer']"
        "/saml:SubjectConfirmationData",
        _NS,
    )


def assertion_recipient(assertion: etree._Element, response_destination: str | None) -> str:
    confirmation = _bearer_confirmation(assertion)
    recipient = "" if confirmation is None else confirmation.get("Recipient", "")
    if not is_aws_signin_url(recipient):
        raise _invalid(
            "recipient",
            Message(
                gettext_noop(
                    "the assertion's Recipient %(recipient)s is not an AWS sign-in URL; set the "
                    "IdP app's reply URL (ACS URL) to %(url)s or the regional one"
                ),
                {"recipient": repr(recipient), "url": AWS_SIGNIN_GLOBAL_URL},
            ),
        )
    if response_destination and not is_aws_signin_url(response_destination):
        raise _invalid(
            "recipient",
            Message(
                gettext_noop(
                    "the response's Destination %(destination)s is not an AWS sign-in URL"
                ),
                {"destination": repr(response_destination)},
            ),
        )
    return recipient


def assertion_role_session_name(assertion: etree._Element) -> str:
    names = attribute_values(assertion, ROLE_SESSION_NAME_ATTRIBUTE)
    if not names:
        raise _invalid(
            "role_session_name",
            _missing_claim_detail(assertion, ROLE_SESSION_NAME_ATTRIBUTE),
            error=ROLE_SESSION_NAME_REQUIRED,
        )
    if not ROLE_SESSION_NAME_RULE.fullmatch(names[0]):
        raise _invalid(
            "role_session_name",
            Message(
                gettext_noop("RoleSessionName %(name)s breaks STS's rule %(rule)s"),
                {"name": repr(names[0]), "rule": "[a-zA-Z_0-9+=,.@-]{2,64}"},
            ),
            error=ROLE_SESSION_NAME_PATTERN,
        )
    return names[0]


def check_validity_window(assertion: etree._Element, now: dt.datetime) -> str:
    """The NotBefore/NotOnOrAfter window, with AWS's clock skew; says when it ends."""
    confirmation = _bearer_confirmation(assertion)
    conditions = assertion.find("saml:Conditions", _NS)
    try:
        not_before = _instant(None if conditions is None else conditions.get("NotBefore"))
        not_on_or_after = [
            moment
            for moment in (
                _instant(None if conditions is None else conditions.get("NotOnOrAfter")),
                _instant(None if confirmation is None else confirmation.get("NotOnOrAfter")),
            )
            if moment is not None
        ]
    except ValueError as exc:
        raise _invalid(
            "time_window",
            Message(
                gettext_noop("a validity time is not an xs:dateTime: %(error)s"),
                {"error": str(exc)},
            ),
        ) from exc
    if not_before is not None and now + CLOCK_SKEW < not_before:
        raise _invalid(
            "time_window",
            Message(
                gettext_noop(
                    "the assertion is not valid before %(not_before)s (now %(now)s): check the "
                    "IdP's clock"
                ),
                {"not_before": not_before.isoformat(), "now": now.isoformat()},
            ),
        )
    if not not_on_or_after:
        raise _invalid("time_window", Message(gettext_noop("the assertion has no NotOnOrAfter")))
    expiry = min(not_on_or_after)
    if now - CLOCK_SKEW >= expiry:
        raise _invalid(
            "time_window",
            Message(
                gettext_noop(
                    "the assertion expired at %(expiry)s (now %(now)s); sign in again from the IdP"
                ),
                {"expiry": expiry.isoformat(), "now": now.isoformat()},
            ),
        )
    return expiry.isoformat()


def claimed_role_pair(xml: bytes, chosen_role_arn: str = "") -> RolePair:
    """The role pair the (not yet trusted) response claims: it names the IAM SAML provider whose
    certificates the signature must verify against, as at AWS."""
    return choose_role_pair(role_pairs(assertion_of(parse_saml_response(xml))), chosen_role_arn)


def check_saml_response(
    xml: bytes,
    metadata: IdpMetadata,
    *,
    claimed: RolePair,
    chosen_role_arn: str = "",
    now: dt.datetime,
) -> CheckedAssertion:
    """Every check AWS sign-in makes on the response itself, reading only the signed assertion."""
    response = parse_saml_response(xml)
    signed = verify_signed_assertion(xml, metadata)
    pair = choose_role_pair(role_pairs(signed), chosen_role_arn)
    if pair != claimed:
        raise _invalid(
            "signature",
            Message(
                gettext_noop(
                    "the Role attribute outside the signed assertion is not the signed one"
                )
            ),
        )
    return check_assertion(
        signed,
        response_destination=response.get("Destination"),
        metadata=metadata,
        role_pair=pair,
        now=now,
    )
