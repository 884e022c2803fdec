from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = _("ERP connectors")

    def ready(self) -> None:
        from connectors.exports import HANDLER_NAME, is_status_event, status_event_queue
        from notifications.catalog import CATALOG
        from notifications.dispatch import register_handler

        register_handler(HANDLER_NAME, status_event_queue, {name for name in CATALOG if is_status_event(name)})
