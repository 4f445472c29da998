"""The Celery app: settings come from Django's (CELERY_*), tasks from wizard/tasks.py."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wizard.settings")

app = Celery("wizard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["wizard"])
