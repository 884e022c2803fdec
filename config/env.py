"""The one place where the process environment is read.

Settings modules import from here; nothing else in the code base touches os.environ
for configuration, so the whole list of knobs is visible in one file.
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _get(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value in (None, "") else value


def env_str(name: str, default: str = "") -> str:
    return _get(name, default) or ""


def env_bool(name: str, default: bool = False) -> bool:
    value = _get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = _get(name)
    return default if value is None else int(value)


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    value = _get(name)
    return Path(value) if value else default


SECRET_KEY = env_str("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
DATA_DIR = env_path("ENCAISSE_DATA_DIR", BASE_DIR / "var")
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://localhost:8000").rstrip("/")
TIME_ZONE = env_str("TIME_ZONE", "Europe/Paris")
# issue 5: where validated pain.008 files are dropped for the bank channel (EBICS client, manual upload)
SEPA_OUTGOING_DIR = env_path("SEPA_OUTGOING_DIR", DATA_DIR / "outgoing" / "sepa")

EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Encaisse <no-reply@encaisse.localhost>")
ANYMAIL_ESP_API_KEY = env_str("ANYMAIL_ESP_API_KEY", "")

SMS_BACKEND = env_str("SMS_BACKEND", "")
SMS_HTTP_URL = env_str("SMS_HTTP_URL", "")
SMS_HTTP_USERNAME = env_str("SMS_HTTP_USERNAME", "")
SMS_HTTP_PASSWORD = env_str("SMS_HTTP_PASSWORD", "")
SMS_SENDER = env_str("SMS_SENDER", "Encaisse")
# Numbers written without a country prefix ("06 12 34 56 78") are read as numbers of this country.
SMS_DEFAULT_REGION = env_str("SMS_DEFAULT_REGION", "FR")

WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])

Q_WORKERS = env_int("Q_WORKERS", 2)
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")

# issue 8: ERP connectors' folders (default: under DATA_DIR's drop/ and outbox/)
CONNECTORS_IMPORT_DIR = _get("CONNECTORS_IMPORT_DIR")
CONNECTORS_EXPORT_DIR = _get("CONNECTORS_EXPORT_DIR")
