# The wizard's image: web (gunicorn), worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WIZARD_VAR_DIR=/var/lib/wizard

RUN useradd --system --create-home --home-dir /app wizard \
    && mkdir -p /var/lib/wizard \
    && chown wizard /var/lib/wizard
WORKDIR /app

COPY pyproject.toml README.md ./
COPY wizard ./wizard
COPY provisioning ./provisioning
COPY sandbox ./sandbox
COPY templates ./templates
COPY static ./static
COPY manage.py ./
RUN pip install --no-cache-dir .

# As the user that serves them: the wizard keeps its folder's files private to their owner.
USER wizard
RUN DJANGO_SECRET_KEY=collectstatic-only WIZARD_ENCRYPTION_KEYS= \
    python manage.py collectstatic --noinput -v 0
EXPOSE 8000
CMD ["gunicorn", "wizard.wsgi:application", "--config", "python:wizard.gunicorn_conf", "--bind", "0.0.0.0:8000"]
