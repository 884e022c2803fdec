"""Every admin page of every model opens, with the demo data loaded, in French and in English:
the back-office is where finance staff spend their day."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    call_command("seed_demo", verbosity=0)


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_changelist_add_and_change_page_opens(demo, admin_client, language):
    admin_client.defaults["HTTP_ACCEPT_LANGUAGE"] = language
    broken, visited = [], 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        pages = [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")]
        first = model_admin.get_queryset(_request()).first()
        if first is not None:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
        try:
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        except NoReverseMatch:
            pass
        for url in pages:
            visited += 1
            response = admin_client.get(url)
            if response.status_code not in (200, 302, 403):
                broken.append(f"{url}: {response.status_code}")
    assert visited > 60 and not broken, broken


def _request():
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.filter(is_superuser=True).first()
    return request
