"""Allocates virtual IBANs as customers and payment requests appear (an outbox consumer, so it
runs after the creating transaction committed, exactly once per event)."""
from __future__ import annotations

from collections_app.models import Customer, PaymentMethod, PaymentRequest
from collections_app.virtual_ibans.models import VirtualIBANRange
from collections_app.virtual_ibans.services import active_allocation_mode, virtual_iban_allocate
from notifications.dispatch import register_handler

HANDLER_NAME = "collections_app.virtual_ibans.auto_allocate"


def virtual_iban_auto_allocate(event) -> None:
    mode = active_allocation_mode(creditor_id=event.creditor_id)
    if mode is None:
        return
    payload = event.payload
    if event.type == "customer.created" and mode == VirtualIBANRange.AllocationMode.PER_CUSTOMER:
        customer = Customer.objects.filter(pk=payload["customer_id"]).first()
        if customer is not None:
            virtual_iban_allocate(customer=customer)
    elif event.type == "payment_request.created":
        if PaymentMethod.TRANSFER not in payload.get("allowed_methods", []):
            return
        request = PaymentRequest.objects.select_related("customer").filter(pk=payload["payment_request_id"]).first()
        if request is None:
            return
        virtual_iban_allocate(customer=request.customer,
                              payment_request=request if mode == VirtualIBANRange.AllocationMode.PER_DEBT else None)


def register() -> None:
    register_handler(HANDLER_NAME, virtual_iban_auto_allocate, {"customer.created", "payment_request.created"})
