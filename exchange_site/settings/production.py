"""Production profile: behind nginx terminating TLS; secrets without defaults; nothing for ``check --deploy`` to report.

Required in the environment: ``DJANGO_SECRET_KEY`` (50 characters or more),
``SECRETS_ENCRYPTION_KEYS`` (Fernet keys for secrets at rest),
``DJANGO_ALLOWED_HOSTS`` (the public host names), ``DATABASE_URL`` and
``REDIS_URL``.  ``DJANGO_CSRF_TRUSTED_ORIGINS`` (read in base.py) is only
needed for cross-origin form posts: same-origin HTTPS requests pass without it.
A missing or weak secret stops the process at start, not at the first request.
"""

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, env

DEBUG = False

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    # Sessions and CSRF tokens hang on this key.
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of 50 characters or more in production; "
        "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
try:
    for _key in SECRETS_ENCRYPTION_KEYS or [""]:
        Fernet(_key)
except ValueError:
    # Not derived from DJANGO_SECRET_KEY in production: rotating that key (sessions, CSRF)
    # must not make every stored API-key and two-factor secret unreadable.
    raise ImproperlyConfigured(
        "SECRETS_ENCRYPTION_KEYS must list one or more Fernet keys (newest first) in production; "
        "generate one with: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
    ) from None
# No default: a production site must say which host names it answers to.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# nginx terminates TLS and sets X-Forwarded-Proto itself, overwriting whatever a
# client sent, so the header can be trusted to say whether the request was HTTPS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes talk plain HTTP to the process itself, from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
# Both are commitments for every subdomain and, once submitted to the browsers'
# preload list, hard to undo: switch them off if the domain hosts plain-HTTP sites.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

# Per-address rate limits behind nginx: the client's address is the last entry of
# X-Forwarded-For (nginx appends it). Without this DRF keys on the whole header,
# which a client can fill with anything and so never hit the anonymous limit.
REST_FRAMEWORK = {**REST_FRAMEWORK, "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=1)}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
