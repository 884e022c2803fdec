"""Virtual IBANs: one per customer or per debt (payment request), drawn from the creditor's range.

The range row is the allocation counter: allocations lock it (SELECT ... FOR UPDATE), take the
next number and move it on, so two allocations can never draw the same number; the unique
constraints on the IBAN and on (range, number) are the last line of defence. Numbers are never
handed out twice, so a deactivated virtual IBAN is never re-allocated.
"""
from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.models import Creditor, Customer, PaymentRequest, TimeStamped

__all__ = ["VirtualIBANRange", "VirtualIBAN"]


class VirtualIBANRange(TimeStamped):
    class AllocationMode(models.TextChoices):
        PER_CUSTOMER = "per_customer", _("One per customer")
        PER_DEBT = "per_debt", _("One per debt (payment request)")

    creditor = models.OneToOneField(Creditor, on_delete=models.PROTECT, related_name="virtual_iban_range",
                                    verbose_name=_("creditor"))
    country = models.CharField(_("country"), max_length=2, default="FR")
    bank_code = models.CharField(_("bank code"), max_length=12)
    branch_code = models.CharField(_("branch code"), max_length=12, blank=True)
    account_prefix = models.CharField(_("account number prefix"), max_length=20, blank=True)
    account_length = models.PositiveSmallIntegerField(
        _("account number length"), default=11, validators=[MinValueValidator(4), MaxValueValidator(30)])
    allocation_mode = models.CharField(_("allocation"), max_length=16, choices=AllocationMode.choices,
                                       default=AllocationMode.PER_CUSTOMER)
    next_number = models.PositiveBigIntegerField(_("next number"), default=1, editable=False)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("virtual IBAN range")
        verbose_name_plural = _("virtual IBAN ranges")

    def __str__(self) -> str:
        return f"{self.creditor} {self.country} {self.bank_code} {self.branch_code} {self.account_prefix}…"

    @property
    def capacity(self) -> int:
        return 10 ** (self.account_length - len(self.account_prefix)) - 1


class VirtualIBAN(TimeStamped):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DEACTIVATED = "deactivated", _("Deactivated")

    range = models.ForeignKey(VirtualIBANRange, on_delete=models.PROTECT, related_name="virtual_ibans",
                              verbose_name=_("range"))
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="virtual_ibans",
                                 verbose_name=_("creditor"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="virtual_ibans",
                                 verbose_name=_("customer"))
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="virtual_ibans",
                                        null=True, blank=True, verbose_name=_("payment request"))
    number = models.PositiveBigIntegerField(_("number"))
    iban = models.CharField(_("IBAN"), max_length=34, unique=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE,
                              db_index=True)
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("virtual IBAN")
        verbose_name_plural = _("virtual IBANs")
        constraints = [
            models.UniqueConstraint(fields=["range", "number"], name="virtual_iban_number_unique"),
            # At most one active virtual IBAN per customer (per-customer mode) or per request.
            models.UniqueConstraint(fields=["customer"], condition=Q(status="active", payment_request__isnull=True),
                                    name="virtual_iban_active_per_customer"),
            models.UniqueConstraint(fields=["payment_request"],
                                    condition=Q(status="active", payment_request__isnull=False),
                                    name="virtual_iban_active_per_request"),
        ]

    def __str__(self) -> str:
        return self.iban
