"""`manage.py rotate_encryption_keys`: re-encrypt every connection secret (and the notifications'
webhook URL) with the newest key.

Rotation: put a new key first in WIZARD_ENCRYPTION_KEYS (keep the old ones after it), restart,
run this command, then remove the old keys.
"""

from __future__ import annotations

from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from provisioning import secret_box
from provisioning.models import Connection, NotificationSettings


class Command(BaseCommand):
    help = "Re-encrypt every connection secret with the first key of WIZARD_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        rotated = 0
        with transaction.atomic():
            connections = Connection.objects.select_for_update().exclude(secret_ciphertext="")
            for connection in connections:
                try:
                    connection.secret_ciphertext = secret_box.rotate(connection.secret_ciphertext)
                except InvalidToken:
                    raise CommandError(
                        f"The secrets of “{connection}” can't be decrypted with any configured "
                        "key. Put its old key back in WIZARD_ENCRYPTION_KEYS (after the new one) "
                        "and run this again. Nothing was changed."
                    ) from None
                connection.save(update_fields=["secret_ciphertext", "updated_at"])
                rotated += 1
            # The notifications' webhook URL is kept the same way (its path is a credential).
            for notifications in NotificationSettings.objects.select_for_update().exclude(
                webhook_ciphertext=""
            ):
                try:
                    notifications.webhook_ciphertext = secret_box.rotate(
                        notifications.webhook_ciphertext
                    )
                except InvalidToken:
                    raise CommandError(
                        "The notifications' webhook URL can't be decrypted with any configured "
                        "key. Put its old key back in WIZARD_ENCRYPTION_KEYS (after the new one) "
                        "and run this again. Nothing was changed."
                    ) from None
                notifications.save(update_fields=["webhook_ciphertext", "updated_at"])
        self.stdout.write(
            f"Re-encrypted the secrets of {rotated} connection(s) with the newest key."
        )
