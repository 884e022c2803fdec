"""What the hosted pay pages need beyond the domain core: one row per form submission.

A pay-page form carries a one-time nonce (256 random bits, drawn when the form is rendered).
The first POST that presents it creates the row below; the unique constraint makes a replayed
or double-clicked submission find the existing row instead of paying a second time. The same
nonce is the gateway's idempotency key, so a replay that reached the gateway is one payment there too.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.models import (
    CurrencyField,
    InstallmentPlan,
    Mandate,
    MoneyField,
    Payment,
    PaymentRequest,
    SavedCard,
)

__all__ = ["PaySubmission"]


class PaySubmission(models.Model):
    class Kind(models.TextChoices):
        CARD = "card", _("Card payment")
        CARD_INSTALMENTS = "card_instalments", _("Instalments by card")
        SEPA = "sepa", _("SEPA direct debit")
        SEPA_INSTALMENTS = "sepa_instalments", _("Instalments by SEPA direct debit")

    class Status(models.TextChoices):
        AWAITING_CARD = "awaiting_card", _("Awaiting card details")
        PROCESSING = "processing", _("At the gateway")
        AWAITING_ACTION = "awaiting_action", _("Awaiting 3-D Secure")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    nonce = models.CharField(max_length=64, unique=True, editable=False)
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="pay_submissions",
                                        verbose_name=_("payment request"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.AWAITING_CARD,
                              db_index=True)
    amount = MoneyField(_("amount"))
    currency = CurrencyField()
    instalment_count = models.PositiveSmallIntegerField(_("instalments"), null=True, blank=True)
    save_card = models.BooleanField(_("save the card"), default=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    saved_card = models.ForeignKey(SavedCard, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    plan = models.ForeignKey(InstallmentPlan, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    collection_date = models.DateField(_("first debit date"), null=True, blank=True)
    action_url = models.CharField(_("3-D Secure page"), max_length=1000, blank=True)
    decline_code = models.CharField(_("decline code"), max_length=32, blank=True)
    # The gateway's one-time card token (never card data), kept only until the outcome is recorded:
    # if the worker dies mid-call, recovery asks the gateway again with the same idempotency key.
    card_token = models.CharField(_("gateway card token"), max_length=255, blank=True, editable=False)
    client_ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("pay-page submission")
        verbose_name_plural = _("pay-page submissions")
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="pay_submission_amount_gt_0"),
            models.CheckConstraint(condition=Q(instalment_count__isnull=True)
                                   | (Q(instalment_count__gte=2) & Q(instalment_count__lte=12)),
                                   name="pay_submission_instalments_2_12"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} {self.currency} ({self.get_status_display()})"
