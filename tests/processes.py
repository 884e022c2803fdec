"""For tests that run the product in a process of its own (to kill it, or to race it)."""
from __future__ import annotations

from django.conf import settings


def database_url() -> str:
    """DATABASE_URL of the test database, for a child process to use the same one."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"
