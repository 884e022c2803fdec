from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

import importlib
import importlib.util

from config.roles import ROLES, roles_sync
from notifications.management.base import JsonCommand


DEMO_APPS = ("notifications", "collections_app", "collections_app.dunning", "reconciliation", "connectors")


def _seed_staff() -> list[str]:
    """One demo login per role, password = username (demo only)."""
    User = get_user_model()
    created = []
    for role in ROLES:
        username = f"demo-{role}"
        user, was_created = User.objects.get_or_create(username=username, defaults={
            "is_staff": True, "email": f"{username}@example.com"})
        if was_created:
            user.set_password(username)
            user.save()
            created.append(username)
        user.groups.add(Group.objects.get(name=role))
    return created


class Command(JsonCommand):
    help = "Load demo data (idempotent): a creditor, customers, invoices, pay links, payments, a plan."

    @transaction.atomic
    def run(self, **options):
        roles_sync()
        result = {"staff_created": _seed_staff()}
        lines = []
        # Each app seeds its own demo data, bottom layer first (a later app may use an earlier one's).
        for app in DEMO_APPS:
            if importlib.util.find_spec(f"{app}.demo") is None:
                continue
            result[app] = importlib.import_module(f"{app}.demo").seed()
            lines.append(f"{app}: " + ", ".join(f"{k}={v}" for k, v in result[app].items()))
        summary = ("Demo data ready.\n" + "\n".join(lines)
                   + "\nDemo staff logins (password = username): demo-finance, demo-operator, demo-auditor")
        return summary, result
