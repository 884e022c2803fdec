"""Collection attempts (the first try and every retry of an instalment) and the retry
policies that decide, from the failure's reason code, whether and when to try again."""
from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.models import Creditor, Installment, Payment, PaymentMethod, TimeStamped

__all__ = ["RetryPolicy", "CollectionAttempt", "NoticeSent", "DEFAULT_RETRY_CODES"]

# The defaults: temporary causes retry, definitive ones never do.
DEFAULT_RETRY_CODES: dict[str, list[str]] = {
    PaymentMethod.SEPA_DD: ["AM04", "MS03"],
    PaymentMethod.CARD: ["insufficient_funds", "processing_error"],
}

COLLECTED_METHODS = [(PaymentMethod.CARD.value, PaymentMethod.CARD.label),
                     (PaymentMethod.SEPA_DD.value, PaymentMethod.SEPA_DD.label)]


class RetryPolicy(TimeStamped):
    class IntervalUnit(models.TextChoices):
        BUSINESS_DAYS = "business_days", _("TARGET2 business days")
        CALENDAR_DAYS = "calendar_days", _("calendar days")

    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, related_name="retry_policies",
                                 verbose_name=_("creditor"))
    method = models.CharField(_("method"), max_length=12, choices=COLLECTED_METHODS)
    max_retries = models.PositiveSmallIntegerField(_("new attempts"), default=2, validators=[MaxValueValidator(3)],
                                                   help_text=_("0 to 3 new attempts after the first failure."))
    interval = models.PositiveSmallIntegerField(_("interval"), default=5, validators=[MaxValueValidator(60)])
    interval_unit = models.CharField(_("interval unit"), max_length=16, choices=IntervalUnit.choices,
                                     default=IntervalUnit.BUSINESS_DAYS)
    retry_codes = models.JSONField(_("reason codes that retry"), default=list, blank=True,
                                   help_text=_("Every other reason code ends the collection at once."))
    notify_debtor = models.BooleanField(_("notify the debtor before a retry"), default=True)
    final_suspend = models.BooleanField(_("then suspend the plan"), default=True)
    final_alert_team = models.BooleanField(_("then alert the team"), default=True)
    final_send_pay_link = models.BooleanField(_("then send the debtor a pay link for the amount"), default=False)

    class Meta:
        ordering = ["creditor", "method"]
        verbose_name = _("retry policy")
        verbose_name_plural = _("retry policies")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "method"], name="retry_policy_per_creditor_and_method"),
            models.CheckConstraint(condition=Q(max_retries__lte=3), name="retry_policy_at_most_3"),
        ]

    def __str__(self) -> str:
        return f"{self.creditor} · {self.get_method_display()}"

    @classmethod
    def default_for(cls, *, creditor: Creditor, method: str) -> RetryPolicy:
        """The policy in force when the creditor has not saved one (not saved)."""
        return cls(creditor=creditor, method=method, retry_codes=list(DEFAULT_RETRY_CODES.get(method, [])))


class CollectionAttempt(TimeStamped):
    """One try at collecting an instalment. Number 1 is the first collection, 2-4 the retries.
    The unique (instalment, number) row is the claim: an attempt is debited or charged once
    (and a payment is in one attempt at most: one-to-one)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        SUBMITTED = "submitted", _("Submitted")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    # Empty for a one-off direct debit (a debtor paying a request by SEPA on the pay page): its
    # payment exists before the attempt, which only records that it went into a file.
    installment = models.ForeignKey(Installment, on_delete=models.CASCADE, related_name="attempts",
                                    verbose_name=_("instalment"), null=True, blank=True)
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="+", verbose_name=_("creditor"))
    number = models.PositiveSmallIntegerField(_("attempt"))
    method = models.CharField(_("method"), max_length=12, choices=COLLECTED_METHODS)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.SCHEDULED,
                              db_index=True)
    scheduled_for = models.DateField(_("scheduled for"), db_index=True)
    collection_date = models.DateField(_("collection date"), null=True, blank=True)
    sequence_type = models.CharField(_("sequence type"), max_length=4, blank=True)
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="collection_attempt", verbose_name=_("payment"))
    sepa_file = models.ForeignKey("collections_app.SepaFile", on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="attempts", verbose_name=_("SEPA file"))
    reason_code = models.CharField(_("reason code"), max_length=32, blank=True)
    reason_message = models.CharField(_("reason"), max_length=255, blank=True)
    will_retry = models.BooleanField(_("retry planned"), default=False)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["id"]  # no join: these rows are locked with FOR UPDATE
        verbose_name = _("collection attempt")
        verbose_name_plural = _("collection attempts")
        constraints = [
            models.UniqueConstraint(fields=["installment", "number"], name="attempt_number_per_installment"),
            models.CheckConstraint(condition=Q(number__gte=1) & Q(number__lte=4), name="attempt_number_1_to_4"),
        ]
        indexes = [models.Index(fields=["status", "method", "scheduled_for"], name="attempt_due_idx")]

    def __str__(self) -> str:
        return f"#{self.number} {self.installment}"


class NoticeSent(models.Model):
    """A notice emitted once (pre-notification, card expiring): the unique key makes a job that
    runs twice, or in two workers, emit it once."""

    kind = models.CharField(max_length=32)
    key = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("notice sent")
        verbose_name_plural = _("notices sent")
        constraints = [models.UniqueConstraint(fields=["kind", "key"], name="notice_sent_once")]
