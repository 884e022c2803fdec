"""Matching bank transactions to customers, debts and invoices, then allocating them.

Set-based: transactions are taken in chunks, and each rule looks up the whole chunk's
candidates in one query per kind of key (virtual IBANs, references, end-to-end ids,
amounts), never one query per transaction. Rules run in their configured order; the first
that finds one unambiguous target wins. The amount and name rule only ever suggests.

Re-running matching is harmless: only new and unmatched transactions are looked at (claimed
with SKIP LOCKED), and suggestions are upserted.
"""
from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Replace, Upper
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from rapidfuzz.utils import default_process

from collections_app.bulk import update_from_values
from collections_app.errors import DomainError
from collections_app.models import Invoice, Mandate, Payment, PaymentMethod, PaymentRequest, Refund
from collections_app.services import payment_record_failure, payment_reverse, refund_record_success
from collections_app.virtual_ibans.models import VirtualIBAN
from notifications.services import events_emit_bulk
from reconciliation import references
from reconciliation.allocation import Target, allocate, allocate_many
from reconciliation.events import transaction_event, transaction_event_row
from reconciliation.models import BankTransaction, MatchingRule, Suggestion

CHUNK = 5000
OPEN = list(Invoice.OPEN_STATUSES)
DEFAULT_RULES = [
    (MatchingRule.Kind.VIRTUAL_IBAN, "Virtual IBAN", 10),
    (MatchingRule.Kind.REFERENCE, "Reference", 20),
    (MatchingRule.Kind.END_TO_END, "End-to-end id", 30),
    (MatchingRule.Kind.AMOUNT_NAME, "Amount and name (suggestion)", 40),
]


def matching_rules_ensure() -> list[MatchingRule]:
    """The four rules exist (created once, then edited by finance staff)."""
    for kind, name, position in DEFAULT_RULES:
        MatchingRule.objects.get_or_create(kind=kind, defaults={"name": name, "position": position})
    return list(MatchingRule.objects.filter(is_active=True).order_by("position", "id"))


@dataclass
class _Candidate:
    target: Target | None = None
    ambiguous: bool = False
    # invoice id -> (score, why, customer id, whether it rests on the amount due)
    suggestions: dict[int, tuple[int, str, int, bool]] = field(default_factory=dict)


def transactions_match(*, statement_ids: list[int] | None = None, transaction_ids: list[int] | None = None,
                       today: dt.date | None = None, bulk: bool = True, only_new: bool = False,
                       progress: Callable[[float], None] | None = None) -> dict[str, int]:
    """Match new (and still unmatched) transactions; returns counts per outcome.

    bulk (PostgreSQL only): allocations, events and review-queue updates of a chunk written
    set-based (collections_app.bulk); False: one service call per transaction, the reference
    the bulk path is tested against.
    """
    bulk = bulk and connection.vendor == "postgresql"
    rules = matching_rules_ensure()
    statuses = [BankTransaction.Status.NEW] if only_new else [BankTransaction.Status.NEW,
                                                               BankTransaction.Status.UNMATCHED]
    base = BankTransaction.objects.filter(status__in=statuses)
    if statement_ids is not None:
        base = base.filter(statement_id__in=statement_ids)
    if transaction_ids is not None:
        base = base.filter(pk__in=transaction_ids)
    ids = list(base.order_by("pk").values_list("pk", flat=True))
    totals: dict[str, int] = defaultdict(int)
    for start in range(0, len(ids), CHUNK):
        with transaction.atomic():
            chunk = list(BankTransaction.objects.select_for_update(skip_locked=True, of=("self",))
                         .select_related("bank_account")
                         .filter(pk__in=ids[start:start + CHUNK], status__in=statuses))
            for outcome, count in _match_chunk(chunk, rules, bulk=bulk).items():
                totals[outcome] += count
        if progress is not None:
            progress(min((start + CHUNK) / len(ids), 1.0))
    return dict(totals)


def _match_chunk(chunk: list[BankTransaction], rules: list[MatchingRule], *, bulk: bool = False) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    returns = [t for t in chunk if t.is_reversal]
    debits = [t for t in chunk if not t.is_reversal and t.direction == BankTransaction.Direction.DEBIT]
    credits = [t for t in chunk if not t.is_reversal and t.direction == BankTransaction.Direction.CREDIT]
    counts.update(_process_returns(returns))
    counts.update(_process_debits(debits))
    if not credits:
        return counts
    received = [tx for tx in credits if tx.status == BankTransaction.Status.NEW]
    if bulk:
        events_emit_bulk([transaction_event_row(tx, "transfer.received") for tx in received])
    else:
        for tx in received:
            transaction_event(tx, "transfer.received")
    found: dict[int, _Candidate] = {tx.pk: _Candidate() for tx in credits}
    winners: dict[int, MatchingRule] = {}
    for rule in rules:
        pending = [tx for tx in credits if found[tx.pk].target is None]
        if not pending:
            break
        if rule.kind == MatchingRule.Kind.VIRTUAL_IBAN:
            _rule_virtual_iban(pending, found)
        elif rule.kind == MatchingRule.Kind.REFERENCE:
            _rule_reference(pending, found)
        elif rule.kind == MatchingRule.Kind.END_TO_END:
            _rule_end_to_end(pending, found)
        elif rule.kind == MatchingRule.Kind.AMOUNT_NAME:
            _rule_amount_name(pending, found, rule)
        for tx in pending:
            if found[tx.pk].target is not None and tx.pk not in winners:
                winners[tx.pk] = rule
    matched_per_rule: dict[int, int] = defaultdict(int)
    review = []
    targets = [(tx, found[tx.pk].target, winners[tx.pk]) for tx in credits if found[tx.pk].target is not None]
    if bulk:
        allocated = allocate_many(targets)
    else:
        allocated = set()
        for tx, target, rule in targets:
            try:
                with transaction.atomic():
                    allocate(tx, target, rule=rule)
                allocated.add(tx.pk)
            except DomainError:
                pass
    for tx in credits:
        if tx.pk in allocated:
            matched_per_rule[winners[tx.pk].pk] += 1
            counts["matched"] += 1
        else:
            review.append(tx)
    # Suggestions were looked up before this chunk's allocations: keep only those still true, so
    # that running the matching again finds exactly the same ones.
    suggested = {pk for tx in review for pk in found[tx.pk].suggestions}
    still_due = dict(Invoice.objects.filter(pk__in=suggested, status__in=OPEN)
                     .annotate(due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
                     .values_list("pk", "due")) if suggested else {}
    for tx in review:
        candidate = found[tx.pk]
        candidate.suggestions = {
            pk: value for pk, value in candidate.suggestions.items()
            if pk in still_due and (value[3] is False or still_due[pk] == tx.amount)}
        if not bulk:
            _to_review(tx, candidate)
        counts["unmatched"] += 1
    if bulk:
        _to_review_bulk([(tx, found[tx.pk]) for tx in review])
    for rule_id, count in matched_per_rule.items():
        MatchingRule.objects.filter(pk=rule_id).update(matched_count=F("matched_count") + count)
    return counts


# --------------------------------------------------------------------------- rules


def _rule_virtual_iban(pending: list[BankTransaction], found: dict[int, _Candidate]) -> None:
    ibans = {tx.credited_iban for tx in pending if tx.credited_iban}
    if not ibans:
        return
    by_iban = {v.iban: v for v in VirtualIBAN.objects.filter(iban__in=ibans)}
    for tx in pending:
        virtual = by_iban.get(tx.credited_iban)
        if virtual is not None and (tx.creditor_id in (None, virtual.creditor_id)):
            found[tx.pk].target = Target(customer_id=virtual.customer_id, payment_request_id=virtual.payment_request_id,
                                         reason=f"virtual IBAN {virtual.iban}")


def _rule_reference(pending: list[BankTransaction], found: dict[int, _Candidate]) -> None:
    per_tx, short = {}, {}
    for tx in pending:
        per_tx[tx.pk], short[tx.pk] = references.candidate_sets(*_texts(tx))
    all_candidates = set().union(*per_tx.values()) if per_tx else set()
    all_short = all_candidates.union(*short.values()) if short else set()
    creditor_ids = {tx.creditor_id for tx in pending if tx.creditor_id}
    unscoped = any(tx.creditor_id is None for tx in pending)
    requests: dict[str, list[dict]] = defaultdict(list)
    invoices: dict[str, list[dict]] = defaultdict(list)
    scope = Q() if unscoped else Q(creditor_id__in=creditor_ids)
    fields = ("pk", "creditor_id", "customer_id", "reference", "short_reference", "status")
    if all_short:
        for row in PaymentRequest.objects.filter(scope, short_reference__in=all_short).values(*fields):
            requests[row["short_reference"]].append(row)
    if all_candidates:
        for row in (PaymentRequest.objects.annotate(canon=canonical_sql("reference"))
                    .filter(scope, canon__in=all_candidates).values(*fields, "canon")):
            if row not in requests[row["canon"]]:
                requests[row["canon"]].append(row)
        for row in (Invoice.objects.annotate(canon=canonical_sql("external_ref"),
                                             due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
                    .filter(scope, canon__in=all_candidates)
                    .values("pk", "creditor_id", "customer_id", "external_ref", "status", "canon", "due")):
            invoices[row["canon"]].append(row)
    unresolved = []
    quoted: dict[int, list[str]] = {}  # the invoice numbers a transfer was matched on
    for tx in pending:
        tokens = per_tx[tx.pk]
        hit_requests = {r["pk"]: r for t in tokens | short[tx.pk] for r in requests.get(t, ())
                        if _same_creditor(tx, r)}
        hit_invoices = {i["pk"]: i for t in tokens for i in invoices.get(t, ()) if _same_creditor(tx, i)}
        hit_invoices = _without_bare_numbers(tx, hit_invoices, found[tx.pk])
        target = _reference_target(tx, hit_requests, hit_invoices, found[tx.pk])
        if target is not None:
            found[tx.pk].target = target
            if target.invoice_ids and target.payment_request_id is None:
                quoted[tx.pk] = [hit_invoices[pk]["external_ref"] for pk in target.invoice_ids]
        elif not found[tx.pk].ambiguous and (tx.remittance_info or tx.structured_reference or tx.end_to_end_id):
            unresolved.append(tx)
    if quoted:
        _reference_continuations([tx for tx in pending if tx.pk in quoted], quoted, per_tx, found)
    if unresolved:
        _reference_typos(unresolved, per_tx, found)


# Words that say a number is an invoice's, in the languages payers write in.
INVOICE_WORDS_RE = re.compile(r"FAC|FATT|INV|RECHN|RG\W|BILL|N°|NO\.|NR\.|NUM|REF|PIECE|DOC", re.IGNORECASE)


def _without_bare_numbers(tx: BankTransaction, hits: dict[int, dict], candidate: _Candidate) -> dict[int, dict]:
    """Invoices numbered with digits only are found by any number in the text: a postcode or a
    street number too ("SARL DUPONT 12345 AVENUE DE PARIS"). Such a hit stays automatic when the
    text says it is an invoice's ("facture", "Rechnung", "n°", "ref"…), when the bank gives it as
    the structured reference, or when the invoices found are exactly the amount; otherwise it is
    a suggestion."""
    numeric = {pk for pk, row in hits.items() if row["canon"].isdigit()}
    if not numeric:
        return hits
    structured = {references.canonical(t) for t in (tx.structured_reference, tx.end_to_end_id) if t}
    open_due = sum((row["due"] for row in hits.values() if row["status"] in OPEN), Decimal(0))
    if INVOICE_WORDS_RE.search(tx.remittance_info or "") or open_due == tx.amount:
        return hits
    kept = {pk: row for pk, row in hits.items() if pk not in numeric or row["canon"] in structured}
    for pk in numeric - set(kept):
        row = hits[pk]
        if row["status"] in OPEN:
            _suggest(candidate, pk, (70, f"number {row['external_ref']} in the text, not said to be an invoice's",
                                     row["customer_id"], False))
    return kept


def _texts(tx: BankTransaction) -> tuple[str, str, str]:
    return tx.remittance_info, tx.structured_reference, tx.end_to_end_id


def canonical_sql(field_name: str):
    """UPPER(REPLACE(...)) of a reference: the SQL twin of references.canonical, which the
    expression indexes of migration 0002 serve."""
    expression = F(field_name)
    for char in references.CANONICAL_SQL_CHARS:
        expression = Replace(expression, Value(char), Value(""))
    return Upper(expression)


def _same_creditor(tx: BankTransaction, row: dict) -> bool:
    return tx.creditor_id is None or tx.creditor_id == row["creditor_id"]


def _reference_target(tx, hit_requests: dict, hit_invoices: dict, candidate: _Candidate) -> Target | None:
    if len(hit_requests) == 1:
        request = next(iter(hit_requests.values()))
        return Target(customer_id=request["customer_id"], payment_request_id=request["pk"],
                      reason=f"payment request {request['reference']}")
    open_invoices = {pk: i for pk, i in hit_invoices.items() if i["status"] in OPEN}
    customers = {i["customer_id"] for i in open_invoices.values()}
    if open_invoices and len(customers) == 1:
        return Target(customer_id=customers.pop(), invoice_ids=sorted(open_invoices),
                      reason="invoice " + ", ".join(sorted(i["external_ref"] for i in open_invoices.values())))
    if len(hit_requests) > 1 or len(customers) > 1:
        candidate.ambiguous = True
        for pk, inv in open_invoices.items():
            candidate.suggestions[pk] = (90, f"reference {inv['external_ref']} (several possible)", inv["customer_id"],
                                         False)
    return None


CONTINUATION_RE = re.compile(r"^(.*?)(\d+)$")


def _reference_continuations(txs: list[BankTransaction], quoted_refs: dict[int, list[str]],
                             per_tx: dict[int, set[str]], found: dict[int, _Candidate]) -> None:
    """"Fact. 2026-0457 et 0458", "INV 0001234 and 0001235": numbers quoted after an invoice
    number stand for the same customer's invoices numbered alike (the number's end replaced).
    Only when they and the quoted invoices are together exactly what was transferred."""
    wanted: dict[int, set[str]] = {}
    for tx in txs:
        numbers = {t for t in per_tx[tx.pk] if t.isdigit() and len(t) >= 3}
        expanded = set()
        for ref in quoted_refs[tx.pk]:
            canon = references.canonical(ref)
            parts = CONTINUATION_RE.match(canon)
            if parts is None:
                continue
            prefix, run = parts.groups()
            # not the pieces of the quoted number itself ("FA 2026 00123")
            expanded.update(prefix + run[:len(run) - len(n)] + n for n in numbers
                            if len(n) <= len(run) and n not in canon)
        if expanded:
            wanted[tx.pk] = expanded
    if not wanted:
        return
    customers = {found[pk].target.customer_id for pk in wanted}
    quoted = {i for pk in wanted for i in found[pk].target.invoice_ids}
    rows = (Invoice.objects.annotate(canon=canonical_sql("external_ref"),
                                     due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
            .filter(Q(pk__in=quoted) | Q(customer_id__in=customers, status__in=OPEN,
                                         canon__in=set().union(*wanted.values())))
            .values("pk", "customer_id", "external_ref", "canon", "due", "currency"))
    by_pk = {row["pk"]: row for row in rows}
    for tx in txs:
        if tx.pk not in wanted:
            continue
        target = found[tx.pk].target
        extra = [row for row in by_pk.values() if row["pk"] not in target.invoice_ids
                 and row["customer_id"] == target.customer_id and row["canon"] in wanted[tx.pk]]
        chosen = [by_pk[pk] for pk in target.invoice_ids if pk in by_pk] + extra
        if (extra and len(chosen) == len(target.invoice_ids) + len(extra)
                and all(row["currency"] == tx.currency for row in chosen)
                and sum(row["due"] for row in chosen) == tx.amount):
            refs = sorted(row["external_ref"] for row in chosen)
            found[tx.pk].target = Target(customer_id=target.customer_id, invoice_ids=sorted(r["pk"] for r in chosen),
                                         reason="invoice " + ", ".join(refs))


def _open_invoices_by_amount(txs: list[BankTransaction]) -> dict[tuple, list[dict]]:
    """Open invoices whose amount due equals one of the transactions' amounts, one query."""
    amounts = {tx.amount for tx in txs}
    creditor_ids = {tx.creditor_id for tx in txs if tx.creditor_id}
    qs = (Invoice.objects.filter(status__in=OPEN)
          .annotate(due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
          .filter(due__in=amounts))
    if all(tx.creditor_id for tx in txs):
        qs = qs.filter(creditor_id__in=creditor_ids)
    by_amount: dict[tuple, list[dict]] = defaultdict(list)
    for row in qs.values("pk", "creditor_id", "customer_id", "external_ref", "due", "currency", "due_date",
                         "customer__name", "customer__company_name"):
        by_amount[(row["due"], row["currency"])].append(row)
    return by_amount


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _reference_typos(txs: list[BankTransaction], per_tx: dict[int, set[str]], found: dict[int, _Candidate]) -> None:
    """A reference one typing mistake away from an open invoice of exactly the transferred
    amount, its number without its letters ("facture 2024-0012" for FA-2024-0012) or without
    its leading zeros ("FA 2024 12"), or glued after letters ("FACT20240012" for 2024-0012)."""
    by_amount = _open_invoices_by_amount(txs)
    for tx in txs:
        rows = [r for r in by_amount.get((tx.amount, tx.currency), ()) if _same_creditor(tx, r)]
        if not rows:
            continue
        tokens = {references.canonical(t) for t in per_tx[tx.pk]}
        numbers = {t for t in tokens if t.isdigit()}
        close = [r for r in rows if len(r["external_ref"]) >= 5 and (
            any(Levenshtein.distance(references.canonical(r["external_ref"]), t, score_cutoff=1) <= 1 for t in tokens)
            or (len(_digits(r["external_ref"])) >= 4 and _digits(r["external_ref"]) in numbers))]
        if not close:
            loose = references.loose_candidates(*_texts(tx))
            close = [r for r in rows if len(r["external_ref"]) >= 5 and len(_digits(r["external_ref"])) >= 3
                     and not loose.isdisjoint((references.canonical(r["external_ref"]),
                                               references.zero_insensitive(r["external_ref"])))]
        if len(close) == 1:
            row = close[0]
            found[tx.pk].target = Target(customer_id=row["customer_id"], invoice_ids=[row["pk"]],
                                         reason=f"invoice {row['external_ref']} (reference with a typo)")


def _rule_end_to_end(pending: list[BankTransaction], found: dict[int, _Candidate]) -> None:
    """A credit carrying the end-to-end id of one of our own direct debits settles that payment."""
    e2e = {tx.end_to_end_id for tx in pending if tx.end_to_end_id}
    if not e2e:
        return
    payments: dict[str, list[Payment]] = defaultdict(list)
    for payment in Payment.objects.filter(end_to_end_id__in=e2e, method=PaymentMethod.SEPA_DD,
                                          status__in=[Payment.Status.PENDING, Payment.Status.PROCESSING]):
        payments[payment.end_to_end_id].append(payment)
    for tx in pending:
        hits = [p for p in payments.get(tx.end_to_end_id, ()) if tx.creditor_id in (None, p.creditor_id)]
        if len(hits) == 1:
            found[tx.pk].target = Target(customer_id=hits[0].customer_id, payment_id=hits[0].pk,
                                         reason=f"end-to-end id {tx.end_to_end_id}")


def _name(row: dict) -> str:
    return " ".join(x for x in (row.get("customer__name"), row.get("customer__company_name")) if x)


def _rule_amount_name(pending: list[BankTransaction], found: dict[int, _Candidate], rule: MatchingRule) -> None:
    """Suggestions only: the same amount, a similar debtor name, a due date not too far; and
    the open invoices of the customer who paid from that account before."""
    _known_payer(pending, found)
    txs = [tx for tx in pending if tx.counterparty_name]
    if not txs:
        return
    by_amount = _open_invoices_by_amount(txs)
    window = dt.timedelta(days=rule.date_window_days)
    for tx in txs:
        payer = default_process(tx.counterparty_name)
        for row in by_amount.get((tx.amount, tx.currency), ()):
            if not _same_creditor(tx, row) or abs(row["due_date"] - tx.booking_date) > window:
                continue
            score = int(fuzz.token_set_ratio(payer, default_process(_name(row))))
            if score >= rule.min_score:
                _suggest(found[tx.pk], row["pk"],
                         (score, f"amount {tx.amount} and name {_name(row)} ({score}%)", row["customer_id"], True))


KNOWN_PAYER_OLDEST = 3


def _suggest(candidate: _Candidate, invoice_id: int, value: tuple[int, str, int, bool]) -> None:
    if invoice_id not in candidate.suggestions or candidate.suggestions[invoice_id][0] < value[0]:
        candidate.suggestions[invoice_id] = value


def _known_payer(pending: list[BankTransaction], found: dict[int, _Candidate]) -> None:
    """The payer's account is one a customer paid from before (a transfer matched to them) or
    signed a mandate on: their invoice of exactly that amount is a strong suggestion, else their
    oldest open invoices are. Only suggestions: an account can be shared (a group's treasury, a
    parent paying for a child), and someone may pay another's debt."""
    txs = [tx for tx in pending if tx.counterparty_iban]
    if not txs:
        return
    ibans = {tx.counterparty_iban for tx in txs}
    owners: dict[str, set[tuple[int, int]]] = defaultdict(set)  # iban -> {(creditor, customer)}
    for iban, creditor_id, customer_id in Mandate.objects.filter(iban__in=ibans).values_list(
            "iban", "creditor_id", "customer_id"):
        owners[iban].add((creditor_id, customer_id))
    for iban, creditor_id, customer_id in (
            BankTransaction.objects.filter(counterparty_iban__in=ibans, customer__isnull=False,
                                           status=BankTransaction.Status.MATCHED)
            .order_by().values_list("counterparty_iban", "customer__creditor_id", "customer_id").distinct()):
        owners[iban].add((creditor_id, customer_id))
    if not owners:
        return
    customers = {customer for pairs in owners.values() for _creditor, customer in pairs}
    invoices: dict[int, list[dict]] = defaultdict(list)
    for row in (Invoice.objects.filter(customer_id__in=customers, status__in=OPEN)
                .annotate(due=F("amount_total") - F("amount_paid") - F("amount_written_off"))
                .order_by("due_date", "pk")
                .values("pk", "customer_id", "external_ref", "due", "currency", "customer__name")):
        invoices[row["customer_id"]].append(row)
    for tx in txs:
        for creditor_id, customer_id in owners.get(tx.counterparty_iban, ()):
            if tx.creditor_id not in (None, creditor_id):
                continue
            rows = [r for r in invoices.get(customer_id, ()) if r["currency"] == tx.currency]
            exact = [r for r in rows if r["due"] == tx.amount]
            account = f"…{tx.counterparty_iban[-4:]}"
            for row in exact:
                _suggest(found[tx.pk], row["pk"], (
                    95, f"amount {tx.amount} from account {account} of {row['customer__name']}", customer_id, True))
            if not exact:
                for row in rows[:KNOWN_PAYER_OLDEST]:
                    _suggest(found[tx.pk], row["pk"], (
                        50, f"account {account} of {row['customer__name']}, oldest open invoice", customer_id, False))


# --------------------------------------------------------------------------- outcomes


def _to_review(tx: BankTransaction, candidate: _Candidate) -> None:
    wanted = candidate.suggestions
    existing = {s.invoice_id: s for s in tx.suggestions.all()}
    stale = [s.pk for pk, s in existing.items() if pk not in wanted]
    if stale:
        Suggestion.objects.filter(pk__in=stale).delete()
    new = [Suggestion(transaction=tx, invoice_id=pk, customer_id=customer_id, score=score, reason=reason[:255])
           for pk, (score, reason, customer_id, _amount) in wanted.items() if pk not in existing]
    if new:
        Suggestion.objects.bulk_create(new, ignore_conflicts=True)
    if tx.status != BankTransaction.Status.UNMATCHED:
        previous = tx.status
        tx.status = BankTransaction.Status.UNMATCHED
        tx.save(update_fields=["status"])
        transaction_event(tx, "reconciliation.unmatched", previous, suggestion_count=len(wanted))


def _to_review_bulk(items: list[tuple[BankTransaction, _Candidate]]) -> None:
    """_to_review for many transactions: the same rows and events, a few statements."""
    if not items:
        return
    existing: dict[int, dict[int, Suggestion]] = defaultdict(dict)
    for suggestion in Suggestion.objects.filter(transaction__in=[tx.pk for tx, _c in items]):
        existing[suggestion.transaction_id][suggestion.invoice_id] = suggestion
    stale, new, changed, events = [], [], [], []
    for tx, candidate in items:
        wanted = candidate.suggestions
        have = existing.get(tx.pk, {})
        stale.extend(s.pk for pk, s in have.items() if pk not in wanted)
        new.extend(Suggestion(transaction=tx, invoice_id=pk, customer_id=customer_id, score=score,
                              reason=reason[:255])
                   for pk, (score, reason, customer_id, _amount) in wanted.items() if pk not in have)
        if tx.status != BankTransaction.Status.UNMATCHED:
            previous = tx.status
            tx.status = BankTransaction.Status.UNMATCHED
            changed.append(tx)
            events.append(transaction_event_row(tx, "reconciliation.unmatched", previous,
                                                suggestion_count=len(wanted)))
    if stale:
        Suggestion.objects.filter(pk__in=stale).delete()
    if new:
        Suggestion.objects.bulk_create(new, ignore_conflicts=True, batch_size=5000)
    update_from_values(BankTransaction, ["status"], changed)
    events_emit_bulk(events)


def _process_returns(txs: list[BankTransaction]) -> dict[str, int]:
    """Direct-debit returns and reversals: the payment they name fails (or is reversed) with the code."""
    counts: dict[str, int] = defaultdict(int)
    keys = {tx.end_to_end_id for tx in txs if tx.end_to_end_id}
    payments: dict[str, list[Payment]] = defaultdict(list)
    if keys:
        for payment in Payment.objects.filter(end_to_end_id__in=keys).order_by("-pk"):
            payments[payment.end_to_end_id].append(payment)
    returnable = (Payment.Status.SUCCEEDED, Payment.Status.PENDING, Payment.Status.PROCESSING)
    # Some banks drop the end-to-end id from returns but keep the mandate (UMR): that mandate's
    # one debit of that amount still in play is the one returned.
    by_mandate: dict[tuple[str, Decimal], list[Payment]] = defaultdict(list)
    mandate_keys = {tx.mandate_reference for tx in txs if tx.mandate_reference and not payments.get(tx.end_to_end_id)}
    if mandate_keys:
        for payment in (Payment.objects.filter(method=PaymentMethod.SEPA_DD, mandate__reference__in=mandate_keys,
                                               status__in=returnable)
                        .select_related("mandate").order_by("-pk")):
            by_mandate[(payment.mandate.reference, payment.amount)].append(payment)
    for tx in txs:
        hits = [p for p in payments.get(tx.end_to_end_id, ())
                if tx.creditor_id in (None, p.creditor_id) and p.status in returnable]
        if not hits and not payments.get(tx.end_to_end_id):
            hits = [p for p in by_mandate.get((tx.mandate_reference, tx.amount), ())
                    if tx.creditor_id in (None, p.creditor_id)]
        if len(hits) != 1:
            _to_review(tx, _Candidate())
            counts["unmatched"] += 1
            continue
        payment = hits[0]
        code = tx.reason_code or "RETURN"
        message = f"returned by the bank ({tx.bank_transaction_code or 'return'}) on {tx.booking_date}"
        with transaction.atomic():
            if payment.status == Payment.Status.SUCCEEDED:
                payment_reverse(payment=payment, reason_code=code, reason_message=message)
            else:
                payment_record_failure(payment=payment, reason_code=code, reason_message=message)
            previous = tx.status
            tx.status = BankTransaction.Status.RETURN
            tx.returned_payment = payment
            tx.customer_id = payment.customer_id
            tx.save(update_fields=["status", "returned_payment", "customer"])
            transaction_event(tx, "reconciliation.matched", previous, rule="return", customer_id=payment.customer_id,
                              payment_id=payment.pk, allocated_amount=Decimal("0.00"),
                              written_off_amount=Decimal("0.00"))
        counts["returns"] += 1
    return counts


def _process_debits(txs: list[BankTransaction]) -> dict[str, int]:
    """Outgoing movements: our refunds are confirmed by them; the rest is not about collections."""
    counts: dict[str, int] = defaultdict(int)
    keys = {k for tx in txs for k in (tx.end_to_end_id, tx.transaction_id) if k}
    refunds = {r.gateway_reference: r for r in Refund.objects.filter(gateway_reference__in=keys,
                                                                       status=Refund.Status.PENDING)} if keys else {}
    for tx in txs:
        refund = refunds.get(tx.end_to_end_id) or refunds.get(tx.transaction_id)
        if refund is not None and refund.amount != tx.amount:
            refund = None
        previous = tx.status
        with transaction.atomic():
            if refund is not None:
                refund_record_success(refund=refund, gateway_reference=refund.gateway_reference)
                tx.status = BankTransaction.Status.MATCHED
                tx.customer_id = refund.payment.customer_id
                tx.save(update_fields=["status", "customer"])
                transaction_event(tx, "reconciliation.matched", previous, rule="refund",
                                  customer_id=refund.payment.customer_id, payment_id=refund.payment_id,
                                  allocated_amount=tx.amount, written_off_amount=Decimal("0.00"))
                counts["refunds"] += 1
            else:
                tx.status = BankTransaction.Status.IGNORED
                tx.save(update_fields=["status"])
                transaction_event(tx, "reconciliation.ignored", previous)
                counts["ignored"] += 1
    return counts


