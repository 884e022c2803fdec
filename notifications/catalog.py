"""The event catalog: every event type the platform emits, with its payload fields.

Events are typed payloads: consumers (notification rules, webhooks, files, the API feed)
only ever see these fields, never domain models. docs/events.md is the human version of
this module; tests check that the two agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    fields: tuple[str, ...] = field(default_factory=tuple)


_COMMON_CUSTOMER = ("customer_id", "customer_external_ref", "customer_name", "customer_email",
                    "customer_phone", "customer_locale", "customer_tags")
_MONEY = ("amount", "currency")

CATALOG: dict[str, EventType] = {}


def register(name: str, description: str, fields: tuple[str, ...] = ()) -> EventType:
    event_type = EventType(name=name, description=description, fields=fields)
    CATALOG[name] = event_type
    return event_type


# customers
register("customer.created", "A customer (debtor) was created.", _COMMON_CUSTOMER)
register("customer.updated", "A customer's details changed.", _COMMON_CUSTOMER + ("changed_fields",))
register("customer.credit_balance_changed", "The customer's credit balance changed.",
         _COMMON_CUSTOMER + ("credit_balance", "currency", "delta", "reason"))

# invoices
_INVOICE = ("invoice_id", "invoice_external_ref", "status", "previous_status", "amount_total",
            "amount_paid", "amount_due", "currency", "issue_date", "due_date") + _COMMON_CUSTOMER
register("invoice.created", "An invoice (or debt) was created.", _INVOICE)
register("invoice.updated", "An invoice's amounts or dates changed.", _INVOICE + ("changed_fields",))
register("invoice.partially_paid", "Part of the invoice was paid.", _INVOICE)
register("invoice.paid", "The invoice is fully paid.", _INVOICE)
register("invoice.reopened", "A reversed allocation re-opened a paid invoice.", _INVOICE)
register("invoice.cancelled", "The invoice was cancelled.", _INVOICE)
register("invoice.written_off", "The remaining balance was written off.", _INVOICE + ("written_off_amount",))
register("invoice.write_off_reversed", "A write-off was taken back: the balance is due again.",
         _INVOICE + ("written_off_amount",))

# payment requests
_REQUEST = ("payment_request_id", "reference", "short_reference", "pay_url", "status", "previous_status",
            "amount", "amount_paid", "amount_due", "currency", "allowed_methods", "expires_at",
            "invoice_ids", "invoice_external_refs") + _COMMON_CUSTOMER
register("payment_request.created", "A payment request and its pay link were created.", _REQUEST)
register("payment_request.partially_paid", "Part of the payment request was paid.", _REQUEST)
register("payment_request.paid", "The payment request is settled in full.", _REQUEST)
register("payment_request.reopened", "A reversed payment re-opened a settled request.", _REQUEST)
register("payment_request.cancelled", "The payment request was cancelled.", _REQUEST)
register("payment_request.expired", "The pay link expired before being settled.", _REQUEST)
register("payment_request.link_sent", "An operator sent the pay link now by email or SMS.",
         _REQUEST + ("channel", "recipient", "sent_by"))

# payments
_PAYMENT = ("payment_id", "method", "status", "previous_status", "amount", "currency",
            "payment_request_id", "payment_request_reference", "invoice_ids", "installment_id",
            "attempt", "gateway_reference", "end_to_end_id", "reason_code", "reason_message",
            "will_retry") + _COMMON_CUSTOMER
register("payment.created", "A payment was initiated.", _PAYMENT)
register("payment.processing", "A payment was submitted to the bank or gateway.", _PAYMENT)
register("payment.succeeded", "A payment succeeded and was allocated.", _PAYMENT + ("allocations",))
register("payment.failed", "A payment failed; reason_code tells why, will_retry whether a retry follows.",
         _PAYMENT)
register("payment.cancelled", "A pending payment was cancelled.", _PAYMENT)
register("payment.reversed", "A succeeded payment was reversed (direct-debit return, chargeback).",
         _PAYMENT)
register("payment.retry_scheduled",
         "A failed collection will be tried again (retry policy); notify_debtor asks for a notice before it.",
         _PAYMENT + ("retry_attempt", "retry_date", "notify_debtor", "reason_meaning"))

# refunds
_REFUND = ("refund_id", "payment_id", "status", "previous_status", "amount", "currency", "reason",
           "method") + _COMMON_CUSTOMER
register("refund.initiated", "A refund was initiated.", _REFUND)
register("refund.succeeded", "A refund was paid out.", _REFUND)
register("refund.failed", "A refund failed.", _REFUND)

# mandates and cards
_MANDATE = ("mandate_id", "reference", "status", "previous_status", "iban_last4", "bic",
            "holder_name", "signed_at", "creditor_identifier") + _COMMON_CUSTOMER
register("mandate.created", "A SEPA direct-debit mandate was signed.", _MANDATE)
register("mandate.cancelled", "A mandate was cancelled.", _MANDATE + ("cancelled_by",))
register("mandate.expired", "A mandate expired (unused for 36 months).", _MANDATE)
register("mandate.amended", "A mandate's bank details changed.", _MANDATE + ("previous_iban_last4",))
_CARD = ("saved_card_id", "brand", "last4", "exp_month", "exp_year", "status") + _COMMON_CUSTOMER
register("card.saved", "A card was saved for later payments.", _CARD)
register("card.removed", "A saved card was removed.", _CARD)
register("card.expired", "A saved card passed its expiry date and can no longer be charged.", _CARD)
register("card.expiring", "A saved card used by an active plan expires soon.", _CARD + ("days_left",))

# instalment plans
_PLAN = ("instalment_plan_id", "status", "previous_status", "method", "total_amount", "currency",
         "installment_count", "schedule", "payment_request_id") + _COMMON_CUSTOMER
register("instalment_plan.created", "An instalment plan was set up.", _PLAN)
register("instalment_plan.completed", "Every instalment of the plan is paid.", _PLAN)
register("instalment_plan.suspended", "The plan was suspended (e.g. after failed retries).", _PLAN + ("reason",))
register("instalment_plan.resumed", "A suspended plan was resumed.", _PLAN)
register("instalment_plan.cancelled", "The plan was cancelled.", _PLAN)
_INSTALLMENT = ("installment_id", "instalment_plan_id", "sequence", "due_date", "status",
                "previous_status", "amount", "currency", "payment_id") + _COMMON_CUSTOMER
register("installment.paid", "An instalment was paid.", _INSTALLMENT)
register("installment.failed", "An instalment's collection failed.", _INSTALLMENT + ("reason_code",))
register("installment.uncollectable",
         "An instalment's collection failed for good (attempts used up or a reason code that never retries); "
         "alert_team asks rules to alert the finance team, pay_url is the pay link sent instead.",
         _INSTALLMENT + ("reason_code", "reason_meaning", "attempts", "suspended", "alert_team",
                         "pay_link_payment_request_id", "pay_url"))

# SEPA direct debits (issue 5)
register("direct_debit.submitted", "A pain.008 file was generated, validated and dropped for the bank.",
         ("sepa_file_id", "file_name", "message_id", "collection_date", "sequence_type", "scheme",
          "scheme_version", "transaction_count", "control_sum", "currency", "payment_ids"))
register("direct_debit.upcoming", "A direct debit will be collected soon (pre-notification to the debtor).",
         ("installment_id", "instalment_plan_id", "sequence", "attempt", "collection_date", "amount", "currency",
          "mandate_reference", "creditor_identifier", "iban_last4") + _COMMON_CUSTOMER)

# notifications and webhooks (issue 7)
_ENDPOINT = ("webhook_endpoint_id", "name", "url", "status", "previous_status", "reason")
register("webhook_endpoint.disabled",
         "A webhook endpoint was disabled (HTTP 410, too many failures in a row, or by hand).", _ENDPOINT)
register("webhook_endpoint.enabled", "A disabled webhook endpoint was enabled again.", _ENDPOINT)
register("webhook_endpoint.secret_rotated",
         "A webhook endpoint got a new signing secret; the previous one still signs until previous_valid_until.",
         ("webhook_endpoint_id", "name", "url", "previous_valid_until"))
register("delivery.dead_lettered",
         "A notification failed for good after its last attempt (or could not be sent at all).",
         ("delivery_id", "rule_id", "rule_name", "event_id", "event_type", "channel", "recipient", "attempts",
          "error"))

# virtual IBANs and reconciliation (issue 4)
_VIBAN = ("virtual_iban_id", "iban", "status", "previous_status", "payment_request_id") + _COMMON_CUSTOMER
register("virtual_iban.allocated", "A virtual IBAN was allocated to a customer or a debt.", _VIBAN)
register("virtual_iban.deactivated", "A virtual IBAN was deactivated (it is never allocated again).", _VIBAN)
_BANK_TX = ("bank_transaction_id", "bank_statement_id", "bank_account_id", "status", "previous_status",
            "amount", "currency", "booking_date", "value_date", "counterparty_name", "counterparty_iban",
            "credited_iban", "remittance_info", "end_to_end_id")
register("bank_statement.imported", "A bank statement was imported.",
         ("bank_statement_id", "bank_account_id", "format", "filename", "transaction_count",
          "duplicate_count", "warnings"))
register("bank_account.created",
         "A statement came for an account that was not configured: the account was created, to be reviewed.",
         ("bank_account_id", "iban", "account_id", "currency"))
register("transfer.received", "An incoming transfer was read from a bank statement.", _BANK_TX)
register("reconciliation.matched", "A bank transaction was matched and allocated.",
         _BANK_TX + ("rule", "customer_id", "payment_id", "allocated_amount", "written_off_amount"))
register("reconciliation.unmatched",
         "A bank transaction could not be matched automatically and waits in the review queue.",
         _BANK_TX + ("suggestion_count",))
register("reconciliation.match_reversed",
         "A match was undone in the review queue: its payment was reversed and the transaction is unmatched again.",
         _BANK_TX + ("payment_id",))
register("reconciliation.ignored", "A bank transaction was set aside as not concerning collections.", _BANK_TX)


# ERP connectors (issue 8)
_IMPORT = ("import_job_id", "status", "previous_status", "source", "filename", "dry_run", "mode", "rows_total",
           "rows_valid", "rows_rejected", "customers_created", "invoices_created", "invoices_updated",
           "invoices_unchanged", "payment_requests_created")
register("invoice_import.started", "An invoice import (file, drop folder or API call) started.", _IMPORT)
register("invoice_import.requeued",
         "An invoice import whose worker stopped (nothing of it was written) is pending again, to run again.",
         _IMPORT)
register("invoice_import.finished",
         "An invoice import finished: status says imported, partial (rows rejected), failed or previewed (dry run).",
         _IMPORT)
register("status_file.written", "A status file of changes was written to the outgoing drop folder.",
         ("export_job_id", "cursor", "path", "format", "from_event_id", "to_event_id", "rows"))

# reminders / dunning (issue 6)
# invoice_id, or payment_request_id for a request without invoices (invoice_external_ref is then its reference)
_REMINDER = ("reminder_id", "scenario_id", "step_id", "step_offset_days", "step_date", "channel", "status",
             "invoice_id", "payment_request_id", "invoice_external_ref", "amount_due", "currency",
             "due_date") + _COMMON_CUSTOMER
register("reminder.sent", "A reminder step went out (email and/or SMS) with the amount due at that moment.",
         _REMINDER + ("amount_shown", "email", "phone", "channels", "subject"))
register("reminder.skipped",
         "A reminder step was not sent: reason is paid, cancelled, written_off, superseded (a later step was "
         "due), no_contact, no_template or template_error.", _REMINDER + ("reason", "reason_text"))
register("reminder.failed",
         "A reminder could not be sent (refused, or interrupted while sending: outcome unknown).",
         _REMINDER + ("error", "attempts"))
register("dunning.escalated", "The last step of a scenario passed unpaid: action is stop, alert_team or "
         "litigation.", ("escalation_id", "action", "scenario_id", "invoice_id", "payment_request_id",
                         "invoice_external_ref", "status", "amount_total", "amount_paid", "amount_due", "currency",
                         "due_date") + _COMMON_CUSTOMER)
_PAUSE = ("pause_id", "kind", "status", "until", "invoice_id", "invoice_external_ref", "note") + _COMMON_CUSTOMER
register("dunning.paused", "Reminders were paused (dispute, promise to pay) for an invoice or a customer.", _PAUSE)
register("dunning.resumed", "A reminder pause ended; the scenario continues from the step due by then.", _PAUSE)


def is_known(name: str) -> bool:
    return name in CATALOG


def render_markdown() -> str:
    """docs/events.md, generated from this catalog (`manage.py events_doc`); a test keeps them equal."""
    lines = [
        "# Event catalog",
        "",
        "Every change of state writes one event into the outbox (`notifications.Event`) in the same",
        "transaction as the change. Consumers (notification rules, webhooks, JSON files, the API feed",
        "`GET /api/v1/events/`) receive the event as:",
        "",
        "```json",
        '{"id": 1234, "uuid": "…", "type": "payment.succeeded", "occurred_at": "2026-11-23T09:15:02Z",',
        ' "creditor_id": 1, "payload": {"payment_id": 42, "amount": "120.50", "currency": "EUR", "…": "…"}}',
        "```",
        "",
        "Amounts are decimal strings with their `currency`; dates are ISO 8601; times are UTC.",
        "`previous_status` is the status before the change (null on creation). Customer fields",
        "(`customer_id`, `customer_external_ref`, `customer_name`, `customer_email`, `customer_phone`,",
        "`customer_locale`, `customer_tags`) are present on every event about a customer's document.",
        "",
        "This file is generated from `notifications/catalog.py` by `python manage.py events_doc`.",
        "",
    ]
    groups: dict[str, list[EventType]] = {}
    for event_type in CATALOG.values():
        groups.setdefault(event_type.name.split(".")[0], []).append(event_type)
    for group, types in groups.items():
        lines += [f"## {group}", "", "| event | when | payload fields |", "|---|---|---|"]
        for t in types:
            fields = ", ".join(f"`{f}`" for f in t.fields if f not in _COMMON_CUSTOMER)
            has_customer = any(f in _COMMON_CUSTOMER for f in t.fields)
            if has_customer:
                fields += (", " if fields else "") + "customer fields"
            lines.append(f"| `{t.name}` | {t.description} | {fields} |")
        lines.append("")
    return "\n".join(lines)
