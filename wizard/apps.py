"""The wizard's Django app: loads the step modules at startup so their steps and flows register."""

from __future__ import annotations

from django.apps import AppConfig


class WizardConfig(AppConfig):
    name = "wizard"
    verbose_name = "Connect SSO wizard"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from provisioning.runs.runner import import_step_modules
        from wizard.roles import note_password_entered

        import_step_modules()
        # Signing in is typing the password: the risky actions don't ask again for a while.
        user_logged_in.connect(note_password_entered, dispatch_uid="wizard_password_entered")
