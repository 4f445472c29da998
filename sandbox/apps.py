from django.apps import AppConfig


class SandboxConfig(AppConfig):
    name = "sandbox"
    verbose_name = "Local stand-ins for AWS, Entra ID and Okta"
