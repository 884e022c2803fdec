from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ConfigConfig(AppConfig):
    """The composition root: roles, schedules and cross-app commands (seed_demo)."""

    name = "config"
    verbose_name = "Encaisse"

    def ready(self) -> None:
        from config.roles import roles_sync_on_migrate

        post_migrate.connect(roles_sync_on_migrate, dispatch_uid="encaisse_roles_sync")
