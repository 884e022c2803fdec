"""Settings shared by every environment. Environment values come from config.env."""
from __future__ import annotations

import secrets

import dj_database_url
from django.utils.translation import gettext_lazy as _

from config import env

BASE_DIR = env.BASE_DIR
DATA_DIR = env.DATA_DIR
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _dev_secret_key() -> str:
    # A stable per-checkout key so sessions survive restarts of the dev server.
    path = DATA_DIR / "secret_key.txt"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.SECRET_KEY or _dev_secret_key()
DEBUG = env.DEBUG
ALLOWED_HOSTS = env.ALLOWED_HOSTS
CSRF_TRUSTED_ORIGINS = env.CSRF_TRUSTED_ORIGINS
PUBLIC_BASE_URL = env.PUBLIC_BASE_URL

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "anymail",
    "import_export",
    # ours, bottom layer first
    "notifications",
    "collections_app",
    "reconciliation",
    "connectors",
    "config",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "collections_app.api.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(env.DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default: WAL and a busy timeout let the web server and the
    # django-q2 cluster share the file without "database is locked" errors.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.TIME_ZONE
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = DATA_DIR / "media"

# Folders exchanged with banks and ERPs (drop folders in, outboxes out).
DROP_DIR = DATA_DIR / "drop"
OUTBOX_DIR = DATA_DIR / "outbox"
# issue 8: ERP connectors. Invoice files dropped in CONNECTORS_IMPORT_DIR/<column mapping name>/,
# status files written to CONNECTORS_EXPORT_DIR/<cursor name>/.
CONNECTORS_IMPORT_DIR = env.CONNECTORS_IMPORT_DIR or DROP_DIR / "invoices"
CONNECTORS_EXPORT_DIR = env.CONNECTORS_EXPORT_DIR or OUTBOX_DIR / "status"
SEPA_OUTGOING_DIR = env.SEPA_OUTGOING_DIR

EMAIL_BACKEND = env.EMAIL_BACKEND
EMAIL_HOST = env.EMAIL_HOST
EMAIL_PORT = env.EMAIL_PORT
EMAIL_HOST_USER = env.EMAIL_HOST_USER
EMAIL_HOST_PASSWORD = env.EMAIL_HOST_PASSWORD
EMAIL_USE_TLS = env.EMAIL_USE_TLS
DEFAULT_FROM_EMAIL = env.DEFAULT_FROM_EMAIL
ANYMAIL = {"SEND_DEFAULTS": {"tags": ["encaisse"]}}
if env.ANYMAIL_ESP_API_KEY:
    ANYMAIL["API_KEY"] = env.ANYMAIL_ESP_API_KEY

SMS_BACKEND = env.SMS_BACKEND
SMS_HTTP_URL = env.SMS_HTTP_URL
SMS_HTTP_USERNAME = env.SMS_HTTP_USERNAME
SMS_HTTP_PASSWORD = env.SMS_HTTP_PASSWORD
SMS_SENDER = env.SMS_SENDER
SMS_DEFAULT_REGION = env.SMS_DEFAULT_REGION
WEBHOOK_ALLOWED_HOSTS = env.WEBHOOK_ALLOWED_HOSTS

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["collections_app.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["collections_app.api.auth.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "collections_app.api.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "collections_app.api.errors.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Encaisse API",
    "DESCRIPTION": (
        "Collections API: customers, invoices, payment requests and pay links, payments, "
        "refunds, instalment plans, mandates and the event feed. Authenticate with "
        "`Authorization: Api-Key <key>`. Every POST accepts an `Idempotency-Key` header."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                        "description": "`Api-Key <key>`"}
        }
    },
    "SECURITY": [{"ApiKey": []}],
}

Q_CLUSTER = {
    "name": "encaisse",
    "orm": "default",
    "workers": env.Q_WORKERS,
    "timeout": 600,
    "retry": 900,
    "max_attempts": 5,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "poll": 1,
    "label": "Jobs",
}

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "encaisse_cache",
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "django-q": {"level": "WARNING"}},
}

LOGIN_URL = "admin:login"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Product settings
IDEMPOTENCY_KEY_TTL_HOURS = 24
PAY_LINK_DEFAULT_VALIDITY_DAYS = 90

# Pay pages (issue 3)
SEPA_PRENOTIFICATION_DAYS = 14  # the SEPA rulebook's default; creditors may agree fewer in the mandate terms
PAYPAGE_RATE_LIMIT = (60, 60)  # requests per client IP per window of seconds, on the public pages
PAYPAGE_CHECKOUT_TIMEOUT_MINUTES = 30  # after this, a card checkout left half done (dead worker, abandoned 3-D Secure) is finished by recover-card-checkouts
# issue 4: bank statements
STATEMENT_DROP_DIR = DROP_DIR / "statements"
RECONCILIATION_MAX_FILE_BYTES = 512 * 1024 * 1024
# An upload (admin, API) with more new transactions than this answers once they are stored and
# leaves their matching to the worker (a web server cuts long requests: gunicorn after 30 s).
RECONCILIATION_INLINE_MATCH_MAX = 2000
