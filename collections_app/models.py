"""Domain core: creditors, customers, invoices, payment requests, payments and what hangs off them.

Rules of the house:
- money is Decimal + currency (collections_app.money), never float;
- a model's `status` is only changed by collections_app.services, which checks the
  current state and writes an event in the outbox in the same transaction;
- balances (amount_paid, credit_balance) are denormalised for speed and only ever
  updated by the same services, under a row lock.
"""
from __future__ import annotations

import secrets
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from collections_app.money import CURRENCY_CHOICES, DECIMAL_PLACES, MAX_DIGITS

# Crockford-like alphabet without 0/O, 1/I/L, U: safe to read out on the phone.
SHORT_REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
SHORT_REFERENCE_LENGTH = 8


def new_short_reference() -> str:
    return "".join(secrets.choice(SHORT_REFERENCE_ALPHABET) for _ in range(SHORT_REFERENCE_LENGTH))


def new_token() -> str:
    # 32 random bytes = 256 bits, URL-safe.
    return secrets.token_urlsafe(32)


def MoneyField(verbose_name, **kwargs) -> models.DecimalField:  # noqa: N802 - reads like a field class
    kwargs.setdefault("max_digits", MAX_DIGITS)
    kwargs.setdefault("decimal_places", DECIMAL_PLACES)
    return models.DecimalField(verbose_name, **kwargs)


def CurrencyField(verbose_name=_("currency"), **kwargs) -> models.CharField:  # noqa: N802
    kwargs.setdefault("max_length", 3)
    kwargs.setdefault("choices", CURRENCY_CHOICES)
    kwargs.setdefault("default", "EUR")
    return models.CharField(verbose_name, **kwargs)


class PaymentMethod(models.TextChoices):
    CARD = "card", _("Card")
    SEPA_DD = "sepa_dd", _("SEPA Direct Debit")
    TRANSFER = "transfer", _("Bank transfer")
    OTHER = "other", _("Other")


ALL_PAY_METHODS = [PaymentMethod.CARD, PaymentMethod.SEPA_DD, PaymentMethod.TRANSFER]


class TimeStamped(models.Model):
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True, db_index=True)

    class Meta:
        abstract = True


class Creditor(TimeStamped):
    """The legal entity that is owed money (the company, or the agency's client)."""

    name = models.CharField(_("name"), max_length=140)
    legal_name = models.CharField(_("legal name"), max_length=140, blank=True)
    registration_number = models.CharField(_("registration number (SIREN/SIRET)"), max_length=20, blank=True)
    vat_number = models.CharField(_("VAT number"), max_length=20, blank=True)
    sepa_creditor_identifier = models.CharField(_("SEPA creditor identifier (ICS)"), max_length=35, blank=True)
    iban = models.CharField(_("IBAN"), max_length=34, blank=True)
    bic = models.CharField(_("BIC"), max_length=11, blank=True)
    email = models.EmailField(_("email"), blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    website = models.URLField(_("website"), blank=True)
    address_line1 = models.CharField(_("address"), max_length=140, blank=True)
    address_line2 = models.CharField(_("address (line 2)"), max_length=140, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=16, blank=True)
    city = models.CharField(_("city"), max_length=70, blank=True)
    country = models.CharField(_("country"), max_length=2, default="FR")
    time_zone = models.CharField(_("time zone"), max_length=64, default="Europe/Paris")
    default_currency = CurrencyField(_("default currency"))
    default_locale = models.CharField(_("default locale"), max_length=8, default="fr",
                                      choices=[("fr", "Français"), ("en", "English")])
    # What the debtor may do on the pay page
    allow_partial_payments = models.BooleanField(_("allow partial payments"), default=True)
    min_partial_amount = MoneyField(_("minimum partial payment"), default=Decimal("10.00"))
    allow_instalments = models.BooleanField(_("allow instalments"), default=True)
    max_instalments = models.PositiveSmallIntegerField(
        _("maximum instalments"), default=3, validators=[MinValueValidator(2), MaxValueValidator(12)])
    min_instalment_amount = MoneyField(_("minimum instalment amount"), default=Decimal("20.00"))
    instalment_methods = models.JSONField(_("instalment methods"), default=list, blank=True,
                                          help_text=_("card and/or sepa_dd"))
    pay_link_validity_days = models.PositiveIntegerField(_("pay link validity (days)"), default=90)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("creditor")
        verbose_name_plural = _("creditors")

    def __str__(self) -> str:
        return self.name


class Customer(TimeStamped):
    """A debtor of one creditor, identified by the creditor's own reference."""

    # Not indexed alone: the unique (creditor, external_ref) index starts with it, and an
    # import writes every index of every row it creates.
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="customers",
                                 verbose_name=_("creditor"), db_index=False)
    external_ref = models.CharField(_("external reference"), max_length=64)
    name = models.CharField(_("name"), max_length=140)
    company_name = models.CharField(_("company"), max_length=140, blank=True)
    is_business = models.BooleanField(_("business customer"), default=False)
    email = models.EmailField(_("email"), blank=True, db_index=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    locale = models.CharField(_("locale"), max_length=8, default="fr",
                              choices=[("fr", "Français"), ("en", "English")])
    time_zone = models.CharField(_("time zone"), max_length=64, default="Europe/Paris")
    address_line1 = models.CharField(_("address"), max_length=140, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=16, blank=True)
    city = models.CharField(_("city"), max_length=70, blank=True)
    country = models.CharField(_("country"), max_length=2, default="FR")
    tags = models.JSONField(_("tags"), default=list, blank=True)
    currency = CurrencyField()
    credit_balance = MoneyField(_("credit balance"), default=Decimal("0.00"))
    portal_token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    notes = models.TextField(_("notes"), blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "external_ref"], name="customer_ref_per_creditor"),
            models.CheckConstraint(condition=Q(credit_balance__gte=0), name="customer_credit_balance_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_ref})"


class Invoice(TimeStamped):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PARTIALLY_PAID = "partially_paid", _("Partially paid")
        PAID = "paid", _("Paid")
        CANCELLED = "cancelled", _("Cancelled")
        WRITTEN_OFF = "written_off", _("Written off")

    OPEN_STATUSES = (Status.OPEN, Status.PARTIALLY_PAID)

    # Not indexed alone: invoice_ref_per_creditor and invoice_customer_status_idx start with them.
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="invoices",
                                 verbose_name=_("creditor"), db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices",
                                 verbose_name=_("customer"), db_index=False)
    external_ref = models.CharField(_("invoice number"), max_length=64)
    description = models.CharField(_("description"), max_length=255, blank=True)
    currency = CurrencyField()
    amount_total = MoneyField(_("amount"))
    amount_paid = MoneyField(_("amount paid"), default=Decimal("0.00"))
    amount_written_off = MoneyField(_("amount written off"), default=Decimal("0.00"))
    issue_date = models.DateField(_("issue date"))
    due_date = models.DateField(_("due date"), db_index=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN,
                              db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "external_ref"], name="invoice_ref_per_creditor"),
            models.CheckConstraint(condition=Q(amount_total__gt=0), name="invoice_amount_gt_0"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0), name="invoice_paid_gte_0"),
            models.CheckConstraint(
                condition=Q(amount_paid__lte=F("amount_total") - F("amount_written_off")),
                name="invoice_paid_lte_total"),
        ]
        indexes = [models.Index(fields=["customer", "status"], name="invoice_customer_status_idx")]

    def __str__(self) -> str:
        return self.external_ref

    @property
    def amount_due(self) -> Decimal:
        return self.amount_total - self.amount_paid - self.amount_written_off


class PaymentRequest(TimeStamped):
    """What the debtor is asked to pay, reachable through a secret pay link."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        PARTIALLY_PAID = "partially_paid", _("Partially paid")
        PAID = "paid", _("Paid")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")

    OPEN_STATUSES = (Status.OPEN, Status.PARTIALLY_PAID)

    # Not indexed alone: payment_request_ref_per_creditor starts with it.
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="payment_requests",
                                 verbose_name=_("creditor"), db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payment_requests",
                                 verbose_name=_("customer"))
    invoices = models.ManyToManyField(Invoice, related_name="payment_requests", blank=True,
                                      verbose_name=_("invoices"))
    reference = models.CharField(_("reference"), max_length=64)
    short_reference = models.CharField(_("short reference"), max_length=SHORT_REFERENCE_LENGTH, unique=True,
                                       default=new_short_reference, editable=False)
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    description = models.CharField(_("description"), max_length=255, blank=True)
    currency = CurrencyField()
    amount = MoneyField(_("amount"))
    amount_paid = MoneyField(_("amount paid"), default=Decimal("0.00"))
    allowed_methods = models.JSONField(_("allowed methods"), default=list)
    allow_partial = models.BooleanField(_("allow partial payments"), null=True, blank=True,
                                        help_text=_("Empty: the creditor's setting"))
    min_partial_amount = MoneyField(_("minimum partial payment"), null=True, blank=True)
    allow_instalments = models.BooleanField(_("allow instalments"), null=True, blank=True,
                                            help_text=_("Empty: the creditor's setting"))
    max_instalments = models.PositiveSmallIntegerField(_("maximum instalments"), null=True, blank=True,
                                                       validators=[MinValueValidator(2), MaxValueValidator(12)])
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True, db_index=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.OPEN,
                              db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("payment request")
        verbose_name_plural = _("payment requests")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "reference"], name="payment_request_ref_per_creditor"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_request_amount_gt_0"),
            models.CheckConstraint(condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("amount")),
                                   name="payment_request_paid_lte_amount"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def amount_due(self) -> Decimal:
        return self.amount - self.amount_paid

    @property
    def pay_url(self) -> str:
        return f"{settings.PUBLIC_BASE_URL}/pay/{self.token}/"


class Mandate(TimeStamped):
    """A SEPA Direct Debit mandate signed by the debtor."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")

    class Scheme(models.TextChoices):
        CORE = "CORE", _("SEPA Core")
        B2B = "B2B", _("SEPA B2B")

    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="mandates")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="mandates")
    reference = models.CharField(_("mandate reference (UMR)"), max_length=35)
    scheme = models.CharField(_("scheme"), max_length=4, choices=Scheme.choices, default=Scheme.CORE)
    holder_name = models.CharField(_("account holder"), max_length=70)
    iban = models.CharField(_("IBAN"), max_length=34, db_index=True)
    bic = models.CharField(_("BIC"), max_length=11, blank=True)
    signed_at = models.DateTimeField(_("signed at"))
    signature_ip = models.GenericIPAddressField(_("signature IP"), null=True, blank=True)
    signature_user_agent = models.TextField(_("signature user agent"), blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE,
                              db_index=True)
    first_collected_at = models.DateField(_("first collection"), null=True, blank=True)
    last_collected_at = models.DateField(_("last collection"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)

    class Meta:
        ordering = ["-signed_at"]
        verbose_name = _("mandate")
        verbose_name_plural = _("mandates")
        constraints = [
            models.UniqueConstraint(fields=["creditor", "reference"], name="mandate_ref_per_creditor"),
        ]

    def __str__(self) -> str:
        return self.reference


class SavedCard(TimeStamped):
    """A card kept at the gateway for later payments. Never the number nor the CVV."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REMOVED = "removed", _("Removed")
        EXPIRED = "expired", _("Expired")

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="saved_cards")
    gateway = models.CharField(_("gateway"), max_length=32, default="sandbox")
    # 255: the sandbox tokens of declining test cards are longer than 128 characters
    gateway_token = models.CharField(_("gateway token"), max_length=255)
    brand = models.CharField(_("brand"), max_length=20)
    last4 = models.CharField(_("last 4 digits"), max_length=4)
    exp_month = models.PositiveSmallIntegerField(_("expiry month"),
                                                 validators=[MinValueValidator(1), MaxValueValidator(12)])
    exp_year = models.PositiveSmallIntegerField(_("expiry year"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE)

    class Meta:
        verbose_name = _("saved card")
        verbose_name_plural = _("saved cards")
        constraints = [
            models.UniqueConstraint(fields=["gateway", "gateway_token"], name="saved_card_token_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.brand} •••• {self.last4} ({self.exp_month:02d}/{self.exp_year})"


class InstallmentPlan(TimeStamped):
    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        COMPLETED = "completed", _("Completed")
        SUSPENDED = "suspended", _("Suspended")
        CANCELLED = "cancelled", _("Cancelled")

    class Origin(models.TextChoices):
        DEBTOR = "debtor", _("Chosen by the debtor")
        OPERATOR = "operator", _("Negotiated by an operator")
        API = "api", _("Created through the API")

    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="instalment_plans")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="instalment_plans")
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="instalment_plans",
                                        null=True, blank=True)
    method = models.CharField(_("method"), max_length=12,
                              choices=[(PaymentMethod.CARD.value, PaymentMethod.CARD.label),
                                       (PaymentMethod.SEPA_DD.value, PaymentMethod.SEPA_DD.label),
                                       (PaymentMethod.TRANSFER.value, PaymentMethod.TRANSFER.label)])
    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, null=True, blank=True,
                                related_name="instalment_plans")
    saved_card = models.ForeignKey(SavedCard, on_delete=models.PROTECT, null=True, blank=True,
                                   related_name="instalment_plans")
    currency = CurrencyField()
    total_amount = MoneyField(_("total amount"))
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices, default=Origin.OPERATOR)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE,
                              db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    # A recurring payment (subscription, monthly fee) is a plan that keeps scheduling its next
    # instalment: the collection run, card charges, retries and suspension then apply unchanged.
    recurrence_months = models.PositiveSmallIntegerField(
        _("recurs every (months)"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(12)],
        help_text=_("Empty for a fixed schedule."))
    recurring_amount = MoneyField(_("recurring amount"), null=True, blank=True)
    ends_on = models.DateField(_("last collection on or before"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("instalment plan")
        verbose_name_plural = _("instalment plans")
        constraints = [models.CheckConstraint(condition=Q(total_amount__gt=0), name="plan_total_gt_0")]

    def __str__(self) -> str:
        return f"Plan #{self.pk} ({self.customer})"


class Installment(TimeStamped):
    class Status(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        PROCESSING = "processing", _("Processing")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    plan = models.ForeignKey(InstallmentPlan, on_delete=models.CASCADE, related_name="installments")
    sequence = models.PositiveSmallIntegerField(_("number"))
    due_date = models.DateField(_("due date"), db_index=True)
    amount = MoneyField(_("amount"))
    currency = CurrencyField()
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.SCHEDULED,
                              db_index=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)

    class Meta:
        ordering = ["plan", "sequence"]
        verbose_name = _("instalment")
        verbose_name_plural = _("instalments")
        constraints = [
            models.UniqueConstraint(fields=["plan", "sequence"], name="installment_sequence_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="installment_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.sequence}/{self.plan_id} {self.due_date}"


class Payment(TimeStamped):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PROCESSING = "processing", _("Processing")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        REVERSED = "reversed", _("Reversed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="payments")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, related_name="payments",
                                        null=True, blank=True)
    installment = models.ForeignKey(Installment, on_delete=models.PROTECT, related_name="payments",
                                    null=True, blank=True)
    mandate = models.ForeignKey(Mandate, on_delete=models.PROTECT, related_name="payments", null=True, blank=True)
    saved_card = models.ForeignKey(SavedCard, on_delete=models.PROTECT, related_name="payments",
                                   null=True, blank=True)
    retry_of = models.ForeignKey("self", on_delete=models.PROTECT, related_name="retries", null=True, blank=True)
    method = models.CharField(_("method"), max_length=12, choices=PaymentMethod.choices)
    currency = CurrencyField()
    amount = MoneyField(_("amount"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    attempt = models.PositiveSmallIntegerField(_("attempt"), default=1)
    reason_code = models.CharField(_("reason code"), max_length=32, blank=True)
    reason_message = models.CharField(_("reason"), max_length=255, blank=True)
    gateway = models.CharField(_("gateway"), max_length=32, blank=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=128, blank=True, db_index=True)
    end_to_end_id = models.CharField(_("end-to-end id"), max_length=35, blank=True, db_index=True)
    succeeded_at = models.DateTimeField(_("succeeded at"), null=True, blank=True)
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_gt_0")]

    def __str__(self) -> str:
        return f"{self.get_method_display()} {self.amount} {self.currency} #{self.pk}"


class PaymentAllocation(models.Model):
    """The part of a payment that settles one invoice."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = MoneyField(_("amount"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("allocation")
        verbose_name_plural = _("allocations")
        constraints = [
            models.UniqueConstraint(fields=["payment", "invoice"], name="allocation_unique"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="allocation_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.amount} → {self.invoice}"


class Refund(TimeStamped):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = MoneyField(_("amount"))
    currency = CurrencyField()
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    gateway_reference = models.CharField(_("gateway reference"), max_length=128, blank=True)
    failure_reason = models.CharField(_("failure reason"), max_length=255, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_gt_0")]

    def __str__(self) -> str:
        return f"Refund {self.amount} {self.currency} of #{self.payment_id}"


class ApiKey(models.Model):
    """An integrator's key. Only a SHA-256 of the secret is stored; the key is shown once."""

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys",
                                 help_text=_("Restrict the key to one creditor's data (empty: all)"))
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """A stored API response for an Idempotency-Key, kept 24 hours."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", _("In progress")
        DONE = "done", _("Done")

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="idempotency_records")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_per_api_key"),
        ]
from collections_app.paypages.models import *  # noqa: E402,F401,F403
from collections_app.virtual_ibans.models import *  # noqa: E402,F401,F403

from collections_app.sepa.models import *  # noqa: E402,F401,F403
from collections_app.retries.models import *  # noqa: E402,F401,F403
from collections_app.dunning.models import *  # noqa: E402,F401,F403
