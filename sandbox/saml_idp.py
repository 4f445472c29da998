"""What the sandbox IdPs share: signing certificates, IdP metadata and signed SAML responses."""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods

SAML_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion"
SAML_METADATA = "urn:oasis:names:tc:SAML:2.0:metadata"
XMLDSIG = "http://www.w3.org/2000/09/xmldsig#"
ROLE_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/Role"
ROLE_SESSION_NAME_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/RoleSessionName"
SESSION_DURATION_ATTRIBUTE = "https://aws.amazon.com/SAML/Attributes/SessionDuration"


@dataclass(frozen=True)
class SigningCertificate:
    cert_pem: str
    key_pem: str
    thumbprint: str  # SHA-1 of the DER, upper-case hex, as Entra reports it
    not_after: dt.datetime

    @property
    def cert_base64(self) -> str:
        """The certificate body as it appears in metadata's <X509Certificate>."""
        der = x509.load_pem_x509_certificate(self.cert_pem.encode()).public_bytes(
            serialization.Encoding.DER
        )
        return base64.b64encode(der).decode()


def issue_signing_certificate(
    common_name: str, *, not_after: dt.datetime | None = None, key_size: int = 2048
) -> SigningCertificate:
    """A self-signed RSA certificate, as Entra and Okta issue for a SAML app."""
    now = dt.datetime.now(dt.UTC)
    not_after = not_after or now + dt.timedelta(days=3 * 365)
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name.removeprefix("CN="))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return SigningCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's format
        not_after=cert.not_valid_after_utc,
    )


def idp_metadata(*, entity_id: str, certificate: SigningCertificate, sso_url: str) -> str:
    """SAML 2.0 IdP metadata: an EntityDescriptor with an IDPSSODescriptor and its signing key."""
    md = f"{{{SAML_METADATA}}}"
    ds = f"{{{XMLDSIG}}}"
    root = etree.Element(
        md + "EntityDescriptor",
        nsmap={"md": SAML_METADATA, "ds": XMLDSIG},
        entityID=entity_id,
        ID="_" + uuid.uuid4().hex,
    )
    idp = etree.SubElement(
        root,
        md + "IDPSSODescriptor",
        protocolSupportEnumeration=SAML_PROTOCOL,
        WantAuthnRequestsSigned="false",
    )
    key_descriptor = etree.SubElement(idp, md + "KeyDescriptor", use="signing")
    key_info = etree.SubElement(key_descriptor, ds + "KeyInfo")
    x509_data = etree.SubElement(key_info, ds + "X509Data")
    etree.SubElement(x509_data, ds + "X509Certificate").text = certificate.cert_base64
    for name_id_format in (
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ):
        etree.SubElement(idp, md + "NameIDFormat").text = name_id_format
    for binding in ("HTTP-Redirect", "HTTP-POST"):
        etree.SubElement(
            idp,
            md + "SingleSignOnService",
            Binding=f"urn:oasis:names:tc:SAML:2.0:bindings:{binding}",
            Location=sso_url,
        )
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signed_saml_response(
    *,
    issuer: str,
    audience: str,
    recipient: str,
    name_id: str,
    attributes: dict[str, list[str]],
    certificate: SigningCertificate,
    now: dt.datetime | None = None,
    lifetime: dt.timedelta = dt.timedelta(minutes=5),
) -> str:
    """A SAML 2.0 Response whose Assertion is signed (enveloped, RSA-SHA256), base64-encoded as an
    IdP posts it in the SAMLResponse form field."""
    now = now or dt.datetime.now(dt.UTC)
    samlp = f"{{{SAML_PROTOCOL}}}"
    saml = f"{{{SAML_ASSERTION}}}"
    nsmap = {"samlp": SAML_PROTOCOL, "saml": SAML_ASSERTION}
    response = etree.Element(
        samlp + "Response",
        nsmap=nsmap,
        ID="_" + uuid.uuid4().hex,
        Version="2.0",
        IssueInstant=_instant(now),
        Destination=recipient,
    )
    etree.SubElement(response, saml + "Issuer").text = issuer
    status = etree.SubElement(response, samlp + "Status")
    etree.SubElement(
        status, samlp + "StatusCode", Value="urn:oasis:names:tc:SAML:2.0:status:Success"
    )

    assertion_id = "_" + uuid.uuid4().hex
    # Built detached and signed before it joins the Response, so the digest covers exactly the
    # Assertion as a verifier will canonicalise it.
    assertion = etree.Element(
        saml + "Assertion",
        nsmap={"saml": SAML_ASSERTION, "ds": XMLDSIG},
        ID=assertion_id,
        Version="2.0",
        IssueInstant=_instant(now),
    )
    etree.SubElement(assertion, saml + "Issuer").text = issuer
    # signxml puts the signature where this placeholder stands: right after Issuer, as the
    # SAML schema requires.
    etree.SubElement(assertion, f"{{{XMLDSIG}}}Signature", Id="placeholder")
    subject = etree.SubElement(assertion, saml + "Subject")
    etree.SubElement(
        subject,
        saml + "NameID",
        Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    ).text = name_id
    confirmation = etree.SubElement(
        subject, saml + "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"
    )
    etree.SubElement(
        confirmation,
        saml + "SubjectConfirmationData",
        NotOnOrAfter=_instant(now + lifetime),
        Recipient=recipient,
    )
    conditions = etree.SubElement(
        assertion,
        saml + "Conditions",
        NotBefore=_instant(now - dt.timedelta(minutes=1)),
        NotOnOrAfter=_instant(now + lifetime),
    )
    restriction = etree.SubElement(conditions, saml + "AudienceRestriction")
    etree.SubElement(restriction, saml + "Audience").text = audience
    authn = etree.SubElement(
        assertion, saml + "AuthnStatement", AuthnInstant=_instant(now), SessionIndex=assertion_id
    )
    context = etree.SubElement(authn, saml + "AuthnContext")
    etree.SubElement(
        context, saml + "AuthnContextClassRef"
    ).text = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    statement = etree.SubElement(assertion, saml + "AttributeStatement")
    for name, values in attributes.items():
        attribute = etree.SubElement(statement, saml + "Attribute", Name=name)
        for value in values:
            etree.SubElement(attribute, saml + "AttributeValue").text = value

    signed_assertion = XMLSigner(
        method=methods.enveloped,
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm="http://www.w3.org/2001/10/xml-exc-c14n#",
    ).sign(
        assertion,
        key=certificate.key_pem.encode(),
        cert=certificate.cert_pem,
        reference_uri=assertion_id,
    )
    response.append(signed_assertion)
    return base64.b64encode(etree.tostring(response)).decode()


def moved_in_time(certificate: SigningCertificate, not_after: dt.datetime) -> SigningCertificate:
    """The same certificate (key, subject, serial, lifetime) moved in time so that it ends at
    `not_after`: what the sandbox's certificate clock (Sandbox.move_certificate_clock) puts in
    place of it wherever it is held, as if the days between had passed. Only the dates, and so
    the DER and its thumbprint, change: what it signed still verifies with its key."""
    old = x509.load_pem_x509_certificate(certificate.cert_pem.encode())
    key = serialization.load_pem_private_key(certificate.key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    shift = not_after - old.not_valid_after_utc
    cert = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(old.issuer)
        .public_key(key.public_key())
        .serial_number(old.serial_number)
        .not_valid_before(old.not_valid_before_utc + shift)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return SigningCertificate(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=certificate.key_pem,
        thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's format
        not_after=cert.not_valid_after_utc,
    )
