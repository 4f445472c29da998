"""`python manage.py ensure_admin`: create the first admin login when there is none."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from wizard.roles import ADMIN, role_group

# Long enough for a password nobody types twice; it is shown once and can be changed afterwards.
GENERATED_PASSWORD_BYTES = 18


class Command(BaseCommand):
    help = (
        "Create the first admin (user name 'admin' by default) if no superuser exists, and put "
        "the first admin login in the admin role."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("ADMIN_USERNAME", "admin"))

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        first = users.objects.filter(is_superuser=True).order_by("date_joined", "pk").first()
        if first is not None:
            # A login made before roles existed joins the admin group, so the People page lists
            # it as an admin.
            first.groups.add(role_group(ADMIN))
            self.stdout.write("An admin login already exists; nothing to do.")
            return
        password = os.environ.get("ADMIN_PASSWORD") or secrets.token_urlsafe(
            GENERATED_PASSWORD_BYTES
        )
        admin = users.objects.create_superuser(
            username=options["username"], email="", password=password
        )
        admin.groups.add(role_group(ADMIN))
        self.stdout.write(self.style.SUCCESS("Created the first admin login."))
        self.stdout.write(f"  user name: {options['username']}")
        if os.environ.get("ADMIN_PASSWORD"):
            self.stdout.write("  password:  the value of ADMIN_PASSWORD")
        else:
            # Printed once, to the terminal of the person who ran `make run`; never logged.
            self.stdout.write(f"  password:  {password}")
            self.stdout.write("  (shown only now: write it down or change it after signing in)")
