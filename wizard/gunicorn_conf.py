"""gunicorn's settings for the wizard's web server, the same under `manage.py serve`,
docker-compose.yml and the Dockerfile (`gunicorn -c python:wizard.gunicorn_conf`)."""

from __future__ import annotations

import multiprocessing
import os

# Threads, not one request per process: every open run page asks for its status every 1.5 s and
# holds its connection open between asks, and a thread waits on that connection instead of a
# whole worker (https://docs.gunicorn.org/en/stable/design.html#choosing-a-worker-type).
worker_class = "gthread"
# gunicorn's suggested starting point is (2 x cores) + 1 workers
# (https://docs.gunicorn.org/en/stable/design.html#how-many-workers).
workers = int(os.environ.get("WIZARD_WEB_WORKERS", str(multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("WIZARD_WEB_THREADS", "4"))
# Every page answers in well under a second; exports are written by a worker, not streamed, so
# no request needs longer than gunicorn's default 30 s before its worker is restarted.
timeout = int(os.environ.get("WIZARD_WEB_TIMEOUT_S", "30"))
graceful_timeout = timeout
# A run page asks again 1.5 s after each answer: a connection kept 5 s (gunicorn's suggested
# range is 1-5 s, https://docs.gunicorn.org/en/stable/settings.html#keepalive) serves the next ask.
keepalive = 5
accesslog = "-"
