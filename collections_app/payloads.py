"""Event payloads: JSON snapshots of domain objects, the only shape consumers ever see."""
from __future__ import annotations

from typing import Any

from collections_app import models as m


def customer_fields(customer: m.Customer) -> dict[str, Any]:
    return {
        "customer_id": customer.pk,
        "customer_external_ref": customer.external_ref,
        "customer_name": customer.name,
        "customer_email": customer.email,
        "customer_phone": customer.phone,
        "customer_locale": customer.locale,
        "customer_tags": list(customer.tags or []),
    }


def invoice_payload(invoice: m.Invoice, previous_status: str | None = None) -> dict[str, Any]:
    return {
        "invoice_id": invoice.pk,
        "invoice_external_ref": invoice.external_ref,
        "status": invoice.status,
        "previous_status": previous_status,
        "amount_total": invoice.amount_total,
        "amount_paid": invoice.amount_paid,
        "amount_due": invoice.amount_due,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        **customer_fields(invoice.customer),
    }


def payment_request_payload(request: m.PaymentRequest, previous_status: str | None = None,
                            invoices: list[m.Invoice] | None = None) -> dict[str, Any]:
    if invoices is None:
        invoices = list(request.invoices.all().only("id", "external_ref"))
    return {
        "payment_request_id": request.pk,
        "reference": request.reference,
        "short_reference": request.short_reference,
        "pay_url": request.pay_url,
        "status": request.status,
        "previous_status": previous_status,
        "amount": request.amount,
        "amount_paid": request.amount_paid,
        "amount_due": request.amount_due,
        "currency": request.currency,
        "allowed_methods": list(request.allowed_methods),
        "expires_at": request.expires_at,
        "invoice_ids": [i.pk for i in invoices],
        "invoice_external_refs": [i.external_ref for i in invoices],
        **customer_fields(request.customer),
    }


def payment_payload(payment: m.Payment, previous_status: str | None = None, *,
                    invoice_ids: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    """invoice_ids: the payment's allocated invoices when the caller knows them (bulk payments,
    whose allocations are not written yet); read from the database otherwise."""
    if invoice_ids is None:
        invoice_ids = list(payment.allocations.values_list("invoice_id", flat=True))
    return {
        "payment_id": payment.pk,
        "method": payment.method,
        "status": payment.status,
        "previous_status": previous_status,
        "amount": payment.amount,
        "currency": payment.currency,
        "payment_request_id": payment.payment_request_id,
        "payment_request_reference": payment.payment_request.reference if payment.payment_request_id else None,
        "invoice_ids": invoice_ids,
        "installment_id": payment.installment_id,
        "attempt": payment.attempt,
        "gateway_reference": payment.gateway_reference,
        "end_to_end_id": payment.end_to_end_id,
        "reason_code": payment.reason_code,
        "reason_message": payment.reason_message,
        "will_retry": False,
        **customer_fields(payment.customer),
        **extra,
    }


def refund_payload(refund: m.Refund, previous_status: str | None = None) -> dict[str, Any]:
    return {
        "refund_id": refund.pk,
        "payment_id": refund.payment_id,
        "status": refund.status,
        "previous_status": previous_status,
        "amount": refund.amount,
        "currency": refund.currency,
        "reason": refund.reason,
        "method": refund.payment.method,
        **customer_fields(refund.payment.customer),
    }


def mandate_payload(mandate: m.Mandate, previous_status: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "mandate_id": mandate.pk,
        "reference": mandate.reference,
        "status": mandate.status,
        "previous_status": previous_status,
        "iban_last4": mandate.iban[-4:],
        "bic": mandate.bic,
        "holder_name": mandate.holder_name,
        "signed_at": mandate.signed_at,
        "creditor_identifier": mandate.creditor.sepa_creditor_identifier,
        **customer_fields(mandate.customer),
        **extra,
    }


def card_payload(card: m.SavedCard, **extra: Any) -> dict[str, Any]:
    return {
        "saved_card_id": card.pk,
        "brand": card.brand,
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
        "status": card.status,
        **customer_fields(card.customer),
        **extra,
    }


def plan_payload(plan: m.InstallmentPlan, previous_status: str | None = None, **extra: Any) -> dict[str, Any]:
    installments = list(plan.installments.order_by("sequence"))
    return {
        "instalment_plan_id": plan.pk,
        "status": plan.status,
        "previous_status": previous_status,
        "method": plan.method,
        "total_amount": plan.total_amount,
        "currency": plan.currency,
        "installment_count": len(installments),
        "schedule": [
            {"sequence": i.sequence, "due_date": i.due_date, "amount": i.amount, "status": i.status}
            for i in installments
        ],
        "payment_request_id": plan.payment_request_id,
        **customer_fields(plan.customer),
        **extra,
    }


def installment_payload(installment: m.Installment, previous_status: str | None = None,
                        **extra: Any) -> dict[str, Any]:
    return {
        "installment_id": installment.pk,
        "instalment_plan_id": installment.plan_id,
        "sequence": installment.sequence,
        "due_date": installment.due_date,
        "status": installment.status,
        "previous_status": previous_status,
        "amount": installment.amount,
        "currency": installment.currency,
        "payment_id": extra.pop("payment_id", None),
        **customer_fields(installment.plan.customer),
        **extra,
    }
