# The wizard's image: web (gunicorn), worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WIZARD_VAR_DIR=/var/lib/wizard

# The exports folder exists in the image, owned by wizard, so the volume docker-compose mounts
# there starts with that owner (Docker copies a new volume's mount point from the image).
RUN useradd --system --create-home --home-dir /app wizard \
    && mkdir -p /var/lib/wizard/exports \
    && chown wizard /var/lib/wizard /var/lib/wizard/exports \
    && chmod 700 /var/lib/wizard/exports
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
