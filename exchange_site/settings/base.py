"""Settings shared by every profile, driven by the environment.

``DATABASE_URL`` and ``REDIS_URL`` point at real servers; when they are unset
``manage.py`` and the test runner start the embedded ones under ``.data/``
first (``exchange_site.embedded``) and export their URLs, so this module only
ever reads the environment.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from exchange_site.amounts import install_money_context

BASE_DIR = Path(__file__).resolve().parent.parent.parent
install_money_context()

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
# Fernet keys that encrypt API-key and two-factor secrets at rest, newest first (the first
# encrypts, all decrypt): see accounts.services._fernet and docs/operations.md for rotation.
# Unset, a key derived from SECRET_KEY is used (development and tests; production requires them).
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[])
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "accounts",
    "markets",
    "orders",
    "marketdata",
    "matching",
    "compat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the views' exceptions first: Redis or PostgreSQL down -> 503 "retry", not a 500 page.
    "exchange_site.outages.OutageMiddleware",
]

ROOT_URLCONF = "exchange_site.urls"
WSGI_APPLICATION = "exchange_site.wsgi.application"
ASGI_APPLICATION = "exchange_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if not env("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run through manage.py or scripts/dev.py, which start the "
        "embedded PostgreSQL and Redis, or set DATABASE_URL and REDIS_URL yourself."
    )
DATABASES = {"default": env.db("DATABASE_URL")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
# A health check is a "SELECT 1" before every request (10% of a web worker's time
# in an order-entry profile). Off by default: after a database restart each
# persistent connection fails one request, then is replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DB_CONN_HEALTH_CHECKS", default=False)
# Parameters travel apart from the SQL (no client-side quoting of large arrays).
DATABASES["default"].setdefault("OPTIONS", {})["server_side_binding"] = env.bool("DB_SERVER_SIDE_BINDING", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "cache",
    }
}

CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer: the list-based RedisChannelLayer drops messages past
        # its per-channel capacity without a word (see shared NOTES.md).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "max_connections": 2000}]},
    }
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "markets-overview"
LOGOUT_REDIRECT_URL = "markets-overview"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    # Browser libraries installed from npm (package.json; scripts/dev.py runs npm ci), served as they ship.
    ("vendor/lightweight-charts", BASE_DIR / "node_modules" / "lightweight-charts" / "dist"),
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # A request signed with an API key also needs the key's scope (read, trade, withdraw).
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.ApiKeyScopes",
    ],
    "DEFAULT_PARSER_CLASSES": ["exchange_site.api.DecimalJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "exchange_site.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": [
        "exchange_site.throttling.AnonRateThrottle",
        "exchange_site.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("THROTTLE_ANON", default="60/minute"),
        "user": env("THROTTLE_USER", default="6000/minute"),
        # Order placement per user (exchange_site.throttling.UserAndOrderRateThrottle), REST and Binance API.
        "orders": env("THROTTLE_ORDERS", default="1200/minute"),
    },
    "COERCE_DECIMAL_TO_STRING": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Exchange API",
    "DESCRIPTION": (
        "Spot exchange REST API. Amounts are decimal strings. Bots authenticate with an API key "
        "and an HMAC-SHA256 signature (see the README, 'Signing requests')."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"ApiScopeEnum": "accounts.models.ApiScope"},
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL.replace("unix://", "redis+socket://", 1))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Candles (marketdata.klines): the engine enqueues a run per market after its commits;
# beat's sweep re-enqueues what a killed worker or a lost message left behind.
CELERY_BEAT_SCHEDULE = {
    "sweep-klines": {
        "task": "marketdata.tasks.sweep_klines",
        "schedule": env.float("KLINES_SWEEP_EVERY_S", default=10.0),
        "options": {"expires": 30},
    },
}

EXCHANGE = {
    # Login: attempts per username and per client address (fixed windows in Redis), and the
    # lockout after repeated failures (wrong password or two-factor code).
    "LOGIN_RATE_PER_USERNAME": env("LOGIN_RATE_PER_USERNAME", default="10/minute"),
    "LOGIN_RATE_PER_IP": env("LOGIN_RATE_PER_IP", default="30/minute"),
    "LOGIN_LOCKOUT_FAILURES": env.int("LOGIN_LOCKOUT_FAILURES", default=5),
    "LOGIN_LOCKOUT_SECONDS": env.int("LOGIN_LOCKOUT_SECONDS", default=900),
    # Wrong two-factor codes (and passwords when turning it on) per user per LOGIN_LOCKOUT_SECONDS,
    # on every page and endpoint that takes a code.
    "TWO_FACTOR_MAX_FAILURES": env.int("TWO_FACTOR_MAX_FAILURES", default=5),
    # No withdrawal for this long after two-factor authentication is turned on (a thief who turned
    # it on with a stolen password and session would otherwise choose the phone that authorises them).
    "WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S": env.int("WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S", default=86400),
    # Name authenticator apps show next to the code.
    "TOTP_ISSUER": env("TOTP_ISSUER", default="Exchange"),
    # How long a signed API request stays valid, and the largest window a client may ask for.
    "API_RECV_WINDOW_MS": env.int("API_RECV_WINDOW_MS", default=5000),
    "API_MAX_RECV_WINDOW_MS": 60000,
    # Market orders by base quantity never trade more than this fraction away from the
    # reference price (a buy above best ask x (1 + this), which is also what it locks;
    # a sell below best bid x (1 - this)).
    # Every market order (by quantity or by quote amount) stops there; the rest is cancelled
    # with end reason price_protection.  With no reference price at all, market orders are refused.
    "MARKET_PROTECTION": Decimal(env.str("MARKET_PROTECTION", default="0.05")),
    # A limit order priced further than this fraction from the reference price (last trade,
    # else the middle of best bid and ask, else the one side there is) is refused.
    "LIMIT_PRICE_BAND": Decimal(env.str("LIMIT_PRICE_BAND", default="0.5")),
    # A web process reuses the reference prices for limit orders' band this long (0: read every time).
    "LIMIT_BAND_REFERENCE_TTL_S": env.float("LIMIT_BAND_REFERENCE_TTL_S", default=0.25),
    # Live orders (pending, open, partially filled) one user may have in one market.
    "MAX_OPEN_ORDERS": env.int("MAX_OPEN_ORDERS", default=200),
    "ENGINE_BATCH_SIZE": env.int("ENGINE_BATCH_SIZE", default=500),
    "ENGINE_BLOCK_MS": env.int("ENGINE_BLOCK_MS", default=50),
    # When a read finds under half a batch, wait this long once for more (0: never).
    "ENGINE_LINGER_MS": env.int("ENGINE_LINGER_MS", default=5),
    # Orders left PENDING longer than this (a stream entry lost with Redis) are swept in.
    "ENGINE_SWEEP_AFTER_S": env.float("ENGINE_SWEEP_AFTER_S", default=3.0),
    "ENGINE_SUMMARY_EVERY_S": env.float("ENGINE_SUMMARY_EVERY_S", default=60.0),
    # A halted market's engine looks this often whether it was resumed.
    "ENGINE_PAUSE_CHECK_S": env.float("ENGINE_PAUSE_CHECK_S", default=0.5),
    # Where browsers open the WebSocket. Empty: the page's own host, path /ws (nginx routes
    # it to daphne). `dev.py run` serves HTTP (gunicorn) and WebSockets (daphne) on two
    # ports, so it sets this to daphne's.
    "WS_URL": env("EXCHANGE_WS_URL", default=""),
    # A kline run that keeps finding new trades re-enqueues itself after this long, so one
    # busy market cannot hold a Celery worker.
    "KLINES_RUN_BUDGET_S": env.float("KLINES_RUN_BUDGET_S", default=5.0),
    # Binance-compatible API (compat/): how long an order answer with newOrderRespType RESULT or FULL,
    # or a cancel, waits for the engine's verdict before answering with the current state.
    "BINANCE_RESULT_WAIT_S": env.float("BINANCE_RESULT_WAIT_S", default=1.0),
}

# /readyz: a trading market whose engine heartbeat is older than this (seconds) has no engine.
HEALTH_ENGINE_STALE_S = env.float("HEALTH_ENGINE_STALE_S", default=10.0)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"kv": {"()": "exchange_site.logging.KeyValueFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kv"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        app: {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}
        for app in ("accounts", "markets", "orders", "marketdata", "matching", "compat", "exchange_site")
    }
    # Refused requests (4xx) are answers, not incidents: log server errors only.
    | {"django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False}},
}

# --- Market maker (manage.py run_market_maker; markets/market_maker/) ----------------------------
# An outside client of the exchange: it reaches the REST API and the WebSocket by URL (in
# development gunicorn and daphne listen on two ports; scripts/dev.py run passes both) and
# signs with an API key: MARKET_MAKER_API_KEY/_SECRET, else the file the demo seeding writes.
# Amounts are decimal strings in the quote asset unless named otherwise; bps = 1/100 of 1%.
MARKET_MAKER = {
    "API_URL": env("MARKET_MAKER_API_URL", default="http://127.0.0.1:8000"),
    "WS_URL": env("MARKET_MAKER_WS_URL", default="ws://127.0.0.1:8001/ws"),
    "API_KEY": env("MARKET_MAKER_API_KEY", default=""),
    "API_SECRET": env("MARKET_MAKER_API_SECRET", default=""),
    # Empty: the demo seeding's file (exchange_site.demo.credentials_path()).
    "CREDENTIALS_FILE": env("MARKET_MAKER_CREDENTIALS_FILE", default=""),
    "MARKETS": env.list("MARKET_MAKER_MARKETS", default=[]),  # empty: every trading market
    # Where each market's random walk is centred (it continues from the last trade, inside the band).
    "START_PRICES": env.dict("MARKET_MAKER_START_PRICES", default={"BTC_USDT": "60000", "ETH_USDT": "3000"}),
    "PRICE_FILES": env.dict("MARKET_MAKER_PRICE_FILES", default={}),  # SYMBOL=path: follow a price feed instead
    "WALK_STEP_BPS": env.str("MARKET_MAKER_WALK_STEP_BPS", default="4"),  # largest move per cycle
    "WALK_BAND_PCT": env.str("MARKET_MAKER_WALK_BAND_PCT", default="10"),  # the walk stays within +/- this
    "LEVELS": env.int("MARKET_MAKER_LEVELS", default=5),  # quotes per side
    "SPREAD_BPS": env.str("MARKET_MAKER_SPREAD_BPS", default="10"),  # best ask - best bid
    "LEVEL_STEP_BPS": env.str("MARKET_MAKER_LEVEL_STEP_BPS", default="5"),
    "LEVEL_SIZE_QUOTE": env.str("MARKET_MAKER_LEVEL_SIZE_QUOTE", default="2000"),
    "MAX_INVENTORY_QUOTE": env.str("MARKET_MAKER_MAX_INVENTORY_QUOTE", default="50000"),
    "SKEW_BPS": env.str("MARKET_MAKER_SKEW_BPS", default="20"),  # centre shift at full inventory
    "SIZE_SKEW": env.str("MARKET_MAKER_SIZE_SKEW", default="0.5"),  # size moved between sides at full inventory
    "PRICE_TOLERANCE_BPS": env.str("MARKET_MAKER_PRICE_TOLERANCE_BPS", default="3"),  # re-quote beyond this
    "QUANTITY_TOLERANCE": env.str("MARKET_MAKER_QUANTITY_TOLERANCE", default="0.5"),
    "TAKE_PROBABILITY": env.str("MARKET_MAKER_TAKE_PROBABILITY", default="0.1"),  # per market per cycle
    "TAKE_SIZE_QUOTE": env.str("MARKET_MAKER_TAKE_SIZE_QUOTE", default="200"),
    "CYCLE_S": env.str("MARKET_MAKER_CYCLE_S", default="1"),
    "RESYNC_S": env.str("MARKET_MAKER_RESYNC_S", default="30"),  # REST resync while the WebSocket is up
    "SUMMARY_S": env.str("MARKET_MAKER_SUMMARY_S", default="30"),
    "CANCEL_ON_EXIT": env.bool("MARKET_MAKER_CANCEL_ON_EXIT", default=True),
    "SEED": env.int("MARKET_MAKER_SEED", default=None),
    "BACKOFF_BASE_S": env.str("MARKET_MAKER_BACKOFF_BASE_S", default="0.5"),
    "BACKOFF_MAX_S": env.str("MARKET_MAKER_BACKOFF_MAX_S", default="30"),
    "TIMEOUT_S": env.str("MARKET_MAKER_TIMEOUT_S", default="5"),
}
