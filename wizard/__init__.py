"""The Connect SSO wizard: Django project and web app."""

from wizard.celery import app as celery_app

__all__ = ["celery_app"]
