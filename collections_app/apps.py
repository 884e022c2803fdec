from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CollectionsAppConfig(AppConfig):
    name = "collections_app"
    verbose_name = _("Collections")

    def ready(self) -> None:
        from collections_app.virtual_ibans import handlers as virtual_iban_handlers

        virtual_iban_handlers.register()
