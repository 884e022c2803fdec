"""Production settings: everything security-relevant is on, secrets must come from the environment."""
from django.core.exceptions import ImproperlyConfigured

from config import env
from config.settings.base import *  # noqa: F401,F403

if not env.SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
if env.DATABASE_URL.startswith("sqlite"):
    raise ImproperlyConfigured("SQLite is for trying Encaisse out; set DATABASE_URL to PostgreSQL")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
