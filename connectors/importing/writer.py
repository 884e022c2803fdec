"""Writing clean rows: customers, invoices, payment requests and their outbox events.

Two engines with the same result. On PostgreSQL the rows are COPYed into a temporary staging
table and written with a handful of set-based INSERT ... ON CONFLICT statements (tokens and
short references drawn by the database, events written set-based in the exact shape the
services write them). Elsewhere (SQLite) each row goes through the services. Existing
invoices and customers that changed always go through the services, which check state.
Both run inside the caller's transaction: the caller decides to commit or roll back.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app import services as core
from collections_app.errors import DomainError
from collections_app.models import (
    ALL_PAY_METHODS,
    SHORT_REFERENCE_ALPHABET,
    Creditor,
    Customer,
    Invoice,
    PaymentRequest,
)
from connectors.importing.normalise import CleanRow, RowError
from notifications.dispatch import schedule_dispatch_on_commit
from notifications.models import Event, EventSubject

COPY_COLUMNS = ("row_no", "external_ref", "customer_ref", "name", "email", "phone", "amount", "currency",
                "issue_date", "due_date", "description", "balance")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_line(row: CleanRow) -> str:
    """One line of PostgreSQL's COPY text format."""
    return "\t".join((
        str(row.row), row.external_ref.translate(_ESCAPES), row.customer_ref.translate(_ESCAPES),
        row.name.translate(_ESCAPES), row.email.translate(_ESCAPES), row.phone.translate(_ESCAPES),
        str(row.amount), row.currency, row.issue_date.isoformat(), row.due_date.isoformat(),
        row.description.translate(_ESCAPES), "\\N" if row.balance is None else str(row.balance),
    )) + "\n"


@dataclass
class WriteOutcome:
    customers_created: int = 0
    customers_updated: int = 0
    invoices_created: int = 0
    invoices_updated: int = 0
    invoices_unchanged: int = 0
    payment_requests_created: int = 0
    errors: list[RowError] = field(default_factory=list)
    # external_ref -> created / updated / unchanged (only collected when asked: API calls)
    outcomes: dict[str, str] = field(default_factory=dict)

    def counters(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("customers_created", "customers_updated", "invoices_created",
                                              "invoices_updated", "invoices_unchanged",
                                              "payment_requests_created")}


# --------------------------------------------------------------------------- shared checks

def _invoice_change(invoice: Invoice, row: CleanRow, customer_ref: str) -> tuple[dict, RowError | None]:
    """What a row would change on an existing invoice, or why it may not."""
    if customer_ref != row.customer_ref:
        return {}, RowError(row.row, "customer_ref", _("Invoice %(ref)s already exists for customer %(customer)s.")
                            % {"ref": row.external_ref, "customer": customer_ref})
    if row.currency != invoice.currency:
        return {}, RowError(row.row, "currency", _("Invoice %(ref)s exists in %(currency)s; the currency cannot "
                                                   "change.") % {"ref": row.external_ref,
                                                                 "currency": invoice.currency})
    changes = {}
    if row.amount != invoice.amount_total:
        changes["amount_total"] = row.amount
    if row.due_date != invoice.due_date:
        changes["due_date"] = row.due_date
    if row.description and row.description != invoice.description:
        changes["description"] = row.description
    if not changes:
        return {}, None
    if invoice.status not in Invoice.OPEN_STATUSES:
        return {}, RowError(row.row, "external_ref", _("Invoice %(ref)s is %(status)s and cannot be changed.")
                            % {"ref": row.external_ref, "status": invoice.get_status_display()})
    if "amount_total" in changes and row.amount < invoice.amount_paid + invoice.amount_written_off:
        return {}, RowError(row.row, "amount", _("The amount cannot be below what is already paid (%(paid)s).")
                            % {"paid": invoice.amount_paid})
    return changes, None


def _apply_invoice_change(invoice: Invoice, changes: dict) -> None:
    invoice = core.invoice_update(invoice=invoice, **changes)
    if "amount_total" in changes:
        _import_request_follows(invoice)


def _import_request_follows(invoice: Invoice) -> None:
    # The pay link the import created for this invoice alone follows what is due while nothing
    # has been paid on it; any other request is left to the finance team.
    if invoice.status not in Invoice.OPEN_STATUSES:
        return
    request = (PaymentRequest.objects.select_for_update()
               .filter(creditor_id=invoice.creditor_id, reference=invoice.external_ref, invoices=invoice,
                       status=PaymentRequest.Status.OPEN, amount_paid=0).first())
    if request is not None and request.invoices.count() == 1:
        request.amount = invoice.amount_due
        request.save(update_fields=["amount", "updated_at"])


def _settle_from_balance(invoice_id: int, balance: Decimal) -> bool:
    """What the ERP received outside is recorded; the import's own pay link follows."""
    # The service locks and reads the invoice itself: only its id is needed to call it.
    if core.invoice_record_paid_outside(invoice=Invoice(pk=invoice_id), balance=balance) is None:
        return False
    _import_request_follows(Invoice.objects.get(pk=invoice_id))
    return True


def _customer_changes(customer: Customer, row: CleanRow) -> dict:
    # An empty cell means "not given", never "erase".
    return {name: getattr(row, name) for name in ("name", "email", "phone")
            if getattr(row, name) and getattr(row, name) != getattr(customer, name)}


def _guard(row: int, func) -> RowError | None:
    """func in a savepoint: a domain error is that row's error, the other rows go on."""
    try:
        with transaction.atomic():
            func()
    except DomainError as exc:
        column = {"amount_total": "amount", "reference": "external_ref"}.get(exc.field or "", exc.field or "")
        return RowError(row, column, exc.message)
    return None


# --------------------------------------------------------------------------- ORM engine

def write_orm(*, creditor: Creditor, rows: Iterable[CleanRow], collect_outcomes: bool = False) -> WriteOutcome:
    out = WriteOutcome()
    customers: dict[str, Customer] = {}
    for row in rows:
        def write_row(row: CleanRow = row) -> None:
            invoice = Invoice.objects.filter(creditor=creditor, external_ref=row.external_ref) \
                .select_related("customer").first()
            if invoice is None and row.balance == 0:
                # Paid in the ERP before there was anything to collect: nothing to create.
                out.invoices_unchanged += 1
                if collect_outcomes:
                    out.outcomes[row.external_ref] = "already_paid"
                return
            customer = customers.get(row.customer_ref) or Customer.objects.filter(
                creditor=creditor, external_ref=row.customer_ref).first()
            if customer is None:
                customer = core.customer_create(creditor=creditor, external_ref=row.customer_ref, name=row.name,
                                                email=row.email, phone=row.phone)
                out.customers_created += 1
            else:
                changes = _customer_changes(customer, row)
                if changes:
                    customer = core.customer_update(customer=customer, **changes)
                    out.customers_updated += 1
            customers[row.customer_ref] = customer
            if invoice is None:
                invoice = core.invoice_create(creditor=creditor, customer=customer, external_ref=row.external_ref,
                                              amount_total=row.amount, currency=row.currency,
                                              issue_date=row.issue_date, due_date=row.due_date,
                                              description=row.description)
                out.invoices_created += 1
                core.payment_request_create(creditor=creditor, customer=customer, invoices=[invoice],
                                            reference=row.external_ref, description=row.description)
                out.payment_requests_created += 1
                outcome = "created"
            else:
                changes, error = _invoice_change(invoice, row, invoice.customer.external_ref)
                if error:
                    raise DomainError(error.message, field=error.column)
                if changes:
                    _apply_invoice_change(invoice, changes)
                    out.invoices_updated += 1
                    outcome = "updated"
                else:
                    out.invoices_unchanged += 1
                    outcome = "unchanged"
            if row.balance is not None and _settle_from_balance(invoice.pk, row.balance) and outcome == "unchanged":
                out.invoices_unchanged -= 1
                out.invoices_updated += 1
                outcome = "updated"
            if collect_outcomes:
                out.outcomes[row.external_ref] = outcome

        snapshot = out.counters()
        error = _guard(row.row, write_row)
        if error:
            # The row's savepoint was rolled back: so are its counters.
            for key, value in snapshot.items():
                setattr(out, key, value)
            customers.pop(row.customer_ref, None)
            out.errors.append(error)
    return out


# --------------------------------------------------------------------------- PostgreSQL engine

def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# Rows written per round of invoices, requests, links and events (see write_postgres).
CHUNK_ROWS = 50_000

_DROP_TEMP = "DROP TABLE IF EXISTS import_rows, import_new_customers, import_new_invoices, import_new_requests"


def _short_reference_sql() -> str:
    # Short references are for reading out on the phone, not secrets: random() is enough, and
    # the unique index settles the rare collision (the insert is retried for those rows).
    alphabet = SHORT_REFERENCE_ALPHABET
    char = f"substr('{alphabet}', 1 + floor(random() * {len(alphabet)})::int, 1)"
    return " || ".join([char] * 8)


# 2 × 122 random bits from the kernel's CSPRNG, URL-safe base64 like secrets.token_urlsafe(32).
TOKEN_SQL = ("rtrim(translate(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'),"
             " '+/', '-_'), '=')")


def _json_scalar(value) -> str:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def write_postgres(*, creditor: Creditor, copy_source: IO[str], collect_outcomes: bool = False,
                   progress=None, balances: bool = True) -> WriteOutcome:
    """balances: whether the file has a balance-due column (else its steps are skipped)."""
    out = WriteOutcome()
    step = progress or (lambda phase, fraction: None)
    customer_t, invoice_t, request_t = _t(Customer), _t(Invoice), _t(PaymentRequest)
    m2m_t = connection.ops.quote_name(PaymentRequest.invoices.through._meta.db_table)
    event_t, subject_t = _t(Event), _t(EventSubject)
    now = timezone.now()
    expires_at = now + dt.timedelta(days=creditor.pay_link_validity_days)
    params = {"creditor": creditor.pk, "now": now, "expires_at": expires_at,
              "expires_json": _json_scalar(expires_at), "base": f"{settings.PUBLIC_BASE_URL}/pay/",
              "methods": json.dumps([m.value for m in ALL_PAY_METHODS]), "locale": creditor.default_locale,
              "tz": creditor.time_zone, "currency": creditor.default_currency}
    with connection.cursor() as cursor:
        cursor.execute(_DROP_TEMP)
        # Sorts and hashes over a million staged rows stay in memory (this transaction only).
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("""
            CREATE TEMP TABLE import_rows (
                row_no int PRIMARY KEY, external_ref text NOT NULL, customer_ref text NOT NULL,
                name text NOT NULL, email text NOT NULL, phone text NOT NULL, amount numeric(14, 2) NOT NULL,
                currency text NOT NULL, issue_date date NOT NULL, due_date date NOT NULL,
                description text NOT NULL, balance numeric(14, 2)
            ) ON COMMIT DROP""")
        step("staging", 0.0)
        with cursor.cursor.copy(f"COPY import_rows ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            while chunk := copy_source.read(1 << 20):
                copy.write(chunk)
        cursor.execute("CREATE INDEX ON import_rows (external_ref)")
        cursor.execute("ANALYZE import_rows")
        step("checking", 0.1)
        # Paid in the ERP before there was anything to collect: nothing to create.
        settled_before = []
        if balances:
            cursor.execute(f"""
                DELETE FROM import_rows r WHERE r.balance = 0 AND NOT EXISTS (
                    SELECT 1 FROM {invoice_t} i WHERE i.creditor_id = %(creditor)s AND i.external_ref = r.external_ref)
                RETURNING r.external_ref""", params)
            settled_before = cursor.fetchall()
        for (ref,) in settled_before:
            out.invoices_unchanged += 1
            if collect_outcomes:
                out.outcomes[ref] = "already_paid"

        # Rows about invoices that exist already: same checks as the ORM engine, in Python
        # (they are the rare case of a daily file: re-sent or corrected invoices).
        cursor.execute(f"""
            SELECT r.row_no, r.external_ref, r.customer_ref, r.name, r.email, r.phone, r.amount, r.currency,
                   r.issue_date, r.due_date, r.description, i.id, c.external_ref
            FROM import_rows r
            JOIN {invoice_t} i ON i.creditor_id = %(creditor)s AND i.external_ref = r.external_ref
            JOIN {customer_t} c ON c.id = i.customer_id""", params)
        existing = cursor.fetchall()
        invoices = Invoice.objects.in_bulk([e[11] for e in existing])
        updates: list[tuple[CleanRow, Invoice, dict]] = []
        rejected: list[int] = []
        unchanged: set[int] = set()
        for record in existing:
            row = CleanRow(*record[:11])
            changes, error = _invoice_change(invoices[record[11]], row, record[12])
            if error:
                out.errors.append(error)
                rejected.append(row.row)
            elif changes:
                updates.append((row, invoices[record[11]], changes))
            else:
                out.invoices_unchanged += 1
                unchanged.add(row.row)
                if collect_outcomes:
                    out.outcomes[row.external_ref] = "unchanged"
        cursor.execute(f"""
            SELECT r.row_no, r.external_ref FROM import_rows r
            JOIN {request_t} p ON p.creditor_id = %(creditor)s AND p.reference = r.external_ref
            WHERE NOT EXISTS (SELECT 1 FROM {invoice_t} i
                              WHERE i.creditor_id = %(creditor)s AND i.external_ref = r.external_ref)""", params)
        for row_no, _ref in cursor.fetchall():
            out.errors.append(RowError(row_no, "external_ref",
                                       _("A payment request with this reference already exists.")))
            rejected.append(row_no)
        if rejected:
            cursor.execute("DELETE FROM import_rows WHERE row_no = ANY(%s)", [rejected])

        # Customers: new ones set-based, changed ones through the service.
        cursor.execute(f"""
            SELECT DISTINCT ON (r.customer_ref) c.id, r.row_no, r.name, r.email, r.phone
            FROM import_rows r JOIN {customer_t} c ON c.creditor_id = %(creditor)s AND c.external_ref = r.customer_ref
            ORDER BY r.customer_ref, r.row_no DESC""", params)
        known = cursor.fetchall()
        known_customers = Customer.objects.in_bulk([k[0] for k in known])
        for customer_id, row_no, name, email, phone in known:
            customer = known_customers[customer_id]
            row = CleanRow(row_no, "", "", name, email, phone, Decimal(0), "", None, None, "")
            changes = _customer_changes(customer, row)
            if changes:
                core.customer_update(customer=customer, **changes)
                out.customers_updated += 1
        step("customers", 0.2)
        cursor.execute(f"""
            CREATE TEMP TABLE import_new_customers ON COMMIT DROP AS
            WITH ins AS (
                INSERT INTO {customer_t} (creditor_id, external_ref, name, company_name, is_business, email, phone,
                    locale, time_zone, address_line1, postal_code, city, country, tags, currency, credit_balance,
                    portal_token, notes, created_at, updated_at)
                SELECT DISTINCT ON (customer_ref) %(creditor)s, customer_ref, name, '', false, email, phone,
                    %(locale)s, %(tz)s, '', '', '', 'FR', '[]'::jsonb, %(currency)s, 0, {TOKEN_SQL}, '',
                    %(now)s, %(now)s
                FROM import_rows ORDER BY customer_ref, row_no DESC
                ON CONFLICT (creditor_id, external_ref) DO NOTHING
                RETURNING id, external_ref, name, email, phone, locale, tags)
            SELECT * FROM ins""", params)
        out.customers_created = cursor.rowcount
        _events_from(cursor, event_t, subject_t, "customer.created", f"""
            SELECT jsonb_build_object({_customer_pairs('n')}) AS payload, n.id AS sort_key
            FROM import_new_customers n""", ["customer"], params)

        # Invoices, payment requests, links and their events go chunk by chunk (in file order),
        # their foreign keys checked at the end of each statement while the rows they point to
        # are still in shared buffers. Deferred to commit, a million-row file queued eleven
        # million checks and then sat in COMMIT for over a minute with no progress to show.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("""
            CREATE TEMP TABLE import_new_invoices (id bigint, external_ref text, customer_id bigint,
                description text, currency text, amount_total numeric(14, 2), amount_paid numeric(14, 2),
                amount_written_off numeric(14, 2), issue_date date, due_date date, status text) ON COMMIT DROP""")
        cursor.execute("""
            CREATE TEMP TABLE import_new_requests (id bigint, reference text, invoice_id bigint, customer_id bigint,
                short_reference text, token text, status text, amount numeric(14, 2), amount_paid numeric(14, 2),
                currency text, allowed_methods jsonb) ON COMMIT DROP""")
        cursor.execute("SELECT min(row_no), max(row_no) FROM import_rows")
        first, last = cursor.fetchone()
        chunks = list(range(first or 0, (last or 0) + 1, CHUNK_ROWS)) if first is not None else []
        for number, low in enumerate(chunks):
            done = number / len(chunks)
            chunk = {**params, "low": low, "high": low + CHUNK_ROWS - 1}
            cursor.execute("TRUNCATE import_new_invoices, import_new_requests")
            step("invoices", 0.3 + 0.65 * done)
            cursor.execute(f"""
                WITH ins AS (
                    INSERT INTO {invoice_t} (creditor_id, customer_id, external_ref, description, currency,
                        amount_total, amount_paid, amount_written_off, issue_date, due_date, status, created_at,
                        updated_at)
                    SELECT %(creditor)s, c.id, r.external_ref, r.description, r.currency, r.amount, 0, 0,
                        r.issue_date, r.due_date, 'open', %(now)s, %(now)s
                    FROM import_rows r
                    JOIN {customer_t} c ON c.creditor_id = %(creditor)s AND c.external_ref = r.customer_ref
                    WHERE r.row_no BETWEEN %(low)s AND %(high)s
                    ORDER BY r.row_no
                    ON CONFLICT (creditor_id, external_ref) DO NOTHING
                    RETURNING id, external_ref, customer_id, description, currency, amount_total, amount_paid,
                        amount_written_off, issue_date, due_date, status)
                INSERT INTO import_new_invoices SELECT * FROM ins""", chunk)
            created = cursor.rowcount
            out.invoices_created += created
            if not created:
                continue
            cursor.execute("ANALYZE import_new_invoices")
            step("invoice events", 0.3 + 0.65 * (done + 0.2 / len(chunks)))
            _events_from(cursor, event_t, subject_t, "invoice.created", f"""
                SELECT jsonb_build_object({_invoice_pairs()}, {_customer_pairs('c')}) AS payload, i.id AS sort_key
                FROM import_new_invoices i JOIN {customer_t} c ON c.id = i.customer_id""",
                         ["invoice", "customer"], params)
            step("payment requests", 0.3 + 0.65 * (done + 0.4 / len(chunks)))
            requests = 0
            for attempt in range(10):
                # ON CONFLICT without a target also skips a short-reference collision; those rows
                # are simply tried again with a new draw. (References already taken were rejected above.)
                retry = ("WHERE NOT EXISTS (SELECT 1 FROM import_new_requests q WHERE q.invoice_id = n.id)"
                         if attempt else "")
                cursor.execute(f"""
                    WITH ins AS (
                        INSERT INTO {request_t} (creditor_id, customer_id, reference, short_reference, token,
                            description, currency, amount, amount_paid, allowed_methods, expires_at, status,
                            created_at, updated_at)
                        SELECT %(creditor)s, n.customer_id, n.external_ref, {_short_reference_sql()}, {TOKEN_SQL},
                            n.description, n.currency, n.amount_total, 0, %(methods)s::jsonb, %(expires_at)s,
                            'open', %(now)s, %(now)s
                        FROM import_new_invoices n
                        {retry}
                        ORDER BY n.id
                        ON CONFLICT DO NOTHING
                        RETURNING id, reference, customer_id, short_reference, token, status, amount, amount_paid,
                            currency, allowed_methods)
                    INSERT INTO import_new_requests
                    SELECT ins.id, ins.reference, n.id, ins.customer_id, ins.short_reference, ins.token, ins.status,
                        ins.amount, ins.amount_paid, ins.currency, ins.allowed_methods
                    FROM ins JOIN import_new_invoices n ON n.external_ref = ins.reference""", chunk)
                requests += cursor.rowcount
                if requests >= created or cursor.rowcount == 0:
                    break
            out.payment_requests_created += requests
            step("links", 0.3 + 0.65 * (done + 0.6 / len(chunks)))
            cursor.execute(f"""INSERT INTO {m2m_t} (paymentrequest_id, invoice_id)
                               SELECT id, invoice_id FROM import_new_requests""")
            step("events", 0.3 + 0.65 * (done + 0.7 / len(chunks)))
            _events_from(cursor, event_t, subject_t, "payment_request.created", f"""
                SELECT jsonb_build_object({_request_pairs()}, {_customer_pairs('c')}) AS payload, p.id AS sort_key
                FROM import_new_requests p JOIN {customer_t} c ON c.id = p.customer_id""",
                         ["payment_request", "customer", "invoices"], params)
            if collect_outcomes:
                cursor.execute("SELECT external_ref FROM import_new_invoices")
                out.outcomes.update({ref: "created" for (ref,) in cursor.fetchall()})
        # The updates below go through the services, which count on the usual deferral.
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        step("updates", 0.95)
        for row, invoice, changes in updates:
            _apply_invoice_change(invoice, changes)
            out.invoices_updated += 1
            if collect_outcomes:
                out.outcomes[row.external_ref] = "updated"
        # What the ERP says was received outside: the rare rows whose balance is below ours.
        settle = []
        if balances:
            cursor.execute(f"""
                SELECT r.row_no, r.external_ref, i.id, r.balance FROM import_rows r
                JOIN {invoice_t} i ON i.creditor_id = %(creditor)s AND i.external_ref = r.external_ref
                WHERE r.balance IS NOT NULL AND i.status = ANY(%(open)s)
                  AND i.amount_total - i.amount_paid - i.amount_written_off > r.balance
                ORDER BY r.row_no""", {**params, "open": [status.value for status in Invoice.OPEN_STATUSES]})
            settle = cursor.fetchall()
        for row_no, ref, invoice_id, balance in settle:
            settled: list[bool] = []
            error = _guard(row_no, lambda i=invoice_id, b=balance: settled.append(_settle_from_balance(i, b)))
            if error:
                out.errors.append(error)
            elif settled[0] and row_no in unchanged:
                out.invoices_unchanged -= 1
                out.invoices_updated += 1
                if collect_outcomes:
                    out.outcomes[ref] = "updated"
        # ON COMMIT DROP is not enough: a dry run, or an import inside a longer transaction, ends
        # with a rollback to a savepoint or goes on.
        cursor.execute(_DROP_TEMP)
    if out.customers_created or out.invoices_created:
        schedule_dispatch_on_commit()
    return out


def _customer_pairs(alias: str) -> str:
    # Exactly collections_app.payloads.customer_fields. Payloads are built as one
    # jsonb_build_object (merging two objects with || costs a re-sort per row).
    return (f"'customer_id', {alias}.id, 'customer_external_ref', {alias}.external_ref, "
            f"'customer_name', {alias}.name, 'customer_email', {alias}.email, 'customer_phone', {alias}.phone, "
            f"'customer_locale', {alias}.locale, 'customer_tags', {alias}.tags")


def _invoice_pairs() -> str:
    # Exactly collections_app.payloads.invoice_payload as DjangoJSONEncoder writes it.
    return ("'invoice_id', i.id, 'invoice_external_ref', i.external_ref, 'status', i.status, "
            "'previous_status', NULL, 'amount_total', i.amount_total::text, 'amount_paid', i.amount_paid::text, "
            "'amount_due', (i.amount_total - i.amount_paid - i.amount_written_off)::text, 'currency', i.currency, "
            "'issue_date', to_char(i.issue_date, 'YYYY-MM-DD'), 'due_date', to_char(i.due_date, 'YYYY-MM-DD')")


def _request_pairs() -> str:
    # Exactly collections_app.payloads.payment_request_payload as DjangoJSONEncoder writes it.
    return ("'payment_request_id', p.id, 'reference', p.reference, "
            "'short_reference', p.short_reference, 'pay_url', %(base)s || p.token || '/', 'status', p.status, "
            "'previous_status', NULL, 'amount', p.amount::text, 'amount_paid', p.amount_paid::text, "
            "'amount_due', (p.amount - p.amount_paid)::text, 'currency', p.currency, "
            "'allowed_methods', p.allowed_methods, 'expires_at', %(expires_json)s::text, "
            "'invoice_ids', jsonb_build_array(p.invoice_id), 'invoice_external_refs', jsonb_build_array(p.reference)")


_SUBJECT_KEYS = {"customer": "payload->>'customer_id'", "invoice": "payload->>'invoice_id'",
                 "payment_request": "payload->>'payment_request_id'",
                 "invoices": "payload->'invoice_ids'->>0"}


def _events_from(cursor, event_t: str, subject_t: str, event_type: str, select_sql: str, kinds: list[str],
                 params: dict) -> None:
    """Outbox events (and their subjects) for every row of a SELECT giving payload and sort_key,
    in sort_key order so that event ids follow the objects' ids like one-by-one creation."""
    # RETURNING only the subject ids, not the payloads: a million jsonb values kept in the CTE's
    # tuple store was most of the cost.
    returning = ", ".join(f"({_SUBJECT_KEYS[kind]})::bigint AS s{i}" for i, kind in enumerate(kinds))
    subjects = " UNION ALL ".join(f"SELECT id, '{kind.rstrip('s')}', s{i} FROM ev" for i, kind in enumerate(kinds))
    cursor.execute(f"""
        WITH src AS ({select_sql}),
        ev AS (
            INSERT INTO {event_t} (uuid, type, occurred_at, creditor_id, payload, dispatch_attempts, last_error)
            SELECT gen_random_uuid(), '{event_type}', %(now)s, %(creditor)s, payload, 0, ''
            FROM src ORDER BY sort_key
            RETURNING id, {returning})
        INSERT INTO {subject_t} (event_id, kind, object_id) {subjects}""", params)
