"""URL routes of the wizard."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from django.views.i18n import set_language

from wizard.views import (
    audit_log,
    connections,
    dashboard,
    directory_picker,
    federation_checks,
    federation_watch,
    health,
    people,
    reauth,
    runs,
    sign_in_inspector,
    sign_in_watch,
    step_secrets,
    user_syncs,
)

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The language switch works before sign-in too: the login page has it.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("password/again/", reauth.reauth, name="reauth"),
    path("people/", people.people, name="people"),
    path("people/invite/", people.person_invite, name="person_invite"),
    path("people/<int:person_id>/role/", people.person_role, name="person_role"),
    path("people/<int:person_id>/deactivate/", people.person_deactivate, name="person_deactivate"),
    path("set-password/<uidb64>/<token>/", people.SetPasswordView.as_view(), name="set_password"),
    path("runs/new/", runs.run_new, name="run_new"),
    path("runs/<uuid:run_id>/", runs.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/status/", runs.run_status, name="run_status"),
    path("runs/<uuid:run_id>/resume/", runs.run_resume, name="run_resume"),
    path("runs/<uuid:run_id>/cancel/", runs.run_cancel, name="run_cancel"),
    path("runs/<uuid:run_id>/rollback/", runs.run_rollback, name="run_rollback"),
    path("runs/<uuid:run_id>/steps/<slug:step_key>/retry/", runs.step_retry, name="step_retry"),
    path("runs/<uuid:run_id>/steps/<slug:step_key>/rerun/", runs.step_rerun, name="step_rerun"),
    path("runs/<uuid:run_id>/steps/<slug:step_key>/apply/", runs.step_apply, name="step_apply"),
    path("runs/<uuid:run_id>/steps/<slug:step_key>/inputs/", runs.step_inputs, name="step_inputs"),
    path(
        "runs/<uuid:run_id>/steps/<slug:step_key>/secret/", step_secrets.reveal, name="step_secret"
    ),
    path(
        "runs/<uuid:run_id>/steps/<slug:step_key>/directory/",
        directory_picker.directory_results,
        name="directory_picker",
    ),
    path(
        "runs/<uuid:run_id>/steps/<slug:step_key>/changes.csv",
        runs.step_changes_csv,
        name="step_changes_csv",
    ),
    path(
        "runs/<uuid:run_id>/sign-in-watch/",
        sign_in_watch.sign_in_watch_new,
        name="sign_in_watch_new",
    ),
    path(
        "runs/<uuid:run_id>/sign-in-watch/<uuid:reading_id>/",
        sign_in_watch.sign_in_watch,
        name="sign_in_watch",
    ),
    path("runs/<uuid:run_id>/users/", user_syncs.users_from_groups, name="users_from_groups"),
    path("runs/<uuid:run_id>/sync/", user_syncs.sync_new, name="sync_new"),
    path("syncs/", user_syncs.syncs, name="syncs"),
    path("syncs/<uuid:sync_id>/", user_syncs.sync_edit, name="sync_edit"),
    path("syncs/<uuid:sync_id>/run/", user_syncs.sync_run_now, name="sync_run_now"),
    path("syncs/<uuid:sync_id>/delete/", user_syncs.sync_delete, name="sync_delete"),
    path("check/", federation_checks.federation_check_new, name="federation_check_new"),
    path("check/<uuid:check_id>/", federation_checks.federation_check, name="federation_check"),
    path(
        "check/<uuid:check_id>/again/",
        federation_checks.federation_check_again,
        name="federation_check_again",
    ),
    path(
        "check/<uuid:check_id>/repair/",
        federation_checks.federation_check_repair,
        name="federation_check_repair",
    ),
    path(
        "check/<uuid:check_id>/rotate/",
        federation_checks.federation_check_rotate,
        name="federation_check_rotate",
    ),
    path(
        "watch/<int:watched_id>/",
        federation_watch.watched_federation,
        name="watched_federation",
    ),
    path(
        "watch/<int:watched_id>/interval/",
        federation_watch.watched_federation_interval,
        name="watched_federation_interval",
    ),
    path(
        "watch/<int:watched_id>/stop/",
        federation_watch.watched_federation_watching,
        {"watching": False},
        name="watched_federation_stop",
    ),
    path(
        "watch/<int:watched_id>/resume/",
        federation_watch.watched_federation_watching,
        {"watching": True},
        name="watched_federation_resume",
    ),
    path(
        "watch/<int:watched_id>/repair/",
        federation_watch.watched_federation_repair,
        name="watched_federation_repair",
    ),
    path(
        "watch/<int:watched_id>/rotate/",
        federation_watch.watched_federation_rotate,
        name="watched_federation_rotate",
    ),
    path("notifications/", federation_watch.notifications, name="notifications"),
    path(
        "notifications/test/",
        federation_watch.notifications_test,
        name="notifications_test",
    ),
    path(
        "notifications/test/<int:test_id>/",
        federation_watch.notifications_test_status,
        name="notifications_test_status",
    ),
    path("inspect/", sign_in_inspector.inspect_sign_in, name="inspect_sign_in"),
    path(
        "inspect/readings/<uuid:reading_id>/",
        sign_in_inspector.inspect_sign_in_result,
        name="inspect_sign_in_result",
    ),
    path("audit/", audit_log.audit_log, name="audit_log"),
    path("audit/exports/", audit_log.audit_export_new, name="audit_export_new"),
    path("audit/exports/<uuid:export_id>/", audit_log.audit_export, name="audit_export"),
    path(
        "audit/exports/<uuid:export_id>/download/",
        audit_log.audit_export_download,
        name="audit_export_download",
    ),
    path("connections/", connections.connections, name="connections"),
    path(
        "connections/new/<slug:cloud>/<slug:method>/",
        connections.connection_new,
        name="connection_new",
    ),
    path(
        "connections/<int:connection_id>/edit/", connections.connection_edit, name="connection_edit"
    ),
    path(
        "connections/<int:connection_id>/test/", connections.connection_test, name="connection_test"
    ),
    path(
        "connections/<int:connection_id>/test-result/",
        connections.connection_test_status,
        name="connection_test_status",
    ),
    path(
        "connections/<int:connection_id>/delete/",
        connections.connection_delete,
        name="connection_delete",
    ),
]

# A too-large or unreadable form post gets the wizard's own page, not a bare "Bad Request (400)".
handler400 = "wizard.views.errors.bad_request"
