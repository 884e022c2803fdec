from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    verbose_name = _("Reconciliation")

    def ready(self) -> None:
        # Reminders wait while a transfer that probably pays the invoice sits in the review queue.
        # Registered from here so that collections_app never imports reconciliation.
        from collections_app.dunning.pauses import register_pause_provider
        from reconciliation.selectors import invoices_probably_covered

        register_pause_provider("transfer_awaiting_match",
                                lambda ids, today: invoices_probably_covered(invoice_ids=ids, today=today))
