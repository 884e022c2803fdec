"""For tests that run the product in another process or thread (to kill it, or to race it)."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction


def database_url() -> str:
    """DATABASE_URL of the test database, for a child process to use the same one."""
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@/{db['NAME']}?host={db['HOST']}&port={db['PORT']}"


@contextmanager
def transaction_held_open(work: Callable[[], object]) -> Iterator[None]:
    """Run `work` in a transaction of another worker (a thread with its own database
    connection) and keep that transaction open, with the locks it took, until the block ends."""
    holding, release = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def worker() -> None:
        try:
            with transaction.atomic():
                work()
                holding.set()
                release.wait(30)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            failed.append(exc)
            holding.set()
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert holding.wait(10) and not failed, failed
        yield
    finally:
        release.set()
        thread.join()
