"""Benchmark settings: production-like (DEBUG off, real PostgreSQL from DATABASE_URL)."""
from config.settings.base import *  # noqa: F401,F403

DEBUG = False
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"handlers": [], "level": "ERROR"},
           "loggers": {"django-q": {"level": "ERROR"}}}
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["*"]
PAYPAGE_RATE_LIMIT = (10**9, 60)  # the benchmark measures the page, not the 429
