"""Redaction: values under secret-looking keys and registered secret values masked in audit
summaries, step outputs, log lines and tracebacks; long summaries cut, step outputs kept whole."""

from __future__ import annotations

import datetime
import logging
import uuid

from provisioning import redaction


def test_it_masks_values_under_secret_keys_at_any_depth() -> None:
    redacted = redaction.redact(
        {
            "Password": "p",
            "client_secret": "s",
            "SecretAccessKey": "k",
            "headers": {"Authorization": "SSWS 00abc", "x-api-key": "k"},
            "SAMLResponse": "PHNhbWw+",
            "private key": "-----BEGIN PRIVATE KEY-----",
            "items": [{"sessionToken": "t"}],
            "ClientToken": "run-123-create-instance",
            "NextToken": "page-2",
            "RoleName": "ConnectSSO",
        }
    )

    assert redacted == {
        "Password": "***",
        "client_secret": "***",
        "SecretAccessKey": "***",
        "headers": {"Authorization": "***", "x-api-key": "***"},
        "SAMLResponse": "***",
        "private key": "***",
        "items": [{"sessionToken": "***"}],
        "ClientToken": "run-123-create-instance",
        "NextToken": "page-2",
        "RoleName": "ConnectSSO",
    }


def test_it_masks_registered_secret_values_wherever_they_appear() -> None:
    secret = f"canary-{uuid.uuid4()}"
    redaction.register_secret_values([secret, "", None])

    redacted = redaction.redact(
        {"note": f"sent {secret} to the IdP", "list": [secret], "k": secret}
    )

    assert redacted == {"note": "sent *** to the IdP", "list": ["***"], "k": "***"}
    assert redaction.redact_text(f"Bearer abcdefgh12345 and {secret}") == "Bearer *** and ***"


def test_it_turns_sdk_values_into_json() -> None:
    moment = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    redacted = redaction.redact({"CreateDate": moment, "Body": b"\x00\x01", "Tags": ("a", "b")})

    assert redacted == {
        "CreateDate": "2026-01-02T03:04:05+00:00",
        "Body": "<2 bytes>",
        "Tags": ["a", "b"],
    }
    assert len(redaction.redact("x" * 10_000)) < 4100


def test_it_masks_registered_secrets_in_log_lines_and_tracebacks() -> None:
    secret = f"canary-{uuid.uuid4()}"
    redaction.register_secret_values([secret])
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "using %s", (secret,), None)
    try:
        raise ValueError(f"refused {secret}")
    except ValueError as error:
        record.exc_info = (type(error), error, error.__traceback__)

    assert redaction.RedactSecretsFilter().filter(record) is True

    formatted = logging.Formatter().format(record)
    assert secret not in formatted
    assert "using ***" in formatted
    assert "refused ***" in formatted


def test_it_truncates_audit_summaries_but_keeps_step_outputs_whole() -> None:
    # Entra's federation metadata is about 6 KB; saml_provider reads it from the IdP step's outputs.
    metadata = (
        "<md:EntityDescriptor>" + "x" * (redaction.MAX_TEXT_CHARS * 2) + "</md:EntityDescriptor>"
    )
    redaction.register_secret_values(["canary-secret-in-metadata"])
    outputs = {"metadata_xml": metadata + "canary-secret-in-metadata"}

    kept = redaction.redact(outputs, truncate=False)["metadata_xml"]
    summary = redaction.redact(outputs)["metadata_xml"]

    assert kept == metadata + redaction.REDACTED
    assert len(summary) < len(metadata)
    assert summary.startswith("<md:EntityDescriptor>")
