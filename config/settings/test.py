"""Test settings: DATABASE_URL is set by scripts/test.sh to a throw-away PostgreSQL."""
from config.settings.base import *  # noqa: F401,F403
from config.settings.base import DATA_DIR

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
Q_CLUSTER = {**Q_CLUSTER, "sync": False}  # noqa: F405
DROP_DIR = DATA_DIR / "test-drop"
OUTBOX_DIR = DATA_DIR / "test-outbox"
SEPA_OUTGOING_DIR = DATA_DIR / "test-outgoing" / "sepa"
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "root": {"handlers": [], "level": "WARNING"}}
CONNECTORS_IMPORT_DIR = DROP_DIR / "invoices"
CONNECTORS_EXPORT_DIR = OUTBOX_DIR / "status"
