"""django-import-export resources for the back-office's interactive import/export.

Rows are written through the collections services (never a bare save()), so an admin import
checks the same rules and writes the same outbox events as the API."""
from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from import_export import fields, resources, widgets

from collections_app import services as core
from collections_app.errors import DomainError
from collections_app.models import Creditor, Customer, Invoice, Payment, PaymentMethod, PaymentRequest
from collections_app.virtual_ibans.selectors import customers_with_virtual_iban

from connectors.spreadsheet import safe_cell

CUSTOMER_EDITABLE = ("name", "company_name", "email", "phone", "locale", "country")


def _as_validation_error(exc: DomainError) -> ValidationError:
    return ValidationError({exc.field or "__all__": exc.message})


class SpreadsheetSafeResource(resources.ModelResource):
    """Exports open in a spreadsheet: names and labels from ERP files must not run as formulas."""

    def export_field(self, field, instance, **kwargs):
        return safe_cell(super().export_field(field, instance, **kwargs))


class CreditorCustomerWidget(widgets.ForeignKeyWidget):
    """A customer named by its external reference, within the row's creditor."""

    def __init__(self):
        super().__init__(Customer, field="external_ref")

    def get_queryset(self, value, row, *args, **kwargs):
        return Customer.objects.filter(creditor_id=row.get("creditor"))


class CreditorRequestWidget(widgets.ForeignKeyWidget):
    """A payment request named by its reference, within the row's creditor."""

    def __init__(self):
        super().__init__(PaymentRequest, field="reference")

    def get_queryset(self, value, row, *args, **kwargs):
        return PaymentRequest.objects.filter(creditor_id=row.get("creditor"))


class CustomerResource(SpreadsheetSafeResource):
    creditor = fields.Field(attribute="creditor", column_name="creditor",
                            widget=widgets.ForeignKeyWidget(Creditor, "pk"))
    # Where the customer pays by transfer (per-customer mode), for the ERP's own mailings.
    virtual_iban = fields.Field(attribute="active_virtual_iban", column_name="virtual_iban", readonly=True)

    class Meta:
        model = Customer
        import_id_fields = ["creditor", "external_ref"]
        fields = ["creditor", "external_ref", *CUSTOMER_EDITABLE, "currency", "credit_balance", "virtual_iban"]
        export_order = fields
        skip_unchanged = True
        report_skipped = True

    def filter_export(self, queryset, **kwargs):
        return customers_with_virtual_iban(queryset)

    def import_field(self, field, instance, row, is_m2m=False, **kwargs):
        if field.attribute == "credit_balance":
            return  # only payments and refunds move a credit balance
        super().import_field(field, instance, row, is_m2m=is_m2m, **kwargs)

    def save_instance(self, instance, is_create, row, **kwargs):
        values = {name: getattr(instance, name) for name in CUSTOMER_EDITABLE}
        try:
            if is_create:
                saved = core.customer_create(creditor=instance.creditor, external_ref=instance.external_ref,
                                             **values)
            else:
                saved = core.customer_update(customer=instance, **values)
        except DomainError as exc:
            raise _as_validation_error(exc) from exc
        instance.pk = saved.pk


class InvoiceResource(SpreadsheetSafeResource):
    creditor = fields.Field(attribute="creditor", column_name="creditor",
                            widget=widgets.ForeignKeyWidget(Creditor, "pk"))
    customer = fields.Field(attribute="customer", column_name="customer_ref", widget=CreditorCustomerWidget())
    status = fields.Field(attribute="status", column_name="status", readonly=True)
    amount_paid = fields.Field(attribute="amount_paid", column_name="amount_paid", readonly=True)

    class Meta:
        model = Invoice
        import_id_fields = ["creditor", "external_ref"]
        fields = ["creditor", "external_ref", "customer", "description", "currency", "amount_total", "amount_paid",
                  "issue_date", "due_date", "status"]
        export_order = fields
        skip_unchanged = True
        report_skipped = True

    def save_instance(self, instance, is_create, row, **kwargs):
        try:
            if is_create:
                saved = core.invoice_create(
                    creditor=instance.creditor, customer=instance.customer, external_ref=instance.external_ref,
                    amount_total=instance.amount_total, currency=instance.currency,
                    issue_date=instance.issue_date, due_date=instance.due_date,
                    description=instance.description or "")
            else:
                saved = core.invoice_update(invoice=instance, amount_total=instance.amount_total,
                                            due_date=instance.due_date, description=instance.description)
        except DomainError as exc:
            raise _as_validation_error(exc) from exc
        instance.pk = saved.pk


class PaymentResource(SpreadsheetSafeResource):
    """Export of every payment; import records payments received outside the platform
    (cheques, cash, transfers seen on another account), once per gateway_reference."""

    customer = fields.Field(attribute="customer", column_name="customer_ref", widget=CreditorCustomerWidget())
    creditor = fields.Field(attribute="creditor", column_name="creditor",
                            widget=widgets.ForeignKeyWidget(Creditor, "pk"))
    payment_request = fields.Field(attribute="payment_request", column_name="payment_request_reference",
                                   widget=CreditorRequestWidget())
    status = fields.Field(attribute="status", column_name="status", readonly=True)
    succeeded_at = fields.Field(attribute="succeeded_at", column_name="succeeded_at", readonly=True)

    class Meta:
        model = Payment
        import_id_fields = ["creditor", "gateway_reference"]
        fields = ["creditor", "gateway_reference", "customer", "payment_request", "method", "amount", "currency",
                  "status", "succeeded_at", "reason_code"]
        export_order = fields
        skip_unchanged = True
        report_skipped = True

    def before_import_row(self, row, **kwargs):
        if not str(row.get("gateway_reference") or "").strip():
            raise ValidationError({"gateway_reference": "Give each payment a unique reference (cheque number…)."})
        row.setdefault("method", PaymentMethod.OTHER.value)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        # A recorded payment is never changed by an import: only new references are recorded.
        return bool(original and original.pk) or super().skip_row(instance, original, row,
                                                                   import_validation_errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        if not is_create:
            return
        try:
            payment = core.payment_create(customer=instance.customer, method=instance.method or "other",
                                          amount=Decimal(instance.amount), currency=instance.currency or None,
                                          payment_request=instance.payment_request,
                                          gateway="import", gateway_reference=instance.gateway_reference)
            core.payment_record_success(payment=payment)
        except DomainError as exc:
            raise _as_validation_error(exc) from exc
        instance.pk = payment.pk
