"""The wizard's Django app: loads the step modules at startup so their steps and flows register."""

from __future__ import annotations

from django.apps import AppConfig


class WizardConfig(AppConfig):
    name = "wizard"
    verbose_name = "Connect SSO wizard"

    def ready(self) -> None:
        from provisioning.runner import import_step_modules

        import_step_modules()
