"""Bank accounts, imported statements and their transactions, matching rules and matches.

A BankTransaction is one movement on the account (a batch entry is split into one row per
transaction). Its `natural_key` (account, booking date, bank references, amount, direction)
is unique: importing a file twice, or an overlapping statement, inserts nothing new.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from collections_app.models import (
    Creditor,
    CurrencyField,
    Customer,
    Invoice,
    MoneyField,
    Payment,
    PaymentRequest,
    TimeStamped,
)


class BankAccount(TimeStamped):
    class Overpayment(models.TextChoices):
        CREDIT = "credit", _("To the customer's credit balance")
        SPREAD = "spread", _("To the customer's other open invoices, oldest first, then credit balance")

    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="bank_accounts",
                                 null=True, blank=True, verbose_name=_("creditor"),
                                 help_text=_("Empty for an account created by an import: choose it when reviewing."))
    name = models.CharField(_("name"), max_length=140, blank=True)
    iban = models.CharField(_("IBAN"), max_length=34, blank=True, db_index=True)
    account_id = models.CharField(_("account identifier"), max_length=64, unique=True,
                                  help_text=_("The IBAN, or the bank's own account number when there is none."))
    bic = models.CharField(_("BIC"), max_length=11, blank=True)
    currency = CurrencyField()
    needs_review = models.BooleanField(_("to review"), default=False,
                                       help_text=_("Created on the fly by a statement import."))
    write_off_tolerance = MoneyField(_("write-off tolerance"), default=Decimal("0.00"),
                                     help_text=_("A transfer short of the invoice by at most this amount settles it; "
                                                 "the difference is written off."))
    overpayment = models.CharField(_("over-payment"), max_length=8, choices=Overpayment.choices,
                                   default=Overpayment.CREDIT)
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name", "account_id"]
        verbose_name = _("bank account")
        verbose_name_plural = _("bank accounts")

    def __str__(self) -> str:
        return self.name or self.account_id


class BankStatement(models.Model):
    class Format(models.TextChoices):
        CAMT052 = "camt.052", "camt.052"
        CAMT053 = "camt.053", "camt.053"
        CAMT054 = "camt.054", "camt.054"
        MT940 = "mt940", "MT940"
        CFONB120 = "cfonb120", "CFONB 120"

    class Source(models.TextChoices):
        UPLOAD = "upload", _("Admin upload")
        API = "api", _("API")
        DROP_FOLDER = "drop_folder", _("Drop folder")
        COMMAND = "command", _("Command line")

    bank_account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="statements",
                                     verbose_name=_("bank account"))
    format = models.CharField(_("format"), max_length=10, choices=Format.choices)
    version = models.CharField(_("version"), max_length=40, blank=True)
    source = models.CharField(_("source"), max_length=12, choices=Source.choices, default=Source.UPLOAD)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, db_index=True)
    index_in_file = models.PositiveIntegerField(_("position in the file"), default=0)
    statement_id = models.CharField(_("bank's statement id"), max_length=64, blank=True)
    sequence_number = models.CharField(_("sequence number"), max_length=32, blank=True)
    created_by_bank_at = models.DateTimeField(_("created by the bank at"), null=True, blank=True)
    from_date = models.DateField(_("from"), null=True, blank=True)
    to_date = models.DateField(_("to"), null=True, blank=True)
    currency = CurrencyField()
    opening_balance = MoneyField(_("opening balance"), null=True, blank=True)
    closing_balance = MoneyField(_("closing balance"), null=True, blank=True)
    total_credits = MoneyField(_("total credits"), default=Decimal("0.00"))
    total_debits = MoneyField(_("total debits"), default=Decimal("0.00"))
    transaction_count = models.PositiveIntegerField(_("new transactions"), default=0)
    duplicate_count = models.PositiveIntegerField(_("duplicates skipped"), default=0)
    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")

    class Meta:
        ordering = ["-imported_at", "-id"]
        verbose_name = _("bank statement")
        verbose_name_plural = _("bank statements")
        constraints = [
            models.UniqueConstraint(fields=["file_sha256", "index_in_file"], name="bank_statement_file_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.get_format_display()} {self.bank_account} {self.from_date or ''}–{self.to_date or ''}"

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)


class BankTransaction(models.Model):
    class Direction(models.TextChoices):
        CREDIT = "CRDT", _("Credit (incoming)")
        DEBIT = "DBIT", _("Debit (outgoing)")

    class Status(models.TextChoices):
        NEW = "new", _("New")
        MATCHED = "matched", _("Matched")
        UNMATCHED = "unmatched", _("To review")
        RETURN = "return", _("Return processed")
        IGNORED = "ignored", _("Ignored")

    statement = models.ForeignKey(BankStatement, on_delete=models.PROTECT, related_name="transactions",
                                  verbose_name=_("statement"))
    bank_account = models.ForeignKey(BankAccount, on_delete=models.PROTECT, related_name="transactions",
                                     verbose_name=_("bank account"))
    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="bank_transactions", verbose_name=_("creditor"))
    natural_key = models.CharField(max_length=64, unique=True, editable=False)
    booking_date = models.DateField(_("booking date"), db_index=True)
    value_date = models.DateField(_("value date"), null=True, blank=True)
    direction = models.CharField(_("direction"), max_length=4, choices=Direction.choices)
    amount = MoneyField(_("amount"))
    currency = CurrencyField()
    is_reversal = models.BooleanField(_("return or reversal"), default=False)
    reason_code = models.CharField(_("return reason"), max_length=8, blank=True)
    bank_reference = models.CharField(_("bank reference"), max_length=64, blank=True)
    entry_reference = models.CharField(_("entry reference"), max_length=64, blank=True)
    end_to_end_id = models.CharField(_("end-to-end id"), max_length=64, blank=True, db_index=True)
    transaction_id = models.CharField(_("transaction id"), max_length=64, blank=True)
    mandate_reference = models.CharField(_("mandate reference"), max_length=64, blank=True)
    bank_transaction_code = models.CharField(_("bank transaction code"), max_length=64, blank=True)
    counterparty_name = models.CharField(_("counterparty"), max_length=140, blank=True)
    counterparty_iban = models.CharField(_("counterparty account"), max_length=64, blank=True,
                                         help_text=_("As given by the bank, even when it is not a valid IBAN."))
    credited_iban = models.CharField(_("credited account"), max_length=34, blank=True, db_index=True)
    remittance_info = models.TextField(_("remittance information"), blank=True)
    structured_reference = models.CharField(_("structured reference"), max_length=64, blank=True)
    batch_reference = models.CharField(_("batch entry"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEW,
                              db_index=True)
    matched_rule = models.ForeignKey("MatchingRule", on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+", verbose_name=_("matched by"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="bank_transactions", verbose_name=_("customer"))
    returned_payment = models.ForeignKey(Payment, on_delete=models.PROTECT, null=True, blank=True,
                                         related_name="bank_returns", verbose_name=_("returned payment"))
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)

    class Meta:
        ordering = ["-booking_date", "-id"]
        verbose_name = _("bank transaction")
        verbose_name_plural = _("bank transactions")
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0), name="bank_transaction_amount_gt_0")]
        indexes = [models.Index(fields=["status", "direction"], name="bank_tx_status_dir_idx"),
                   # The accounts customers paid from (suggestions by payer's account); only
                   # matched rows, so storing a statement does not maintain it.
                   models.Index(fields=["counterparty_iban"], condition=Q(customer__isnull=False),
                                name="bank_tx_known_payer_idx")]

    def __str__(self) -> str:
        sign = "+" if self.direction == self.Direction.CREDIT else "-"
        return f"{self.booking_date} {sign}{self.amount} {self.currency} {self.counterparty_name}".strip()


class MatchingRule(TimeStamped):
    class Kind(models.TextChoices):
        VIRTUAL_IBAN = "virtual_iban", _("Credited virtual IBAN")
        REFERENCE = "reference", _("Reference in the remittance information")
        END_TO_END = "end_to_end", _("End-to-end id of our direct debits and refunds")
        AMOUNT_NAME = "amount_name", _("Amount, debtor name and date (suggestion only)")

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, unique=True)
    position = models.PositiveSmallIntegerField(_("order"), default=0)
    is_active = models.BooleanField(_("active"), default=True)
    min_score = models.PositiveSmallIntegerField(
        _("minimum name similarity (%)"), default=80,
        help_text=_("For the amount and name rule: how alike the debtor's name must be."))
    date_window_days = models.PositiveSmallIntegerField(
        _("date window (days)"), default=60,
        help_text=_("For the amount and name rule: how far from the invoice's due date a transfer may be."))
    matched_count = models.PositiveBigIntegerField(_("transactions matched"), default=0, editable=False)

    class Meta:
        ordering = ["position", "id"]
        verbose_name = _("matching rule")
        verbose_name_plural = _("matching rules")

    def __str__(self) -> str:
        return self.name


class Match(models.Model):
    """A transaction's allocation: the payment it became in the collections core."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        REVERSED = "reversed", _("Reversed")

    transaction = models.ForeignKey(BankTransaction, on_delete=models.PROTECT, related_name="matches",
                                    verbose_name=_("bank transaction"))
    rule = models.ForeignKey(MatchingRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="matches",
                             verbose_name=_("rule"))
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="reconciliation_matches",
                                 verbose_name=_("customer"))
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="reconciliation_match",
                                   null=True, blank=True, verbose_name=_("payment"))
    # The part of an over-payment beyond what the payment request could take.
    excess_payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="reconciliation_excess",
                                          null=True, blank=True, verbose_name=_("excess payment"))
    payment_request = models.ForeignKey(PaymentRequest, on_delete=models.PROTECT, null=True, blank=True,
                                        related_name="+", verbose_name=_("payment request"))
    amount = MoneyField(_("amount"))
    written_off = MoneyField(_("written off"), default=Decimal("0.00"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(_("matched at"), auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    reversed_at = models.DateTimeField(_("reversed at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("match")
        verbose_name_plural = _("matches")
        constraints = [
            models.UniqueConstraint(fields=["transaction"], condition=Q(status="active"),
                                    name="match_one_active_per_transaction"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="match_amount_gt_0"),
        ]

    def __str__(self) -> str:
        return f"{self.transaction} → {self.customer}"


class Suggestion(models.Model):
    """A ranked candidate for a transaction in the review queue."""

    transaction = models.ForeignKey(BankTransaction, on_delete=models.CASCADE, related_name="suggestions",
                                    verbose_name=_("bank transaction"))
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="+", verbose_name=_("invoice"))
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+", verbose_name=_("customer"))
    score = models.PositiveSmallIntegerField(_("score"))
    reason = models.CharField(_("why"), max_length=255)

    class Meta:
        ordering = ["-score", "id"]
        verbose_name = _("suggestion")
        verbose_name_plural = _("suggestions")
        constraints = [
            models.UniqueConstraint(fields=["transaction", "invoice"], name="suggestion_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.invoice} ({self.score}%)"
