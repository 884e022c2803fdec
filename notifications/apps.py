from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = _("Notifications and events")

    def ready(self) -> None:
        from notifications.dispatch import register_handler
        from notifications.rules import HANDLER_NAME, rules_handle_event

        # Every event type: rules may be written for any of them, the handler reads the active ones.
        register_handler(HANDLER_NAME, rules_handle_event)
