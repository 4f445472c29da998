"""Django settings: embedded defaults on a bare machine; PostgreSQL and Redis from their URLs."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

from provisioning.private_files import keep_private

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("WIZARD_VAR_DIR", BASE_DIR / "var"))
# Runtime files (SQLite, broker folders, sandbox CA): made here so a fresh clone needs no step,
# and readable by their owner only (they hold the database, sessions and keys).
keep_private(VAR_DIR)


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# `make run` writes var/local.env with generated keys; production passes them in the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = _env_bool("DJANGO_DEBUG", False)
if not SECRET_KEY:
    if not (DEBUG or os.environ.get("WIZARD_TESTING")):
        raise RuntimeError("DJANGO_SECRET_KEY is not set. `make run` creates one in var/local.env.")
    SECRET_KEY = "insecure-development-key-never-used-in-production"  # noqa: S105

ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

# "sandbox": the three clouds are the local stand-ins of sandbox/; "live": real endpoints.
WIZARD_MODE = os.environ.get("WIZARD_MODE", "sandbox")
if WIZARD_MODE not in {"sandbox", "live"}:
    raise RuntimeError("WIZARD_MODE must be 'sandbox' or 'live'.")
# Where `python manage.py sandbox` writes its endpoints, CA bundle path and credentials.
SANDBOX_FILE = Path(os.environ.get("WIZARD_SANDBOX_FILE", VAR_DIR / "sandbox.json"))

# Fernet keys for secrets at rest, newest first; older keys still decrypt (rotation).
WIZARD_ENCRYPTION_KEYS = _env_list("WIZARD_ENCRYPTION_KEYS")
if not WIZARD_ENCRYPTION_KEYS and os.environ.get("WIZARD_TESTING"):
    WIZARD_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWtleS1mb3ItdGhlLXRlc3Qtc3VpdGU="]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "provisioning",
    "wizard",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "wizard.middleware.HtmxCacheMiddleware",
    "wizard.middleware.TimeZoneMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "wizard.urls"
WSGI_APPLICATION = "wizard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wizard.context_processors.wizard_mode",
                "wizard.roles.role_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'wizard.sqlite3'}",
        # A server database's connection is kept for this many seconds and reused by the next
        # requests (a status poll would otherwise pay a TCP and sign-in handshake each time);
        # Django checks it still works before reusing it.
        # https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file opens in no time: nothing to keep.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not :memory:, so worker processes started by tests see the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    # WAL lets the web server and a worker read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000;",
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Failed logins: 5 failures for a user name from one address lock it for 15 minutes.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# Revealing a one-time secret, deleting a connection or a sync and rolling back a run ask for the
# password again when it was last typed longer ago than this (OWASP ASVS 3.7.1: re-authenticate
# before sensitive transactions; five minutes keeps a run of such actions to one prompt).
WIZARD_REAUTH_MAX_AGE_S = int(os.environ.get("WIZARD_REAUTH_MAX_AGE_S", "300"))

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "wizard" / "locale"]
TIME_ZONE = os.environ.get("WIZARD_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG or os.environ.get("WIZARD_TESTING")
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security headers. No inline script or style anywhere: the CSP forbids them.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
# Behind TLS in production (docker-compose sets WIZARD_HTTPS=1); plain http on 127.0.0.1 otherwise.
_HTTPS = _env_bool("WIZARD_HTTPS", False)
SESSION_COOKIE_SECURE = _HTTPS
CSRF_COOKIE_SECURE = _HTTPS
SECURE_SSL_REDIRECT = _HTTPS and not _env_bool("WIZARD_BEHIND_PROXY_NO_REDIRECT", False)
SECURE_HSTS_SECONDS = 31536000 if _HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _HTTPS
SECURE_HSTS_PRELOAD = _HTTPS
if _env_bool("WIZARD_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Celery. Redis when REDIS_URL is set; otherwise kombu's filesystem transport, no server needed.
REDIS_URL = os.environ.get("REDIS_URL", "")
# Tests give their worker a broker folder of its own (tests/worker_process.py).
BROKER_DIR = Path(os.environ.get("WIZARD_BROKER_DIR", VAR_DIR / "broker"))
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # Redis redelivers an unacked task after this; every countdown we use is far shorter.
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600")),
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Without it kombu puts its broadcast exchange in ./control of the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# When a pool process dies mid-task, Celery waits this long for a result before requeueing the
# task (default 10 s). Tasks store no result (CELERY_TASK_IGNORE_RESULT), so a short wait is enough.
CELERY_WORKER_LOST_WAIT = float(os.environ.get("CELERY_WORKER_LOST_WAIT", "1"))
# A wait (instance becoming ACTIVE, Graph objects appearing) re-enqueues after this many seconds.
WIZARD_WAIT_COUNTDOWN_S = float(os.environ.get("WIZARD_WAIT_COUNTDOWN_S", "2"))
# How long a Graph object this run created may still answer 404 while Entra replicates it: a write
# that 404s on it within this window waits for the cloud, after it fails. Ten minutes is the
# create timeout within which Terraform's azuread provider retries such 404s for applications and
# service principals (hashicorp/terraform-provider-azuread PR 656; application_resource.go).
WIZARD_GRAPH_REPLICATION_WINDOW_S = float(
    os.environ.get("WIZARD_GRAPH_REPLICATION_WINDOW_S", "600")
)
# A worker that has not written its heartbeat for this long is reported down by /healthz.
WIZARD_WORKER_HEARTBEAT_STALE_S = int(os.environ.get("WIZARD_WORKER_HEARTBEAT_STALE_S", "30"))
# How often a worker writes its heartbeat (well under the stale limit above).
WIZARD_WORKER_HEARTBEAT_INTERVAL_S = float(
    os.environ.get("WIZARD_WORKER_HEARTBEAT_INTERVAL_S", "5")
)
# Celery stops one step's work after the soft limit (the step fails, retryable) and kills the
# process at the hard limit; the claim lease is longer, so a live worker never loses its claim.
WIZARD_STEP_SOFT_TIME_LIMIT_S = int(os.environ.get("WIZARD_STEP_SOFT_TIME_LIMIT_S", "540"))
WIZARD_STEP_TIME_LIMIT_S = int(os.environ.get("WIZARD_STEP_TIME_LIMIT_S", "600"))
WIZARD_STEP_CLAIM_LEASE_S = int(os.environ.get("WIZARD_STEP_CLAIM_LEASE_S", "900"))
# RetryableError (throttling, 5xx): retry this many times, waiting base * 2**n seconds between.
WIZARD_STEP_MAX_RETRIES = int(os.environ.get("WIZARD_STEP_MAX_RETRIES", "5"))
WIZARD_RETRY_BACKOFF_S = float(os.environ.get("WIZARD_RETRY_BACKOFF_S", "2"))
# Waits a cloud schedules itself (Okta's X-Rate-Limit-Reset, Retry-After) don't use up the retries
# above; this caps them instead (100 waits at Okta's one-minute reset is over an hour and a half).
WIZARD_STEP_MAX_RATE_LIMIT_WAITS = int(os.environ.get("WIZARD_STEP_MAX_RATE_LIMIT_WAITS", "100"))
# No re-enqueue waits longer than this: Redis redelivers unacked (ETA) tasks after the visibility
# timeout, so every countdown must stay far below it.
WIZARD_MAX_COUNTDOWN_S = float(os.environ.get("WIZARD_MAX_COUNTDOWN_S", "300"))
# Shared rate limits (provisioning/ratelimit.py): one token bucket per AWS API, account and region,
# shared by every worker on every host (in Redis when REDIS_URL is set, else in a locked file in
# VAR_DIR), sized from the API's quota (provisioning/aws/api_quotas.py).
# The buckets spend the API's rate fully but leave this much of its burst to AWS, so the jitter
# between our clock and AWS's never turns into a throttled request (Connect's burst 5 becomes 1).
WIZARD_RATE_LIMIT_BURST_RESERVE = int(os.environ.get("WIZARD_RATE_LIMIT_BURST_RESERVE", "4"))
# A call waits at most this long for its turn; a longer wait fails the call as retryable, so the
# step is re-enqueued with that countdown instead of a worker sleeping for minutes.
WIZARD_RATE_LIMIT_MAX_WAIT_S = float(os.environ.get("WIZARD_RATE_LIMIT_MAX_WAIT_S", "60"))
# While Redis is down or restarting (a restart reloading a small dataset takes seconds), a call
# keeps asking for its turn this long, then fails as retryable: never unthrottled.
WIZARD_RATE_LIMIT_UNAVAILABLE_S = float(os.environ.get("WIZARD_RATE_LIMIT_UNAVAILABLE_S", "30"))
# Each process reads an account's API rates from Service Quotas at most this often: an approved
# increase takes hours to weeks (Service Quotas user guide), so a quarter of an hour is fresh.
WIZARD_API_QUOTA_CACHE_S = float(os.environ.get("WIZARD_API_QUOTA_CACHE_S", "900"))
# Modules that register steps and flows when imported (at startup, in WizardConfig.ready), plus
# extra ones for this process only, comma-separated (the tests add their doubles this way).
WIZARD_STEP_MODULES: list[str] = [
    "provisioning.steps.connect_instance",
    "provisioning.steps.connect_users",
    "provisioning.steps.entra_app",
    "provisioning.steps.entra_assignments",
    "provisioning.steps.entra_claims",
    "provisioning.steps.entra_preflight",
    "provisioning.steps.federation_policy",
    "provisioning.steps.federation_role",
    "provisioning.steps.okta_app",
    "provisioning.steps.okta_app_provider",
    "provisioning.steps.okta_assignments",
    "provisioning.steps.okta_group_mapping",
    "provisioning.steps.okta_preflight",
    "provisioning.steps.okta_role_download_confirmed",
    "provisioning.steps.okta_role_listing_user",
    "provisioning.steps.phone_prerequisites",
    "provisioning.steps.preflight",
    "provisioning.steps.saml_provider",
    "provisioning.steps.sign_in_test",
    "provisioning.steps.signing_rotation",
    "provisioning.steps.group_users",
    *_env_list("WIZARD_EXTRA_STEP_MODULES"),
]

# Runs whose next task was lost. A task marks its run busy until its time limit; a run overdue
# by this much with no step held is nudged by the workers' watchdog (provisioning/tasks.py):
# longer than a busy queue delays a task (a users step's helpers hold workers for a minute at a
# time).
WIZARD_RUN_STALL_GRACE_S = float(os.environ.get("WIZARD_RUN_STALL_GRACE_S", "90"))
WIZARD_RUN_NUDGE_BATCH = int(os.environ.get("WIZARD_RUN_NUDGE_BATCH", "50"))

# Connect users at scale (provisioning/user_changes/). A worker holds one change at a time; a
# holder whose process is gone loses it at once (same host), one that stays silent this long
# loses it anyway (a dead host): a change takes one call, seconds even at a 2/s quota shared by
# dozens of workers.
WIZARD_USER_CHANGE_LEASE_S = float(os.environ.get("WIZARD_USER_CHANGE_LEASE_S", "120"))
# A change is tried this many times (retryable errors, workers lost while making it).
WIZARD_USER_CHANGE_MAX_ATTEMPTS = int(os.environ.get("WIZARD_USER_CHANGE_MAX_ATTEMPTS", "6"))
# Helper tasks asked for a set bigger than WIZARD_USER_CHANGES_INLINE_MAX changes. More than the
# quota needs is harmless (the shared bucket paces them); four keep a 20/s quota busy with
# 50-100 ms per call, and more hosts add workers, not speed, at 2/s.
WIZARD_USER_CHANGE_WORKERS = int(os.environ.get("WIZARD_USER_CHANGE_WORKERS", "4"))
WIZARD_USER_CHANGES_INLINE_MAX = int(os.environ.get("WIZARD_USER_CHANGES_INLINE_MAX", "25"))
# Seconds of changes the step's own worker makes per turn, and a helper per task: far below the
# task time limits, so a helper goes back to the queue and other runs get their turn.
WIZARD_USER_CHANGES_INLINE_S = float(os.environ.get("WIZARD_USER_CHANGES_INLINE_S", "20"))
WIZARD_USER_CHANGES_TASK_S = float(os.environ.get("WIZARD_USER_CHANGES_TASK_S", "60"))
# Changes wait and fewer helpers than wanted made one this long: ask again (lost tasks).
WIZARD_USER_CHANGES_STALL_S = float(os.environ.get("WIZARD_USER_CHANGES_STALL_S", "30"))
# The step looks at its change set this often while helpers work (a re-enqueue, not a sleep).
WIZARD_USER_CHANGES_POLL_S = float(os.environ.get("WIZARD_USER_CHANGES_POLL_S", "2"))
# "Current rate" on the run page: changes finished over this many seconds.
WIZARD_PROGRESS_RATE_WINDOW_S = float(os.environ.get("WIZARD_PROGRESS_RATE_WINDOW_S", "15"))
# A plan deleting more than this many users, and more than this share of the users a sync
# manages, waits for the admin's confirmation even in a scheduled sync.
WIZARD_SYNC_CONFIRM_DELETES_OVER = int(os.environ.get("WIZARD_SYNC_CONFIRM_DELETES_OVER", "10"))
WIZARD_SYNC_CONFIRM_DELETES_SHARE = float(
    os.environ.get("WIZARD_SYNC_CONFIRM_DELETES_SHARE", "0.1")
)
# The mapping form lists at most this many IdP groups (plan files may name any group); a group
# with more members than this is refused rather than read in part (a sync would take the rest
# for departures).
WIZARD_GROUPS_LISTED_CAP = int(os.environ.get("WIZARD_GROUPS_LISTED_CAP", "1000"))
WIZARD_GROUP_MEMBERS_CAP = int(os.environ.get("WIZARD_GROUP_MEMBERS_CAP", "100000"))
# A sync reads only what changed since its last run, and everything at least this often (hours;
# a new sync's `full_every_hours`): the full read is what catches changes made in Connect itself.
# A week, the longest an Entra delta link lives (provisioning/entra/directory_changes.py).
WIZARD_SYNC_FULL_EVERY_HOURS = int(os.environ.get("WIZARD_SYNC_FULL_EVERY_HOURS", "168"))
# An Entra sync tracks its groups and the groups inside them by a delta $filter on their ids,
# which travels in the URL (Graph's delta filter takes ids only: delta-query-overview); a tree of
# more groups than this is read in full every run.
WIZARD_SYNC_DELTA_GROUPS_MAX = int(os.environ.get("WIZARD_SYNC_DELTA_GROUPS_MAX", "50"))
# Celery beat starts the syncs that are due; it looks this often.
WIZARD_SYNC_CHECK_INTERVAL_S = float(os.environ.get("WIZARD_SYNC_CHECK_INTERVAL_S", "60"))
# Audit log exports: written by a worker into this private folder (shared by the web server and
# the workers), offered to whoever asked for this long, then deleted; beat looks this often.
WIZARD_EXPORT_DIR = Path(os.environ.get("WIZARD_EXPORT_DIR", VAR_DIR / "exports"))
WIZARD_EXPORT_KEEP_S = float(os.environ.get("WIZARD_EXPORT_KEEP_S", str(24 * 3600)))
WIZARD_EXPORT_EXPIRY_CHECK_S = float(os.environ.get("WIZARD_EXPORT_EXPIRY_CHECK_S", "3600"))
# The nice value the export's writing thread runs at: on a host it shares with the web server it
# takes only the CPU the pages leave (19, the lowest priority, weighs 15 against a page's 1024:
# sched_prio_to_weight in Linux's kernel/sched/core.c); at 10 an export of a million rows still
# tripled the run page pollers' p99 in bench/audit_export.py.
WIZARD_EXPORT_NICENESS = int(os.environ.get("WIZARD_EXPORT_NICENESS", "19"))
# The export page's progress moves every this many rows (one small UPDATE each).
WIZARD_EXPORT_PROGRESS_ROWS = int(os.environ.get("WIZARD_EXPORT_PROGRESS_ROWS", "10000"))
# The live sign-in watch (provisioning/services/sign_in_watch.py). CloudTrail "typically delivers
# logs within an average of about 5 minutes of an API call. This time is not guaranteed."
# (CloudTrail user guide, "Getting and viewing your CloudTrail log files"), so a watch lasts three
# times that.
WIZARD_SIGN_IN_WATCH_S = float(os.environ.get("WIZARD_SIGN_IN_WATCH_S", str(15 * 60)))
# Seconds between two looks: each look is 3 LookupEvents calls (us-east-1 and the instance's
# region for STS, the instance's for Connect) against a quota of 2 per second per region.
WIZARD_SIGN_IN_WATCH_POLL_S = float(os.environ.get("WIZARD_SIGN_IN_WATCH_POLL_S", "10"))
# Events this much older than the watch's start still count (clock skew, a quick admin).
WIZARD_SIGN_IN_WATCH_CLOCK_MARGIN_S = 60
# Sign-in readings (inspections and watches) are deleted after this many days, checked hourly.
WIZARD_SIGN_IN_READING_KEEP_DAYS = int(os.environ.get("WIZARD_SIGN_IN_READING_KEEP_DAYS", "30"))
WIZARD_SIGN_IN_READING_EXPIRY_CHECK_S = 3600.0
# The watch (provisioning/services/federation_watch.py): beat looks this often for watched
# federations whose check is due; each is checked every `every_hours` (a new one: daily).
WIZARD_WATCH_CHECK_INTERVAL_S = float(os.environ.get("WIZARD_WATCH_CHECK_INTERVAL_S", "60"))
WIZARD_WATCH_EVERY_HOURS = int(os.environ.get("WIZARD_WATCH_EVERY_HOURS", "24"))
# Days before the IdP signing certificate expires at which the watch notifies, each threshold
# once; the check warns from the first (provisioning/federation_check/judge.py).
WIZARD_CERTIFICATE_NOTIFY_DAYS = (60, 30, 7)
# A watch notification written or taken to send this long ago and still not sent (its worker was
# lost) is sent again at beat's next turn: longer than one send may take (EMAIL_TIMEOUT and
# WIZARD_WEBHOOK_TIMEOUT_S, 10 s each, per connection step), so a slow send is not doubled.
WIZARD_NOTIFICATION_RESEND_AFTER_S = 300
# Notifications: e-mail through Django's mail settings, and a webhook (Notifications page).
# In sandbox mode with no mail server named, e-mail is written to files under var/sent-mail/
# (Django's file backend): the sandbox banner says nothing leaves this machine, and an admin
# trying the Notifications page sees the test e-mail arrive there.
_SANDBOX_MAIL = WIZARD_MODE == "sandbox" and "DJANGO_EMAIL_HOST" not in os.environ
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if _SANDBOX_MAIL
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "sent-mail"
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "connect-sso-wizard@localhost")
# A webhook POST gives up after this many seconds (Slack answers within a few: its incoming
# webhooks are synchronous).
WIZARD_WEBHOOK_TIMEOUT_S = float(os.environ.get("WIZARD_WEBHOOK_TIMEOUT_S", "10"))
# The wizard's address as its admins reach it (https://wizard.example.com), for the link to the
# latest check in a notification; unset, notifications carry the page's path only.
WIZARD_BASE_URL = os.environ.get("WIZARD_BASE_URL", "").rstrip("/")
# Plain http to 127.0.0.1/localhost is allowed for a webhook only here (the tests' receiver).
WIZARD_WEBHOOK_ALLOW_LOCAL_HTTP = DEBUG or bool(os.environ.get("WIZARD_TESTING"))
CELERY_BEAT_SCHEDULE = {
    "start-due-federation-checks": {
        "task": "wizard.tasks.start_due_federation_checks",
        "schedule": WIZARD_WATCH_CHECK_INTERVAL_S,
    },
    "start-due-user-syncs": {
        "task": "wizard.tasks.start_due_user_syncs",
        "schedule": WIZARD_SYNC_CHECK_INTERVAL_S,
    },
    "expire-audit-exports": {
        "task": "wizard.tasks.expire_audit_exports",
        "schedule": WIZARD_EXPORT_EXPIRY_CHECK_S,
    },
    "expire-sign-in-readings": {
        "task": "wizard.tasks.expire_sign_in_readings",
        "schedule": WIZARD_SIGN_IN_READING_EXPIRY_CHECK_S,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Connection secrets a process has decrypted are masked in every line it logs.
    "filters": {"redact_secrets": {"()": "provisioning.redaction.RedactSecretsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("WIZARD_LOG_LEVEL", "INFO")},
    "loggers": {
        # botocore and azure log request bodies and headers at DEBUG; never let that through.
        "botocore": {"level": "WARNING"},
        "azure": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "okta": {"level": "WARNING"},
    },
}
