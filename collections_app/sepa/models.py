"""SEPA direct-debit collection: per-creditor settings, the pain.008 files sent to the bank,
the pain.002 status reports received back, and mandate amendments waiting for the next file."""
from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.models import Creditor, Mandate, MoneyField, TimeStamped

__all__ = ["CollectionSettings", "SepaFile", "StatusReport", "MandateAmendment", "SchemeVersion", "SequenceType"]


class SchemeVersion(models.TextChoices):
    V02 = "pain.008.001.02", "pain.008.001.02"
    V08 = "pain.008.001.08", "pain.008.001.08"


class SequenceType(models.TextChoices):
    FRST = "FRST", _("First collection")
    RCUR = "RCUR", _("Recurring collection")
    FNAL = "FNAL", _("Final collection")
    OOFF = "OOFF", _("One-off collection")


class CollectionSettings(TimeStamped):
    """How one creditor's direct debits and card instalments are collected (defaults apply
    when a creditor has no row)."""

    creditor = models.OneToOneField(Creditor, on_delete=models.CASCADE, related_name="collection_settings",
                                    verbose_name=_("creditor"))
    scheme_version = models.CharField(_("pain.008 version"), max_length=20, choices=SchemeVersion.choices,
                                      default=SchemeVersion.V02,
                                      help_text=_("The version the creditor's bank accepts."))
    lead_days = models.PositiveSmallIntegerField(
        _("lead time (TARGET2 business days)"), default=1, validators=[MinValueValidator(1), MaxValueValidator(14)],
        help_text=_("Business days between sending the file and the collection date (SEPA Core: at least 1)."))
    batch_booking = models.BooleanField(_("batch booking"), default=True,
                                        help_text=_("One credit on the creditor's account per file."))
    pre_notification_days = models.PositiveSmallIntegerField(
        _("pre-notification (days before collection)"), default=5, validators=[MaxValueValidator(30)])
    card_expiry_warning_days = models.PositiveSmallIntegerField(
        _("card expiry warning (days before)"), default=30, validators=[MaxValueValidator(120)])

    class Meta:
        verbose_name = _("collection settings")
        verbose_name_plural = _("collection settings")

    def __str__(self) -> str:
        return str(self.creditor)


class SepaFile(TimeStamped):
    """One pain.008 message: one creditor, one collection date, one sequence type. Stored only
    once it has validated against the official XSD."""

    class Status(models.TextChoices):
        GENERATED = "generated", _("Generated")
        WRITTEN = "written", _("Written to the outgoing folder")

    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="sepa_files",
                                 verbose_name=_("creditor"))
    collection_date = models.DateField(_("collection date"), db_index=True)
    sequence_type = models.CharField(_("sequence type"), max_length=4, choices=SequenceType.choices)
    scheme = models.CharField(_("scheme"), max_length=4, default=Mandate.Scheme.CORE,
                              choices=Mandate.Scheme.choices)
    scheme_version = models.CharField(_("pain.008 version"), max_length=20, choices=SchemeVersion.choices)
    message_id = models.CharField(_("message id"), max_length=35, unique=True)
    file_name = models.CharField(_("file name"), max_length=120)
    transaction_count = models.PositiveIntegerField(_("transactions"))
    control_sum = MoneyField(_("control sum"))
    currency = models.CharField(_("currency"), max_length=3, default="EUR")
    content = models.TextField(_("XML"), editable=False)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.GENERATED,
                              db_index=True)
    written_path = models.CharField(_("written to"), max_length=500, blank=True)
    written_at = models.DateTimeField(_("written at"), null=True, blank=True)

    class Meta:
        ordering = ["-collection_date", "-id"]
        verbose_name = _("SEPA direct-debit file")
        verbose_name_plural = _("SEPA direct-debit files")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "collection_date", "sequence_type", "scheme",
                                            "scheme_version"], name="sepa_file_one_per_date_and_sequence"),
            models.CheckConstraint(condition=Q(control_sum__gt=Decimal("0")), name="sepa_file_control_sum_gt_0"),
            models.CheckConstraint(condition=Q(transaction_count__gt=0), name="sepa_file_not_empty"),
        ]

    def __str__(self) -> str:
        return self.file_name


class StatusReport(TimeStamped):
    """An imported pain.002 payment status report (the bank's rejects of our pain.008)."""

    message_id = models.CharField(_("message id"), max_length=35, unique=True)
    original_message_id = models.CharField(_("original message id"), max_length=35, blank=True, db_index=True)
    file_name = models.CharField(_("file name"), max_length=255, blank=True)
    content = models.TextField(_("XML"), editable=False)
    rejected_count = models.PositiveIntegerField(_("rejected"), default=0)
    accepted_count = models.PositiveIntegerField(_("accepted"), default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("payment status report (pain.002)")
        verbose_name_plural = _("payment status reports (pain.002)")

    def __str__(self) -> str:
        return self.message_id


class MandateAmendment(TimeStamped):
    """The debtor's account changed: the next collection on the mandate carries the original
    account in its amendment details (AmdmntInd), then the amendment is done."""

    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, related_name="amendments",
                                verbose_name=_("mandate"))
    previous_iban = models.CharField(_("previous IBAN"), max_length=34)
    previous_bic = models.CharField(_("previous BIC"), max_length=11, blank=True)
    new_iban = models.CharField(_("new IBAN"), max_length=34)
    new_bic = models.CharField(_("new BIC"), max_length=11, blank=True)
    sepa_file = models.ForeignKey(SepaFile, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="amendments", verbose_name=_("carried in file"))

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("mandate amendment")
        verbose_name_plural = _("mandate amendments")

    def __str__(self) -> str:
        return f"{self.mandate} …{self.previous_iban[-4:]} → …{self.new_iban[-4:]}"
