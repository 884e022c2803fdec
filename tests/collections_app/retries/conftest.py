import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english():
    """Messages are asserted in English; the default language (fr) gets its catalog at merge time."""
    with translation.override("en"):
        yield
