"""What the hand-made federation tests (test_hand_made_entra.py, test_hand_made_okta.py) share:
running `check_federation` against a built federation and reading its JSON result, and the
federation policy each builds on the instance's users."""

from __future__ import annotations

import json
from typing import Any

from tests.federation_check.test_check_federation import REGION, check

IDP_CONNECTIONS = {"entra": "Sandbox Entra ID", "okta": "Sandbox Okta"}


def check_args(idp: str, built: dict[str, Any], *extra: str) -> list[str]:
    """The arguments naming the sandbox's connections and the built federation's instance."""
    return [
        "--aws", "Sandbox AWS", "--region", REGION, "--instance", built["alias"],
        "--idp", IDP_CONNECTIONS[idp], *extra,
    ]  # fmt: skip


def check_json(idp: str, built: dict[str, Any], *extra: str) -> tuple[int, dict[str, Any]]:
    """The exit code and the parsed JSON result of checking the built federation; the result
    always names the app found, asserted to be the one built (`--app` only when given)."""
    code, output = check(*check_args(idp, built, *extra), "--json")
    try:
        result = json.loads(output)
    except ValueError as error:
        raise AssertionError(f"not JSON: {output}") from error
    assert result["app_id"] == built["app_id"], "the app built, found " + (
        "by --app" if "--app" in extra else "without --app"
    )
    return code, result


def link_states(result: dict[str, Any]) -> dict[str, str]:
    return {link["key"]: link["state"] for link in result["links"]}


def findings(result: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each finding's params by (link, code)."""
    return {(f["link"], f["code"]): f["params"] for f in result["findings"]}


def assert_healthy(code: int, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """No finding, exit code 0, all six links ok; the links by key."""
    assert result["findings"] == []
    assert code == 0
    assert list(link_states(result).values()) == ["ok"] * 6, result["links"]
    return {link["key"]: link for link in result["links"]}


def user_arn_policy(account: str, instance_id: str) -> str:
    """The federation policy seed 002 writes: GetFederationToken on the instance's
    user/${aws:userid} (Amazon Connect Administrator Guide, "Configure SAML with IAM")."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "connect:GetFederationToken",
                    "Resource": [
                        f"arn:aws:connect:{REGION}:{account}:instance/{instance_id}"
                        "/user/${aws:userid}"
                    ],
                }
            ],
        }
    )
