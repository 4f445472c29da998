"""The IdP groups a users change set read its people from."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("wizard", "0005_user_changes_and_syncs")]

    operations = [
        migrations.AddField(
            model_name="userchangeset",
            name="group_ids",
            field=models.JSONField(blank=True, default=list),
        ),
    ]
