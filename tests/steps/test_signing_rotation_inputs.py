"""The rotation's app ID is typed by an admin (or a plan file) and goes into IdP API paths: its
form takes only what an Entra appId or an Okta app id looks like."""

from __future__ import annotations

import pytest

from provisioning.okta.aws_app import app_path
from provisioning.steps.inputs import StepInputError, clean_step_inputs
from provisioning.steps.signing_rotation import SigningCertificateNew


@pytest.mark.parametrize("app_id", ["0oa1b2c3d4e5f6g7h8i9", "5b1d8a3e-7c2f-4e6a-9b0d-1f2e3a4b5c6d"])
def test_it_takes_an_okta_or_entra_app_id(app_id: str) -> None:
    assert clean_step_inputs(SigningCertificateNew, {"app_id": app_id}) == {"app_id": app_id}


@pytest.mark.parametrize("app_id", ["0oa1/../../users", "0oa1?limit=200", "app id", "0oa1%2F"])
def test_it_refuses_an_app_id_that_would_change_the_path(app_id: str) -> None:
    with pytest.raises(StepInputError) as refused:
        clean_step_inputs(SigningCertificateNew, {"app_id": app_id})

    assert "An app ID is letters, digits and hyphens" in str(refused.value)


def test_an_okta_app_path_keeps_any_id_one_segment() -> None:
    assert app_path("0oa1b2c3") == "/api/v1/apps/0oa1b2c3"
    assert app_path("0oa1/../users") == "/api/v1/apps/0oa1%2F..%2Fusers"
