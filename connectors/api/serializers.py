from __future__ import annotations

from rest_framework import serializers

from connectors.models import ImportJob
from connectors.services import API_MAX_ROWS


class InvoiceRowSerializer(serializers.Serializer):
    """One invoice of a bulk import (documentation only: rows are validated by the import,
    which answers per row rather than rejecting the whole call)."""

    external_ref = serializers.CharField(help_text="The invoice number (unique per creditor).")
    customer_ref = serializers.CharField(help_text="The customer's reference in the ERP.")
    name = serializers.CharField()
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(required=False)
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    balance = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False,
        help_text="What remains due in the ERP. Below what remains due here, the difference was received "
                  "outside (cheque, cash…): it is recorded as a payment on the invoice, and reminders stop. "
                  "0 on a new invoice: nothing is created (status already_paid).")
    currency = serializers.CharField(required=False, help_text="ISO 4217; default: the creditor's.")
    issue_date = serializers.DateField(required=False, help_text="Default: today.")
    due_date = serializers.DateField()
    description = serializers.CharField(required=False)


class BulkImportSerializer(serializers.Serializer):
    creditor = serializers.IntegerField(required=False,
                                        help_text="Needed only when the API key is not bound to a creditor.")
    mode = serializers.ChoiceField(choices=ImportJob.Mode.choices, default=ImportJob.Mode.ALL_OR_NOTHING)
    dry_run = serializers.BooleanField(default=False)
    invoices = serializers.ListField(child=serializers.DictField(), max_length=API_MAX_ROWS, allow_empty=False,
                                     help_text=f"Up to {API_MAX_ROWS} invoices (see InvoiceRow).")


class RowResultSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    external_ref = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "updated", "unchanged", "already_paid", "rejected",
                                              "not_imported", "valid"])
    errors = serializers.ListField(child=serializers.DictField())
    pay_url = serializers.URLField(required=False)
    short_reference = serializers.CharField(required=False)
    virtual_iban = serializers.CharField(required=False)
    iban = serializers.CharField(required=False)
    bic = serializers.CharField(required=False)
    transfer_reference = serializers.CharField(required=False)
    qr_code_url = serializers.URLField(required=False)
    payment_request_id = serializers.IntegerField(required=False, allow_null=True)


class ImportJobSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportJob
        fields = ["id", "creditor", "source", "mode", "dry_run", "filename", "status", "phase", "progress",
                  "rows_total", "rows_valid", "rows_rejected", "customers_created", "customers_updated",
                  "invoices_created", "invoices_updated", "invoices_unchanged", "payment_requests_created",
                  "errors", "errors_truncated", "message", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class BulkImportResultSerializer(serializers.Serializer):
    job = ImportJobSerializer()
    results = RowResultSerializer(many=True)
