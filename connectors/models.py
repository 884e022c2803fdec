"""ERP connectors: invoice imports, saved column mappings, status-export cursors and export jobs."""
from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from collections_app.models import Creditor, CurrencyField

__all__ = ["AccountingSettings", "ColumnMapping", "ImportJob", "ExportCursor", "ExportJob", "PendingStatusEvent"]


class ColumnMapping(models.Model):
    """How one source's files are read: which ERP column is which field, and its formats."""

    class DecimalSeparator(models.TextChoices):
        AUTO = "auto", _("Detect")
        COMMA = ",", _("Comma (1 234,56)")
        POINT = ".", _("Point (1,234.56)")

    class Delimiter(models.TextChoices):
        AUTO = "auto", _("Detect")
        COMMA = ",", _("Comma")
        SEMICOLON = ";", _("Semicolon")
        TAB = "\t", _("Tab")

    name = models.SlugField(_("name"), max_length=80, unique=True,
                            help_text=_("Used by `import_invoices --mapping NAME` and drop folder names."))
    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, related_name="column_mappings",
                                 verbose_name=_("creditor"))
    columns = models.JSONField(
        _("columns"), default=dict, blank=True,
        help_text=_('ERP column → field, for example {"Num Fact": "external_ref", "Montant TTC": "amount"}. '
                    "Columns not listed here are recognised by the default English/French headers."))
    date_format = models.CharField(
        _("date format"), max_length=32, blank=True,
        help_text=_("strftime format such as %d/%m/%Y; empty: ISO dates and dd/mm/yyyy are recognised."))
    decimal_separator = models.CharField(_("decimal separator"), max_length=4, choices=DecimalSeparator.choices,
                                         default=DecimalSeparator.AUTO)
    delimiter = models.CharField(_("CSV delimiter"), max_length=4, choices=Delimiter.choices,
                                 default=Delimiter.AUTO)
    default_currency = CurrencyField(_("default currency"), blank=True, default="",
                                     help_text=_("Used when the file has no currency column; empty: the creditor's."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("column mapping")
        verbose_name_plural = _("column mappings")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from connectors.importing.fields import FIELDS

        if not isinstance(self.columns, dict):
            raise ValidationError({"columns": _('A JSON object: {"ERP column": "field"}.')})
        wrong = sorted({str(v) for v in self.columns.values() if v not in FIELDS and v != "ignore"})
        if wrong:
            raise ValidationError({"columns": _("Unknown field(s): %(fields)s. Fields: %(known)s, or ignore.")
                                   % {"fields": ", ".join(wrong), "known": ", ".join(FIELDS)}})


class ImportJob(models.Model):
    """One import of invoices (a file, an API call), with its progress and its row errors."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        RUNNING = "running", _("Running")
        PREVIEWED = "previewed", _("Dry run done")
        SUCCEEDED = "succeeded", _("Imported")
        PARTIAL = "partial", _("Imported, rows rejected")
        FAILED = "failed", _("Failed")

    FINISHED = (Status.PREVIEWED, Status.SUCCEEDED, Status.PARTIAL, Status.FAILED)

    class Mode(models.TextChoices):
        ALL_OR_NOTHING = "all_or_nothing", _("All or nothing")
        VALID_ROWS = "valid_rows", _("Import the valid rows")

    class Source(models.TextChoices):
        UPLOAD = "upload", _("Admin upload")
        API = "api", _("API")
        DROP_FOLDER = "drop_folder", _("Drop folder")
        COMMAND = "command", _("Command line")

    creditor = models.ForeignKey(Creditor, on_delete=models.PROTECT, related_name="import_jobs",
                                 verbose_name=_("creditor"))
    mapping = models.ForeignKey(ColumnMapping, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="import_jobs", verbose_name=_("column mapping"))
    source = models.CharField(_("source"), max_length=12, choices=Source.choices, default=Source.UPLOAD)
    mode = models.CharField(_("mode"), max_length=16, choices=Mode.choices, default=Mode.ALL_OR_NOTHING)
    dry_run = models.BooleanField(_("dry run"), default=False)
    filename = models.CharField(_("file name"), max_length=255, blank=True)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/", blank=True)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING,
                              db_index=True)
    phase = models.CharField(_("phase"), max_length=20, blank=True)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    rows_valid = models.PositiveIntegerField(_("valid rows"), default=0)
    rows_rejected = models.PositiveIntegerField(_("rejected rows"), default=0)
    customers_created = models.PositiveIntegerField(_("customers created"), default=0)
    customers_updated = models.PositiveIntegerField(_("customers updated"), default=0)
    invoices_created = models.PositiveIntegerField(_("invoices created"), default=0)
    invoices_updated = models.PositiveIntegerField(_("invoices updated"), default=0)
    invoices_unchanged = models.PositiveIntegerField(_("invoices unchanged"), default=0)
    payment_requests_created = models.PositiveIntegerField(_("payment requests created"), default=0)
    errors = models.JSONField(_("row errors"), default=list, blank=True,
                              help_text=_("[{row, column, message}], the first ones when there are very many"))
    errors_truncated = models.BooleanField(default=False)
    preview = models.JSONField(_("preview"), default=list, blank=True)
    message = models.TextField(_("message"), blank=True)
    return_file = models.FileField(_("return file"), upload_to="imports/returns/%Y/%m/", blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("invoice import")
        verbose_name_plural = _("invoice imports")

    def __str__(self) -> str:
        return f"#{self.pk} {self.filename or self.get_source_display()}"


class ExportCursor(models.Model):
    """One stream of status files (a folder of CONNECTORS_EXPORT_DIR): what is queued for it
    goes into the next file, so no change is skipped and none is written twice."""

    name = models.SlugField(_("name"), max_length=80, unique=True)
    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="export_cursors", verbose_name=_("creditor"),
                                 help_text=_("Empty: every creditor"))
    format = models.CharField(_("format"), max_length=4, choices=[("csv", "CSV"), ("json", "JSON")],
                              default="csv")
    start_after_event_id = models.BigIntegerField(
        _("starts after event"), default=0, editable=False,
        help_text=_("Events up to this one existed before the cursor: the API event feed has them."))
    last_event_id = models.BigIntegerField(_("last event exported"), default=0, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("status export cursor")
        verbose_name_plural = _("status export cursors")

    def __str__(self) -> str:
        return self.name


class PendingStatusEvent(models.Model):
    """An event waiting for the next status file of one cursor.

    Queued by an outbox consumer, so exactly once per committed event whatever order the
    transactions committed in (event ids are not committed in order: a plain "id > last
    exported" query could skip an event of a long transaction), and deleted in the
    transaction that records the file written."""

    cursor = models.ForeignKey(ExportCursor, on_delete=models.CASCADE, related_name="pending")
    event = models.ForeignKey("notifications.Event", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cursor", "event"], name="pending_status_event_once")]


class ExportJob(models.Model):
    """One export written: a status file or an accounting export."""

    class Kind(models.TextChoices):
        STATUS = "status", _("Status file")
        JOURNAL = "journal", _("Journal CSV")
        FEC = "fec", _("FEC")

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("Written")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    cursor = models.ForeignKey(ExportCursor, on_delete=models.CASCADE, null=True, blank=True,
                               related_name="jobs")
    creditor = models.ForeignKey(Creditor, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="export_jobs", verbose_name=_("creditor"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.SUCCEEDED)
    path = models.CharField(_("file"), max_length=500, blank=True)
    from_event_id = models.BigIntegerField(null=True, blank=True)
    to_event_id = models.BigIntegerField(null=True, blank=True)
    period_start = models.DateField(null=True, blank=True)
    period_end = models.DateField(null=True, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        constraints = [
            # Two exporters racing on one cursor cannot both write the same range.
            models.UniqueConstraint(fields=["cursor", "from_event_id"], name="export_job_cursor_range_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


_ACCOUNT = RegexValidator(r"^[0-9A-Za-z]{3,20}$", _("An account number is 3 to 20 letters or digits."))
_JOURNAL = RegexValidator(r"^[0-9A-Za-z]{1,8}$", _("A journal code is 1 to 8 letters or digits."))


def _account(verbose: str, default: str) -> models.CharField:
    return models.CharField(verbose, max_length=20, default=default, validators=[_ACCOUNT])


def _label(verbose: str, default: str) -> models.CharField:
    return models.CharField(verbose, max_length=100, default=default, blank=bool(not default))


class AccountingSettings(models.Model):
    """A creditor's accounts and journals for the accounting export (journal CSV and FEC). The
    defaults are the French chart of accounts' (PCG); without a row, the defaults apply."""

    creditor = models.OneToOneField(Creditor, on_delete=models.CASCADE, related_name="accounting_settings",
                                    verbose_name=_("creditor"))
    bank_journal = models.CharField(_("bank journal code"), max_length=8, default="BQ", validators=[_JOURNAL])
    bank_journal_label = _label(_("bank journal label"), "Banque")
    misc_journal = models.CharField(_("journal code of write-offs"), max_length=8, default="OD",
                                    validators=[_JOURNAL])
    misc_journal_label = _label(_("journal label of write-offs"), "Opérations diverses")
    bank_account = _account(_("bank account"), "512000")
    bank_account_label = _label(_("bank account label"), "Banque")
    card_account = models.CharField(
        _("card payments account"), max_length=20, blank=True, validators=[_ACCOUNT],
        help_text=_("Where card payments wait until the card processor pays them out (for example 511000 or "
                    "a 467 account of the processor); empty: the bank account."))
    card_account_label = _label(_("card payments account label"), "")
    customer_account = _account(_("customers account"), "411000")
    customer_account_label = _label(_("customers account label"), "Clients")
    write_off_account = _account(_("bad debts account"), "654000")
    write_off_account_label = _label(_("bad debts account label"), "Pertes sur créances irrécouvrables")
    auxiliary_prefix = models.CharField(
        _("customer auxiliary account prefix"), max_length=8, blank=True,
        help_text=_("Put before the customer's reference to make its auxiliary account (CompAuxNum), e.g. C."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("accounting settings")
        verbose_name_plural = _("accounting settings")

    def __str__(self) -> str:
        return str(self.creditor)
