"""The connections page: list, add, edit, test and delete the credentials for each cloud."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from provisioning.models import Cloud, Connection, SetupRun
from provisioning.services import connections as connection_services
from wizard.connection_labels import CONNECTION_FIELDS
from wizard.forms import ConnectionForm
from wizard.roles import ADMIN, role_required
from wizard.views.runs import HtmxHttpRequest

# The session remembers when the admin asked for each test, so the page knows a result is new.
SESSION_TESTS = "connection_tests_requested"


def _get_connection(connection_id: int) -> Connection:
    try:
        return Connection.objects.get(pk=connection_id)
    except Connection.DoesNotExist:
        raise Http404(_("No connection has this ID.")) from None


def _spec(cloud: str, method: str) -> dict[str, Any]:
    try:
        return CONNECTION_FIELDS[cloud][method]
    except KeyError:
        raise Http404(_("Unknown cloud or sign-in method.")) from None


def _connections_url(connection: Connection | None = None) -> str:
    url = reverse("connections")
    return f"{url}#connection-{connection.pk}" if connection else url


def _test_requested_at(request: HttpRequest, connection: Connection) -> dt.datetime | None:
    stamp = request.session.get(SESSION_TESTS, {}).get(str(connection.pk))
    return dt.datetime.fromisoformat(stamp) if stamp else None


def _test_pending(request: HttpRequest, connection: Connection) -> bool:
    """A test was asked for and its result has not been written since."""
    requested = _test_requested_at(request, connection)
    if requested is None:
        return False
    return connection.last_tested_at is None or connection.last_tested_at < requested


def _runs_using(connection: Connection) -> int:
    return SetupRun.objects.filter(aws_connection=connection).count() + (
        SetupRun.objects.filter(idp_connection=connection).count()
    )


def _method_label(cloud: str, method: str) -> str:
    return str(CONNECTION_FIELDS[cloud][method]["label"])


def _settings(connection: Connection) -> list[tuple[str, str]]:
    """The connection's non-secret settings as (label, value), in the order of its form."""
    spec = CONNECTION_FIELDS.get(connection.cloud, {}).get(connection.config.get("method", ""))
    labels = {field["name"]: str(field["label"]) for field in spec["config"]} if spec else {}
    return [
        (labels.get(name, name), str(value))
        for name, value in connection.config.items()
        if name != "method"
    ]


@role_required(ADMIN)
@require_GET
def connections(request: HttpRequest) -> HttpResponse:
    by_cloud = []
    for cloud, cloud_label in Cloud.choices:
        items = [
            {
                "connection": connection,
                "method_label": _method_label(cloud, connection.config.get("method", ""))
                if connection.config.get("method") in CONNECTION_FIELDS.get(cloud, {})
                else connection.config.get("method", ""),
                "test_pending": _test_pending(request, connection),
                "settings": _settings(connection),
            }
            for connection in Connection.objects.filter(cloud=cloud).order_by("name")
        ]
        methods = [
            {"key": method, "label": spec["label"], "help": spec.get("help", "")}
            for method, spec in CONNECTION_FIELDS.get(cloud, {}).items()
        ]
        by_cloud.append({"cloud": cloud, "label": cloud_label, "items": items, "methods": methods})
    return render(request, "connections.html", {"by_cloud": by_cloud})


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def connection_new(request: HttpRequest, cloud: str, method: str) -> HttpResponse:
    spec = _spec(cloud, method)
    form = ConnectionForm(request.POST or None, cloud=cloud, method=method, spec=spec)
    if request.method == "POST" and form.is_valid():
        try:
            connection = connection_services.connection_create(
                user=request.user,
                cloud=cloud,
                name=form.cleaned_data["name"],
                config=form.config,
                secrets=form.secrets,
                is_sandbox=form.is_sandbox,
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, _("Connection saved. Test it to check the credentials work."))
            return redirect(_connections_url(connection))
    return _render_form(request, form, Cloud(cloud).label, spec, connection=None)


@role_required(ADMIN)
@require_http_methods(["GET", "POST"])
def connection_edit(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _get_connection(connection_id)
    if connection.is_sandbox:
        messages.error(
            request, _("Sandbox connections are set up by the sandbox itself and can't be edited.")
        )
        return redirect(_connections_url(connection))
    method = connection.config.get("method", "")
    spec = _spec(connection.cloud, method)
    initial = {
        "name": connection.name,
        **{k: v for k, v in connection.config.items() if k != "method"},
    }
    form = ConnectionForm(
        request.POST or None,
        initial=initial,
        cloud=connection.cloud,
        method=method,
        spec=spec,
        editing=connection,
    )
    if request.method == "POST" and form.is_valid():
        try:
            connection_services.connection_update(
                user=request.user,
                connection_id=connection.pk,
                name=form.cleaned_data["name"],
                config=form.config,
                secrets=form.secrets,
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, _("Connection saved. Test it to check the credentials work."))
            return redirect(_connections_url(connection))
    return _render_form(request, form, connection.get_cloud_display(), spec, connection=connection)


@role_required(ADMIN)
@require_POST
def connection_test(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _get_connection(connection_id)
    requested = request.session.get(SESSION_TESTS, {})
    requested[str(connection.pk)] = timezone.now().isoformat()
    request.session[SESSION_TESTS] = requested
    connection_services.connection_request_test(user=request.user, connection_id=connection.pk)
    return redirect(_connections_url(connection))


@role_required(ADMIN)
@require_GET
def connection_test_status(request: HtmxHttpRequest, connection_id: int) -> HttpResponse:
    """One connection's test result; polled by the page until the requested test has run."""
    connection = _get_connection(connection_id)
    pending = _test_pending(request, connection)
    html = render_to_string(
        "connections.html#test_result",
        {"item": {"connection": connection, "test_pending": pending}},
        request=request,
    )
    if not pending:
        return HttpResponseStopPolling(html) if request.htmx else HttpResponse(html)
    return HttpResponse(html)


@role_required(ADMIN, recent_password=True)
@require_http_methods(["GET", "POST"])
def connection_delete(request: HttpRequest, connection_id: int) -> HttpResponse:
    """GET asks for confirmation (or says why it can't be deleted); POST deletes."""
    connection = _get_connection(connection_id)
    runs_using = _runs_using(connection)
    refused = ""
    if request.method == "POST" and not runs_using:
        try:
            connection_services.connection_delete(user=request.user, connection_id=connection.pk)
        except ValidationError as error:
            refused = " ".join(error.messages)
        else:
            messages.success(
                request, _("Connection “%(name)s” deleted.") % {"name": connection.name}
            )
            return redirect(_connections_url())
    elif request.method == "POST":
        refused = _("This connection is used by a setup run, so it can't be deleted.")
    if refused:
        messages.error(request, refused)
    return render(
        request,
        "connection_delete.html",
        {"connection": connection, "runs_using": runs_using},
        status=409 if refused else 200,
    )


def _render_form(
    request: HttpRequest, form: Any, cloud_label: Any, spec: dict[str, Any], *, connection: Any
) -> HttpResponse:
    """The add/edit page: the same form for a new connection and an existing one."""
    return render(
        request,
        "connection_form.html",
        {
            "form": form,
            "cloud_label": cloud_label,
            "method_label": spec["label"],
            "method_help": spec.get("help", ""),
            "connection": connection,
        },
    )
