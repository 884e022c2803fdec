"""The three back-office roles, as groups with permissions, kept in sync after every migrate.

Rules rather than lists, so that a model added later by any app gets the right rights:
- finance: every permission on our apps and on the job queue;
- operator: reads everything of the collections core, and works customers, pay links
  (payment requests) and instalment plans;
- auditor: reads everything, changes nothing.
"""
from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

OUR_APPS = ("collections_app", "notifications", "reconciliation", "connectors")
FINANCE, OPERATOR, AUDITOR = "finance", "operator", "auditor"
ROLES = (FINANCE, OPERATOR, AUDITOR)

OPERATOR_WORKS_ON = {
    # issue 6: operators record the disputes and promises to pay they hear on the phone
    "collections_app": {"customer", "paymentrequest", "installmentplan", "installment", "dunningpause"},
}


def _finance_permissions():
    return Permission.objects.filter(content_type__app_label__in=(*OUR_APPS, "django_q"))


def _auditor_permissions():
    return Permission.objects.filter(content_type__app_label__in=(*OUR_APPS, "django_q"),
                                     codename__startswith="view_")


def _operator_permissions():
    query = Q(content_type__app_label="collections_app", codename__startswith="view_")
    query |= Q(content_type__app_label="notifications", codename__startswith="view_")
    for app_label, models in OPERATOR_WORKS_ON.items():
        for model in models:
            query |= Q(content_type__app_label=app_label, content_type__model=model,
                       codename__in=[f"add_{model}", f"change_{model}", f"view_{model}"])
    return Permission.objects.filter(query)


def roles_sync() -> dict[str, int]:
    """Create or update the three groups; idempotent."""
    counts = {}
    for name, permissions in ((FINANCE, _finance_permissions()), (OPERATOR, _operator_permissions()),
                              (AUDITOR, _auditor_permissions())):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
        counts[name] = group.permissions.count()
    return counts


def roles_sync_on_migrate(sender, app_config=None, using="default", **kwargs) -> None:
    # post_migrate fires once per app, right after that app's permissions are created: syncing
    # after each of ours means the groups are complete once the last one has migrated.
    if app_config is None or app_config.label not in OUR_APPS:
        return
    roles_sync()
