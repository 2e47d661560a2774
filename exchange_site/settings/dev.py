"""Development profile: the embedded stack on a laptop."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
WHITENOISE_USE_FINDERS = True
# Re-scanning static files on every request costs ~0.2 ms: only while developing.
WHITENOISE_AUTOREFRESH = DEBUG
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-insecure-key-do-not-use-in-production")
