"""Set-based payments: many succeeded payments written with a handful of statements.

`payment_create` + `payment_record_success` cost about thirty queries per payment. When a
batch of payments is known at once (the automatic matches of a bank statement), a
`PaymentLedger` does the same work in memory and writes it in bulk:

- it locks what the batch may touch up front, each kind with ONE `SELECT ... FOR UPDATE`
  ordered by id, in the order the per-row services take their locks (payment requests, then
  invoices, then customers): it waits for, or makes wait, the per-row services working on the
  same rows, and two ledgers, taking their locks in one global order, never deadlock each other;
- each payment is then applied in memory with the per-row rules (allocation order, caps,
  statuses, over-payment to the credit balance) and the SAME events with the same payloads,
  in the same order, as the per-row services would write;
- `flush()` writes payments and allocations with `COPY`, invoices, payment requests and
  customers with one `UPDATE ... FROM (VALUES ...)` each, and the events with two `COPY`s.

Payment ids are drawn from the table's sequence beforehand, so that payloads and reasons can
quote them before the rows exist. PostgreSQL only (callers fall back to the per-row services
elsewhere). Instalments are not handled here: payments of an instalment go through the services.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, models, transaction
from django.db.models import Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app import payloads
from collections_app.errors import AmountExceedsBalance, InvalidTransition, ValidationFailed
from collections_app.models import Customer, Invoice, Payment, PaymentAllocation, PaymentMethod, PaymentRequest
from collections_app.money import round_money
from collections_app.services import (
    _currency,
    _invoice_refresh_status,
    _positive_amount,
    _request_refresh_status,
    invoice_status_event_type,
    payment_request_check_payable,
    request_follow_invoices,
    request_status_event_type,
)
from notifications.services import events_emit_bulk

ZERO = Decimal("0.00")
ID_BLOCK = 500


@dataclass(frozen=True)
class BulkPaymentLine:
    """One succeeded payment for payments_record_bulk; allocations None: the default targets
    (the request's open invoices, else the customer's, oldest due first), like the services."""

    customer_id: int
    amount: Decimal
    currency: str
    method: str = PaymentMethod.TRANSFER
    payment_request_id: int | None = None
    allocations: Sequence[tuple[int, Decimal]] | None = None
    gateway: str = ""
    gateway_reference: str = ""
    end_to_end_id: str = ""


class PaymentLedger:
    """The locked state of a batch of payments, changed in memory, written by flush()."""

    def __init__(self) -> None:
        self.customers: dict[int, Customer] = {}
        self.invoices: dict[int, Invoice] = {}
        self.requests: dict[int, PaymentRequest] = {}
        self.request_invoice_ids: dict[int, list[int]] = {}
        self.invoice_request_ids: dict[int, list[int]] = defaultdict(list)
        self._outside_open: set[int] = set()
        self._reserved: dict[int, Decimal] = {}
        self._by_customer: dict[int, list[Invoice]] = defaultdict(list)
        self._all_open_of: set[int] = set()
        self._payments: list[Payment] = []
        self._allocations: dict[tuple[int, int], PaymentAllocation] = {}
        self._events: list[tuple[str, int | None, dict[str, Any], dict[str, Any]]] = []
        self._dirty_invoices: set[int] = set()
        self._dirty_requests: set[int] = set()
        self._dirty_customers: set[int] = set()
        self._free_ids: list[int] = []
        self.now = timezone.now()

    # ----------------------------------------------------------------------- loading

    @classmethod
    def lock(cls, *, customer_ids: Iterable[int], invoice_ids: Iterable[int] = (), request_ids: Iterable[int] = (),
             open_invoices_of: Iterable[int] | None = None) -> PaymentLedger:
        """Lock the requests; the given invoices, the requests' invoices and every open invoice of
        the customers `open_invoices_of` (default: all the customers), those a payment may go to
        oldest first; then the customers. One SELECT ... FOR UPDATE each, ordered by id."""
        if connection.vendor != "postgresql":
            raise RuntimeError("PaymentLedger needs PostgreSQL")
        if not connection.in_atomic_block:
            raise RuntimeError("PaymentLedger.lock must run inside transaction.atomic()")
        ledger = cls()
        request_ids = sorted(set(request_ids))
        customer_ids = set(customer_ids)
        invoice_ids = set(invoice_ids)
        ledger._all_open_of = set(customer_ids if open_invoices_of is None else open_invoices_of)
        if request_ids:
            for request in PaymentRequest.objects.select_for_update().filter(pk__in=request_ids).order_by("pk"):
                ledger.requests[request.pk] = request
                ledger.request_invoice_ids[request.pk] = []
                customer_ids.add(request.customer_id)
            through = PaymentRequest.invoices.through
            for request_id, invoice_id in (through.objects.filter(paymentrequest_id__in=request_ids)
                                           .values_list("paymentrequest_id", "invoice_id")):
                ledger.request_invoice_ids[request_id].append(invoice_id)
                invoice_ids.add(invoice_id)
            pending = (Payment.objects.filter(payment_request_id__in=request_ids,
                                              status__in=[Payment.Status.PENDING, Payment.Status.PROCESSING])
                       .values("payment_request_id").annotate(total=Sum("amount")))
            ledger._reserved = {row["payment_request_id"]: row["total"] for row in pending}
        for invoice in (Invoice.objects.select_for_update()
                        .filter(Q(customer_id__in=ledger._all_open_of, status__in=Invoice.OPEN_STATUSES)
                                | Q(pk__in=invoice_ids)).order_by("pk")):
            ledger.invoices[invoice.pk] = invoice
        for customer in Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk"):
            ledger.customers[customer.pk] = customer
        missing = {i.customer_id for i in ledger.invoices.values()} - set(ledger.customers)
        # Invoices quoted by id may belong to a customer outside the batch: read for payloads only.
        ledger.customers.update(Customer.objects.in_bulk(missing))
        for request_id, ids in ledger.request_invoice_ids.items():
            ids.sort(key=lambda pk: (ledger.invoices[pk].due_date, pk))
            ledger.requests[request_id].customer = ledger.customers[ledger.requests[request_id].customer_id]
        for invoice in sorted(ledger.invoices.values(), key=lambda i: (i.due_date, i.pk)):
            invoice.customer = ledger.customers[invoice.customer_id]
            ledger._by_customer[invoice.customer_id].append(invoice)
        ledger._lock_requests_of_invoices()
        return ledger

    def _lock_requests_of_invoices(self) -> None:
        """The other pay links of the batch's invoices follow them (services._requests_follow_invoices):
        lock those requests too, after the invoices, as the per-row service does."""
        through = PaymentRequest.invoices.through
        extra: set[int] = set()
        for request_id, invoice_id in (through.objects.filter(invoice_id__in=list(self.invoices))
                                       .values_list("paymentrequest_id", "invoice_id")):
            self.invoice_request_ids[invoice_id].append(request_id)
            if request_id not in self.requests:
                extra.add(request_id)
        if not extra:
            return
        for request in PaymentRequest.objects.select_for_update().filter(pk__in=sorted(extra)).order_by("pk"):
            self.requests[request.pk] = request
            self.request_invoice_ids[request.pk] = []
        for request_id, invoice_id in (through.objects.filter(paymentrequest_id__in=sorted(extra))
                                       .values_list("paymentrequest_id", "invoice_id")):
            self.request_invoice_ids[request_id].append(invoice_id)
        outside = {i for rid in extra for i in self.request_invoice_ids[rid]} - set(self.invoices)
        self._outside_open = set(Invoice.objects.filter(pk__in=outside, status__in=Invoice.OPEN_STATUSES)
                                 .values_list("pk", flat=True))

    def _requests_follow(self, invoice_ids: Iterable[int]) -> None:
        """services._requests_follow_invoices, in memory."""
        def still_open(invoice_id: int) -> bool:
            invoice = self.invoices.get(invoice_id)
            return invoice.status in Invoice.OPEN_STATUSES if invoice is not None else invoice_id in self._outside_open

        for request_id in sorted({r for i in invoice_ids for r in self.invoice_request_ids.get(i, ())}):
            request = self.requests[request_id]
            previous = request.status
            open_left = any(still_open(i) for i in self.request_invoice_ids[request_id])
            if request_follow_invoices(request, open_left=open_left):
                self._dirty_requests.add(request_id)
                self._request_emit_status_change(request, previous)

    # ----------------------------------------------------------------------- reads

    def request_reserved(self, request_id: int) -> Decimal:
        """What payments in flight on the request may still collect (payment_request_reserved_amount)."""
        return self._reserved.get(request_id, ZERO)

    def request_invoices(self, request_id: int) -> list[Invoice]:
        """The request's invoices, in the model's order (due date, id)."""
        return [self.invoices[pk] for pk in self.request_invoice_ids[request_id]]

    def open_invoices(self, customer_id: int, currency: str, exclude: Iterable[int] = ()) -> list[Invoice]:
        """The customer's open invoices in the currency, oldest due first."""
        if customer_id not in self._all_open_of:
            self._lock_open_invoices_of(customer_id)
        excluded = set(exclude)
        return [i for i in self._by_customer.get(customer_id, ())
                if i.status in Invoice.OPEN_STATUSES and i.currency == currency and i.pk not in excluded]

    def _lock_open_invoices_of(self, customer_id: int) -> None:
        """A customer the caller did not announce (a quoted invoice that vanished): lock its open
        invoices now. Rare, and after the batch's own locks, like a second service call would."""
        self._all_open_of.add(customer_id)
        if customer_id not in self.customers:
            self.customers[customer_id] = Customer.objects.select_for_update().get(pk=customer_id)
        known = {i.pk for i in self._by_customer.get(customer_id, ())}
        for invoice in (Invoice.objects.select_for_update()
                        .filter(customer_id=customer_id, status__in=Invoice.OPEN_STATUSES).order_by("pk")):
            if invoice.pk in known or invoice.pk in self.invoices:
                continue
            invoice.customer = self.customers[customer_id]
            self.invoices[invoice.pk] = invoice
            self._by_customer[customer_id].append(invoice)
        self._by_customer[customer_id].sort(key=lambda i: (i.due_date, i.pk))

    # ----------------------------------------------------------------------- changes

    def event_add(self, *, type: str, creditor_id: int | None, payload: dict[str, Any],
                  subjects: dict[str, Any] | None = None) -> None:
        """An event of the caller's, written in order with the ledger's own."""
        self._events.append((type, creditor_id, payload, subjects or {}))

    def _next_payment_id(self) -> int:
        if not self._free_ids:
            with connection.cursor() as cursor:
                cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                               [Payment._meta.db_table, ID_BLOCK])
                self._free_ids = [row[0] for row in cursor.fetchall()][::-1]
        return self._free_ids.pop()

    def _payment_subjects(self, payment: Payment, invoice_ids: list[int]) -> dict[str, Any]:
        return {"payment": payment.pk, "customer": payment.customer_id, "payment_request": payment.payment_request_id,
                "installment": None, "instalment_plan": None, "invoice": invoice_ids}

    def _request_emit_status_change(self, request: PaymentRequest, previous: str) -> None:
        event_type = request_status_event_type(request, previous)
        if event_type is None:
            return
        invoices = self.request_invoices(request.pk)
        self.event_add(type=event_type, creditor_id=request.creditor_id,
                       payload=payloads.payment_request_payload(request, previous, invoices=invoices),
                       subjects={"payment_request": request.pk, "customer": request.customer_id,
                                 "invoice": [i.pk for i in invoices]})

    def _invoice_emit_status_change(self, invoice: Invoice, previous: str) -> None:
        event_type = invoice_status_event_type(invoice, previous)
        if event_type is None:
            return
        self.event_add(type=event_type, creditor_id=invoice.creditor_id,
                       payload=payloads.invoice_payload(invoice, previous),
                       subjects={"invoice": invoice.pk, "customer": invoice.customer_id})

    def payment_succeed(self, *, customer_id: int, amount: Any, currency: str | None, method: str,
                        payment_request_id: int | None = None,
                        allocations: Sequence[tuple[int, Decimal]] | None = None, gateway: str = "",
                        gateway_reference: str = "", end_to_end_id: str = "") -> Payment:
        """payment_create then payment_record_success, in memory. Every check comes before the
        first change, so a DomainError leaves the ledger as it was."""
        if method not in PaymentMethod.values:
            raise ValidationFailed(_("Unknown payment method."), field="method")
        customer = self.customers[customer_id]
        request = None
        if payment_request_id is not None:
            request = self.requests[payment_request_id]
            currency = payment_request_check_payable(request=request, customer=customer, currency=currency)
        currency = _currency(currency, customer.currency)
        amount = _positive_amount(amount, currency)
        if request is not None:
            available = request.amount_due - self.request_reserved(request.pk)
            if amount > available:
                raise AmountExceedsBalance(
                    _("The amount is above the remaining balance of %(balance)s %(currency)s.")
                    % {"balance": max(available, ZERO), "currency": currency}, field="amount")
        if allocations is not None:
            lines = [(self.invoices[pk], part) for pk, part in allocations]
            if sum((part for _i, part in lines), ZERO) > amount:
                raise AmountExceedsBalance(_("Allocations exceed the payment amount."), field="allocations")
            for invoice, _part in lines:
                if invoice.status not in Invoice.OPEN_STATUSES or invoice.currency != currency:
                    raise ValidationFailed(_("Invoice %(ref)s cannot receive this payment.")
                                           % {"ref": invoice.external_ref}, field="allocations")
        else:
            targets = (self.request_invoices(request.pk) if request is not None
                       else self.open_invoices(customer.pk, currency))
            lines = [(i, i.amount_due) for i in targets if i.status in Invoice.OPEN_STATUSES]

        # payment_create
        payment = Payment(pk=self._next_payment_id(), creditor_id=customer.creditor_id, customer=customer,
                          payment_request=request, method=method, currency=currency, amount=amount, gateway=gateway,
                          gateway_reference=gateway_reference, end_to_end_id=end_to_end_id,
                          status=Payment.Status.PENDING)
        self.event_add(type="payment.created", creditor_id=payment.creditor_id,
                       payload=payloads.payment_payload(payment, invoice_ids=[]),
                       subjects=self._payment_subjects(payment, []))
        # payment_record_success
        previous = payment.status
        payment.status = Payment.Status.SUCCEEDED
        payment.succeeded_at = timezone.now()
        remaining = amount
        allocated: list[dict[str, Any]] = []
        invoice_ids: list[int] = []
        for invoice, part in sorted(lines, key=lambda line: line[0].pk):
            if remaining <= 0:
                break
            if invoice.status not in Invoice.OPEN_STATUSES or invoice.currency != currency:
                continue
            part = min(part, invoice.amount_due, remaining)
            if part <= 0:
                continue
            key = (payment.pk, invoice.pk)
            if key in self._allocations:
                self._allocations[key].amount += part
            else:
                self._allocations[key] = PaymentAllocation(payment_id=payment.pk, invoice_id=invoice.pk, amount=part)
                invoice_ids.append(invoice.pk)
            previous_invoice = invoice.status
            invoice.amount_paid += part
            _invoice_refresh_status(invoice)
            self._dirty_invoices.add(invoice.pk)
            self._invoice_emit_status_change(invoice, previous_invoice)
            remaining -= part
            allocated.append({"invoice_id": invoice.pk, "invoice_external_ref": invoice.external_ref,
                              "amount": part})
        if request is not None:
            previous_request = request.status
            request.amount_paid = min(request.amount, request.amount_paid + amount)
            _request_refresh_status(request)
            self._dirty_requests.add(request.pk)
            self._request_emit_status_change(request, previous_request)
        self._requests_follow([line["invoice_id"] for line in allocated])
        self.event_add(type="payment.succeeded", creditor_id=payment.creditor_id,
                       payload=payloads.payment_payload(payment, previous, invoice_ids=list(invoice_ids),
                                                        allocations=allocated),
                       subjects=self._payment_subjects(payment, list(invoice_ids)))
        self._payments.append(payment)
        if remaining > 0:
            self._credit_adjust(customer, remaining, reason=f"over-payment of payment #{payment.pk}")
        return payment

    def _credit_adjust(self, customer: Customer, delta: Decimal, *, reason: str) -> None:
        """customer_credit_adjust for a positive delta."""
        delta = round_money(delta, customer.currency)
        if delta == 0:
            return
        customer.credit_balance += delta
        self._dirty_customers.add(customer.pk)
        self.event_add(type="customer.credit_balance_changed", creditor_id=customer.creditor_id,
                       payload={**payloads.customer_fields(customer), "credit_balance": customer.credit_balance,
                                "currency": customer.currency, "delta": delta, "reason": reason},
                       subjects={"customer": customer.pk})

    def invoice_write_off(self, *, invoice_id: int, max_amount: Decimal | None = None) -> Decimal:
        """invoice_write_off in memory; returns the amount written off."""
        invoice = self.invoices[invoice_id]
        if invoice.status not in Invoice.OPEN_STATUSES:
            raise InvalidTransition(_("%(model)s #%(pk)s is %(status)s and cannot become %(to)s")
                                    % {"model": invoice._meta.verbose_name, "pk": invoice.pk,
                                       "status": invoice.status, "to": "written_off"})
        remaining = invoice.amount_due
        if max_amount is not None and remaining > max_amount:
            raise ValidationFailed(_("The remaining %(amount)s is above the write-off tolerance.")
                                   % {"amount": remaining}, field="amount")
        previous = invoice.status
        invoice.amount_written_off += remaining
        invoice.status = Invoice.Status.WRITTEN_OFF
        self._dirty_invoices.add(invoice.pk)
        self.event_add(type="invoice.written_off", creditor_id=invoice.creditor_id,
                       payload={**payloads.invoice_payload(invoice, previous), "written_off_amount": remaining},
                       subjects={"invoice": invoice.pk, "customer": invoice.customer_id})
        return remaining

    # ----------------------------------------------------------------------- writing

    def flush(self) -> None:
        """Write everything changed since the ledger was locked (or last flushed)."""
        now = timezone.now()
        if self._payments:
            for payment in self._payments:
                payment.created_at = payment.updated_at = now
            copy_insert(Payment, self._payments)
        if self._allocations:
            copy_insert(PaymentAllocation, list(self._allocations.values()))
        update_from_values(Invoice, ["amount_paid", "amount_written_off", "status", "paid_at"],
                            [self.invoices[pk] for pk in sorted(self._dirty_invoices)], now)
        update_from_values(PaymentRequest, ["amount_paid", "status", "paid_at"],
                            [self.requests[pk] for pk in sorted(self._dirty_requests)], now)
        update_from_values(Customer, ["credit_balance"],
                            [self.customers[pk] for pk in sorted(self._dirty_customers)], now)
        events_emit_bulk(self._events)
        self._payments, self._allocations, self._events = [], {}, []
        self._dirty_invoices, self._dirty_requests, self._dirty_customers = set(), set(), set()


def _copies_as_is(field) -> bool:
    """Whether COPY can take the attribute's value as it is (psycopg adapts it)."""
    if isinstance(field, models.DateField) and (field.auto_now or field.auto_now_add):  # DateTimeField too
        return False
    return isinstance(field, (models.CharField, models.TextField, models.IntegerField, models.BooleanField,
                              models.DateField, models.ForeignKey, models.UUIDField))


def copy_insert(model: type, objects: list) -> None:
    """INSERT many rows with PostgreSQL COPY: the rows bulk_create would write (defaults and
    auto_now filled the same way), without reading ids back: rows that need one have it already."""
    if not objects:
        return
    with_pk = objects[0].pk is not None
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # Most columns go to COPY as the attribute holds them (str, int, Decimal, date, bool, None,
    # UUID); only fields that fill themselves in (auto_now…) or adapt their value (JSON…) go
    # through Django's preparation, which costs more than the COPY itself.
    plain = [_copies_as_is(f) for f in fields]
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
        for obj in objects:
            copy.write_row([getattr(obj, f.attname) if is_plain else
                            f.get_db_prep_save(f.pre_save(obj, True), connection)
                            for f, is_plain in zip(fields, plain, strict=True)])
    for obj in objects:
        obj._state.adding = False
        obj._state.db = connection.alias


def update_from_values(model: type, fields: list[str], objects: list, now=None, *, batch: int = 50_000) -> None:
    """UPDATE table SET f = v.f, ... [, updated_at = now] FROM <the rows> v WHERE id = v.id.
    A few rows go as a VALUES list; more are COPYed into a staging table first (a VALUES list of
    tens of thousands of parameters costs more to build and parse than the update itself).
    `now` None: no updated_at."""
    if not objects:
        return
    table = connection.ops.quote_name(model._meta.db_table)
    columns = [model._meta.get_field(name) for name in fields]
    quoted = [connection.ops.quote_name(c.column) for c in columns]
    assignments = ", ".join(f"{q} = v.{q}" for q in quoted)
    stamp = ", updated_at = %s" if now is not None else ""
    head = [now] if now is not None else []

    def update(cursor, rows: str, params: list) -> None:
        cursor.execute(f"UPDATE {table} AS t SET {assignments}{stamp} FROM {rows} WHERE t.id = v.id",
                       [*head, *params] or None)

    with transaction.atomic(), connection.cursor() as cursor:
        if len(objects) < COPY_UPDATE_MIN:
            casts = ["bigint", *(c.db_type(connection) for c in columns)]
            row = "(" + ", ".join(f"%s::{cast}" for cast in casts) + ")"
            params = [value for obj in objects for value in
                      (obj.pk, *(c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns))]
            update(cursor, f"(VALUES {', '.join([row] * len(objects))}) AS v(id, {', '.join(quoted)})", params)
        else:
            staging = _staging_table(cursor, model, columns, quoted)
            plain = [_copies_as_is(c) for c in columns]
            for start in range(0, len(objects), batch):
                cursor.execute(f"TRUNCATE {staging}")
                with cursor.cursor.copy(f"COPY {staging} (id, {', '.join(quoted)}) FROM STDIN") as copy:
                    for obj in objects[start:start + batch]:
                        copy.write_row([obj.pk, *(getattr(obj, c.attname) if is_plain else
                                                  c.get_db_prep_save(getattr(obj, c.attname), connection)
                                                  for c, is_plain in zip(columns, plain, strict=True))])
                update(cursor, f"{staging} AS v", [])
    if now is not None:
        for obj in objects:
            obj.updated_at = now


def _staging_table(cursor, model: type, columns: list, quoted: list[str]) -> str:
    """A temporary table for the new values of these columns (one per table and column set; a
    hash names it, as names are cut at 63 characters), dropped at commit."""
    signature = f"{model._meta.db_table}:{','.join(c.column for c in columns)}"
    staging = f"update_rows_{hashlib.sha1(signature.encode()).hexdigest()[:16]}"
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (id bigint, "
                   + ", ".join(f"{q} {c.db_type(connection)}" for q, c in zip(quoted, columns, strict=True))
                   + ") ON COMMIT DROP")
    return staging


COPY_UPDATE_MIN = 500


@transaction.atomic
def payments_record_bulk(*, lines: Sequence[BulkPaymentLine]) -> list[Payment]:
    """Many succeeded payments at once, with the rows and events of payment_create followed by
    payment_record_success for each line, in order. All or nothing: a DomainError on any line
    rolls the whole batch back."""
    ledger = PaymentLedger.lock(
        customer_ids={line.customer_id for line in lines},
        invoice_ids={pk for line in lines for pk, _amount in (line.allocations or ())},
        request_ids={line.payment_request_id for line in lines if line.payment_request_id},
        open_invoices_of={line.customer_id for line in lines
                          if line.allocations is None and not line.payment_request_id})
    payments = [ledger.payment_succeed(customer_id=line.customer_id, amount=line.amount, currency=line.currency,
                                       method=line.method, payment_request_id=line.payment_request_id,
                                       allocations=line.allocations, gateway=line.gateway,
                                       gateway_reference=line.gateway_reference, end_to_end_id=line.end_to_end_id)
                for line in lines]
    ledger.flush()
    return payments
