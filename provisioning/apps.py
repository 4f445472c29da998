"""The provisioning app: it owns the wizard's data (models and migrations) and the work on it.

The tables keep the names they had when the models lived in `wizard` (wizard_connection, ...):
the models moved by a state-only migration, the rows never did.
"""

from __future__ import annotations

from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    label = "provisioning"
    verbose_name = "Connect SSO provisioning"
