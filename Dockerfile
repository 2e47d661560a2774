# The trading page's chart library, from package-lock.json (served as a static file; no build step).
FROM node:20-slim AS browser-libraries
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# The application image: web (gunicorn), ws (daphne), engines, Celery and the market maker all run it.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=exchange_site.settings.production
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
# An unprivileged user; the volumes mounted at these paths start with its ownership.
RUN useradd --create-home --uid 10001 exchange \
    && mkdir -p /app/staticfiles /var/lib/celery /var/lib/exchange \
    && chown exchange:exchange /app/staticfiles /var/lib/celery /var/lib/exchange
COPY --chown=exchange:exchange . .
COPY --from=browser-libraries --chown=exchange:exchange /app/node_modules ./node_modules
USER exchange
# Static files baked into the image too, so it serves them (whitenoise) without nginx.
# The throwaway key only satisfies the production profile's checks; nothing is signed.
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    DJANGO_ALLOWED_HOSTS=build DATABASE_URL=postgres://build/build REDIS_URL=redis://build:6379/0 \
    python manage.py collectstatic --no-input -v 0
