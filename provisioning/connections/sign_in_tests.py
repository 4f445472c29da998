"""A connection's test: sign in to its cloud and make one harmless read, in the worker, and keep
the result (ok, and a message the admin can act on) on the connection."""

from __future__ import annotations

import socket

from django.utils import timezone
from django.utils.translation import gettext

from provisioning.audit import AuditScope
from provisioning.errors import ProvisioningError
from provisioning.models import Cloud, Connection
from provisioning.secret_box import SecretUnreadable

# Where a test checks AWS credentials: STS answers GetCallerIdentity for every account in
# us-east-1, which is never an opt-in region.
STS_TEST_REGION = "us-east-1"


def _worker_scope() -> AuditScope:
    return AuditScope(actor_label=f"connection test@{socket.gethostname()}")


def connection_test(*, connection_id: int) -> tuple[bool, str]:
    """Sign in to the cloud with the connection and make one harmless read; save and return
    (ok, a message the admin can act on). Runs in the worker."""
    connection = Connection.objects.get(pk=connection_id)
    checks = {Cloud.AWS: _test_aws, Cloud.ENTRA: _test_entra, Cloud.OKTA: _test_okta}
    try:
        ok, message = True, checks[Cloud(connection.cloud)](connection, _worker_scope())
    except ProvisioningError as error:
        ok, message = False, f"{error.message} {error.hint}".strip()
    except SecretUnreadable as error:
        ok, message = False, str(error)
    Connection.objects.filter(pk=connection_id).update(
        last_tested_at=timezone.now(), last_test_ok=ok, last_test_message=message
    )
    return ok, message


# The cloud SDKs take seconds to import: the checks below import their client modules when they
# run (in the worker), so the web process, which imports the tasks to enqueue them, does not.


def _test_aws(connection: Connection, scope: AuditScope) -> str:
    from provisioning.aws.client import aws_client

    sts = aws_client(connection, "sts", region=STS_TEST_REGION, audit=scope)
    identity = sts.get_caller_identity()
    return gettext("Signed in to AWS account %(account)s as %(arn)s.") % {
        "account": identity["Account"],
        "arn": identity["Arn"],
    }


def _test_entra(connection: Connection, scope: AuditScope) -> str:
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.service_principals.service_principals_request_builder import (
        ServicePrincipalsRequestBuilder,
    )

    from provisioning.entra.client import graph_client, run_graph

    # A test signs in, whatever token this process holds: that is what it proves.
    client = graph_client(connection, audit=scope, fresh_sign_in=True)
    # One service principal is enough to prove the token works and Application.Read is granted.
    query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
        top=1, select=["id"]
    )
    run_graph(client.service_principals.get(RequestConfiguration(query_parameters=query)))
    return gettext(
        "Signed in to tenant %(tenant)s as application %(client)s; Microsoft Graph answered."
    ) % {
        "tenant": connection.config.get("tenant_id", ""),
        "client": connection.config.get("client_id", ""),
    }


def _test_okta(connection: Connection, scope: AuditScope) -> str:
    from provisioning.okta.client import okta_client, run_okta, uses_dpop
    from provisioning.okta.rest import okta_call

    client = okta_client(connection, audit=scope)
    if connection.config.get("method") == "private_key":
        # A service app has no user of its own ("me"); one app read needs a real token, from
        # the token endpoint, with okta.apps.read (or .manage).
        okta_call(client, "GET", "/api/v1/apps", params={"limit": 1})
        message = (
            gettext("Signed in to %(org)s as service app %(client)s with a DPoP-bound token.")
            if uses_dpop(connection)
            else gettext("Signed in to %(org)s as service app %(client)s with a Bearer token.")
        )
        return message % {
            "org": client.get_base_url(),
            "client": connection.config.get("client_id", ""),
        }
    user = run_okta(client.get_user("me"))
    login = getattr(getattr(user, "profile", None), "login", "") or getattr(user, "id", "")
    return gettext("Signed in to %(org)s as %(login)s.") % {
        "org": client.get_base_url(),
        "login": login,
    }
