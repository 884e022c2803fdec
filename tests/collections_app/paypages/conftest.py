from __future__ import annotations

import re

import pytest
from django.core.cache import cache

from tests.factories import CustomerFactory, make_request


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def debtor(creditor):
    return CustomerFactory(creditor=creditor, name="Marie Lefèvre", locale="fr")


@pytest.fixture
def pay_request(debtor):
    return make_request(debtor, amount="120.00", invoices=1)


def form_nonce(html: str) -> str:
    match = re.search(r'name="nonce" value="([^"]+)"', html)
    assert match, "no nonce in the form"
    return match.group(1)


def post_back_fields(html: str) -> dict[str, str]:
    """The hidden fields the sandbox gateway posts back to the merchant."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
