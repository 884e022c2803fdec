"""Reminder (dunning) scenarios: steps and their templates, assignment, pauses, and the
reminders themselves (one claim row per invoice and step).

A Reminder row is the claim: its unique constraint (invoice, step) is what makes a step go out
at most once, whatever the number of run_dunning processes. Its life:

    claimed ──(invoice re-read under lock, still open)──▶ sending ──▶ sent
       │                                                     │  └──▶ failed (refused for good)
       └──(invoice paid / cancelled / no address)──▶ skipped  └──▶ unknown (the process died while
                                                                  handing the message over)
Earlier steps that were missed (downtime, a pause) are written as skipped ("superseded") so
that only the latest due step is ever sent.

Payment requests without any invoice (a debt on its own) get reminders too: their claim row
names the request instead of an invoice, and their "due date" is the day they were created.
"""
from __future__ import annotations

import datetime as dt
import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.dunning import lookups  # noqa: F401 - registers the __any_of lookup
from collections_app.models import Creditor, Customer, Invoice, MoneyField, PaymentRequest

__all__ = [
    "DunningScenario",
    "DunningStep",
    "DunningStepTemplate",
    "DunningRule",
    "DunningOverride",
    "DunningPause",
    "Reminder",
    "DunningEscalation",
]

LOCALES = [("fr", "Français"), ("en", "English")]


def default_weekdays() -> list[int]:
    return [0, 1, 2, 3, 4]


class DunningScenario(models.Model):
    class Escalation(models.TextChoices):
        STOP = "stop", _("Stop")
        ALERT_TEAM = "alert_team", _("Alert the team")
        LITIGATION = "litigation", _("Flag for litigation")

    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, related_name="dunning_scenarios",
                                 verbose_name=_("creditor"))
    name = models.CharField(_("name"), max_length=100)
    is_default = models.BooleanField(_("default scenario of the creditor"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    escalation = models.CharField(_("after the last step"), max_length=12, choices=Escalation.choices,
                                  default=Escalation.STOP)
    escalation_after_days = models.PositiveSmallIntegerField(
        _("escalate after (days after the last step)"), default=7)
    window_start = models.TimeField(_("send from (customer's local time)"), default=dt.time(9, 0))
    window_end = models.TimeField(_("send until (customer's local time)"), default=dt.time(19, 0))
    weekdays = models.JSONField(_("send on weekdays"), default=default_weekdays, blank=True,
                                help_text=_("0 = Monday … 6 = Sunday"))
    skip_non_business_days = models.BooleanField(_("skip non-business days"), default=True,
                                                 help_text=_("No reminder on French bank holidays"))
    paid_within_days = models.PositiveSmallIntegerField(
        _("statistics: paid within (days)"), default=7,
        help_text=_("A reminder counts as effective when the invoice is paid within this many days"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["creditor", "name"]
        verbose_name = _("reminder scenario")
        verbose_name_plural = _("reminder scenarios")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "name"], name="dunning_scenario_name_unique"),
            models.UniqueConstraint(fields=["creditor"], condition=Q(is_default=True),
                                    name="dunning_one_default_scenario"),
            models.CheckConstraint(condition=Q(window_start__lt=models.F("window_end")),
                                   name="dunning_window_start_before_end"),
        ]

    def __str__(self) -> str:
        return self.name


class DunningStep(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        BOTH = "both", _("Email and SMS")

    scenario = models.ForeignKey(DunningScenario, on_delete=models.CASCADE, related_name="steps",
                                 verbose_name=_("scenario"))
    offset_days = models.SmallIntegerField(
        _("days from the due date"), validators=[MinValueValidator(-90), MaxValueValidator(365)],
        help_text=_("Negative: before the due date"))
    channel = models.CharField(_("channel"), max_length=5, choices=Channel.choices, default=Channel.EMAIL)
    name = models.CharField(_("name"), max_length=100, blank=True)

    class Meta:
        ordering = ["scenario", "offset_days"]
        verbose_name = _("reminder step")
        verbose_name_plural = _("reminder steps")
        constraints = [
            models.UniqueConstraint(fields=["scenario", "offset_days"], name="dunning_step_offset_unique"),
        ]

    def __str__(self) -> str:
        label = self.name or _("Step")
        return f"{self.scenario} · {label} (J{self.offset_days:+d})"

    @property
    def sends_email(self) -> bool:
        return self.channel in (self.Channel.EMAIL, self.Channel.BOTH)

    @property
    def sends_sms(self) -> bool:
        return self.channel in (self.Channel.SMS, self.Channel.BOTH)


class DunningStepTemplate(models.Model):
    """What one step says in one language. Rendered in the restricted template engine of the
    notifications app; the variables are listed in docs/dunning.md (payload.amount_due, …)."""

    step = models.ForeignKey(DunningStep, on_delete=models.CASCADE, related_name="templates",
                             verbose_name=_("step"))
    locale = models.CharField(_("language"), max_length=8, choices=LOCALES, default="fr")
    subject = models.CharField(_("email subject"), max_length=200, blank=True)
    body_text = models.TextField(_("email body"), blank=True)
    sms_text = models.TextField(_("SMS text"), blank=True)
    late_fee_text = models.TextField(_("late fee text"), blank=True,
                                     help_text=_("Available to the templates as payload.late_fee_text"))

    class Meta:
        ordering = ["step", "locale"]
        verbose_name = _("step template")
        verbose_name_plural = _("step templates")
        constraints = [models.UniqueConstraint(fields=["step", "locale"], name="dunning_template_locale_unique")]

    def __str__(self) -> str:
        return f"{self.step} [{self.locale}]"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from notifications.templating import TemplateRefused, template_check

        errors = {}
        for name in ("subject", "body_text", "sms_text", "late_fee_text"):
            try:
                template_check(getattr(self, name))
            except TemplateRefused as exc:
                errors[name] = str(exc)
        if errors:
            raise ValidationError(errors)


class DunningRule(models.Model):
    """Assignment by customer tag and invoice amount; the first matching rule (by priority) wins
    over the creditor's default scenario."""

    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, related_name="dunning_rules",
                                 verbose_name=_("creditor"))
    scenario = models.ForeignKey(DunningScenario, on_delete=models.CASCADE, related_name="rules",
                                 verbose_name=_("scenario"))
    priority = models.PositiveSmallIntegerField(_("priority"), default=100, help_text=_("Lowest first"))
    tag = models.CharField(_("customer tag (segment)"), max_length=50, blank=True)
    min_amount = MoneyField(_("invoice amount from"), null=True, blank=True)
    max_amount = MoneyField(_("invoice amount up to"), null=True, blank=True)

    class Meta:
        ordering = ["creditor", "priority", "id"]
        verbose_name = _("assignment rule")
        verbose_name_plural = _("assignment rules")

    def __str__(self) -> str:
        return f"{self.priority}: {self.tag or '*'} → {self.scenario}"

    def matches(self, *, tags: list[str], amount) -> bool:
        if self.tag and self.tag not in (tags or []):
            return False
        if self.min_amount is not None and amount < self.min_amount:
            return False
        if self.max_amount is not None and amount > self.max_amount:
            return False
        return True


class DunningOverride(models.Model):
    """A scenario forced for one customer or one invoice, or their exclusion from reminders."""

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, null=True, blank=True,
                                    related_name="dunning_override", verbose_name=_("customer"))
    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="dunning_override", verbose_name=_("invoice"))
    scenario = models.ForeignKey(DunningScenario, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="overrides", verbose_name=_("scenario"))
    excluded = models.BooleanField(_("no reminders"), default=False)
    note = models.CharField(_("note"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("scenario override")
        verbose_name_plural = _("scenario overrides")
        constraints = [
            models.CheckConstraint(condition=Q(customer__isnull=True) ^ Q(invoice__isnull=True),
                                   name="dunning_override_one_target"),
            models.CheckConstraint(condition=Q(excluded=True) ^ Q(scenario__isnull=False),
                                   name="dunning_override_scenario_or_excluded"),
        ]

    def __str__(self) -> str:
        target = self.invoice or self.customer
        what = _("excluded") if self.excluded else self.scenario
        return f"{target}: {what}"


class DunningPause(models.Model):
    """A dispute or a promise to pay, on one invoice or on all of a customer's invoices."""

    class Kind(models.TextChoices):
        DISPUTE = "dispute", _("Dispute")
        PROMISE_TO_PAY = "promise_to_pay", _("Promise to pay")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        ENDED = "ended", _("Ended")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="dunning_pauses",
                                 verbose_name=_("customer"))
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, null=True, blank=True,
                                related_name="dunning_pauses", verbose_name=_("invoice"),
                                help_text=_("Empty: every invoice of the customer"))
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    until = models.DateField(_("until"), null=True, blank=True,
                             help_text=_("Promise to pay: the promised date; reminders resume the day after"))
    note = models.CharField(_("note"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE,
                              db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("reminder pause")
        verbose_name_plural = _("reminder pauses")
        constraints = [
            models.CheckConstraint(condition=~Q(kind="promise_to_pay") | Q(until__isnull=False),
                                   name="dunning_promise_has_date"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.invoice or self.customer}"


class Reminder(models.Model):
    class Status(models.TextChoices):
        CLAIMED = "claimed", _("Claimed")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")
        UNKNOWN = "unknown", _("Outcome unknown")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # One of the two: an invoice, or a payment request that has no invoice (a debt on its own).
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="reminders",
                                verbose_name=_("invoice"), null=True, blank=True)
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.CASCADE, related_name="reminders",
                                        verbose_name=_("payment request"), null=True, blank=True)
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, related_name="reminders",
                             verbose_name=_("step"))
    scenario = models.ForeignKey(DunningScenario, on_delete=models.PROTECT, related_name="reminders",
                                 verbose_name=_("scenario"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.CLAIMED,
                              db_index=True)
    step_date = models.DateField(_("step date"))
    run_date = models.DateField(_("run date"))
    claim_token = models.UUIDField(editable=False, db_index=True)
    channel = models.CharField(_("channel"), max_length=5, choices=DunningStep.Channel.choices)
    channels_done = models.JSONField(default=list, blank=True)
    locale = models.CharField(_("language"), max_length=8, blank=True)
    email = models.CharField(_("email"), max_length=254, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    amount_due = MoneyField(_("amount shown"), null=True, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    subject = models.CharField(_("subject"), max_length=255, blank=True)
    body_text = models.TextField(_("email body"), blank=True)
    sms_text = models.TextField(_("SMS text"), blank=True)
    skip_reason = models.CharField(_("why skipped"), max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), auto_now_add=True)
    sending_started_at = models.DateTimeField(_("sending started at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-claimed_at", "-id"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        constraints = [
            models.UniqueConstraint(fields=["invoice", "step"], name="reminder_once_per_invoice_step"),
            models.UniqueConstraint(fields=["payment_request", "step"], name="reminder_once_per_request_step"),
            models.CheckConstraint(condition=Q(invoice__isnull=True) ^ Q(payment_request__isnull=True),
                                   name="reminder_invoice_or_request"),
        ]
        indexes = [models.Index(fields=["status", "id"], name="reminder_status_id_idx")]

    def __str__(self) -> str:
        return f"{self.invoice or self.payment_request} · {self.step}"


class DunningEscalation(models.Model):
    """What happened after the last step of a scenario: once per invoice and scenario."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="dunning_escalations",
                                verbose_name=_("invoice"), null=True, blank=True)
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.CASCADE,
                                        related_name="dunning_escalations", verbose_name=_("payment request"),
                                        null=True, blank=True)
    scenario = models.ForeignKey(DunningScenario, on_delete=models.PROTECT, related_name="escalations",
                                 verbose_name=_("scenario"))
    action = models.CharField(_("action"), max_length=12, choices=DunningScenario.Escalation.choices)
    run_date = models.DateField(_("run date"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("escalation")
        verbose_name_plural = _("escalations")
        constraints = [
            models.UniqueConstraint(fields=["invoice", "scenario"], name="dunning_escalation_once"),
            models.UniqueConstraint(fields=["payment_request", "scenario"], name="dunning_escalation_once_request"),
            models.CheckConstraint(condition=Q(invoice__isnull=True) ^ Q(payment_request__isnull=True),
                                   name="dunning_escalation_invoice_or_request"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice or self.payment_request}: {self.get_action_display()}"
