from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from tests.factories import CreditorFactory, CustomerFactory
from tests.servers import allow_local, receiver, smtp_sink  # noqa: F401 - shared fixtures


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" in engine:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (running on SQLite: PostgreSQL binaries not found)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def english_outside_requests():
    """Domain errors raised outside a request speak the active language; tests read them in English.
    Requests still choose their language (LocaleMiddleware, the debtor's locale)."""
    from django.utils import translation

    with translation.override("en"):
        yield


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def creditor(db):
    return CreditorFactory()


@pytest.fixture
def customer(creditor):
    return CustomerFactory(creditor=creditor)


@pytest.fixture
def api_key(db):
    from collections_app.api.auth import api_key_create

    key, raw = api_key_create(name="tests")
    key.raw = raw
    return key


@pytest.fixture
def api(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key.raw}")
    return client
