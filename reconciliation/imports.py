"""Statement import: detect, parse (streaming), store idempotently, then match.

Everything read from one file is stored in one transaction: a file that cannot be read to
the end leaves nothing behind. Transactions are inserted in batches with ON CONFLICT DO
NOTHING on their natural key, so a file imported twice, an overlapping statement or two
imports racing each other never create a duplicate.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from collections.abc import Callable
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from collections_app.dropfolders import take_all
from collections_app.errors import DomainError, ValidationFailed
from collections_app.models import Creditor
from collections_app.money import round_money
from collections_app.sepa.services import StatusReportResult, status_report_import
from collections_app.virtual_ibans.models import VirtualIBAN
from notifications.services import event_emit
from reconciliation import archives, parsers
from reconciliation.models import BankAccount, BankStatement, BankTransaction
from reconciliation.parsers import Entry, StatementHeader, StatementParseError, UnsupportedFormat

logger = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
INSERT_BATCH = 5000


def max_file_bytes() -> int:
    return getattr(settings, "RECONCILIATION_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


@dataclass
class ImportResult:
    format: str
    filename: str = ""
    statement_ids: list[int] = field(default_factory=list)
    created: int = 0
    duplicates: int = 0
    already_imported: bool = False
    warnings: list[str] = field(default_factory=list)
    matching: dict[str, int] = field(default_factory=dict)
    other: Any = None  # what another importer returned (pain.002 status reports)

    def as_dict(self) -> dict[str, Any]:
        return {"format": self.format, "filename": self.filename, "statement_ids": self.statement_ids,
                "created": self.created, "duplicates": self.duplicates, "already_imported": self.already_imported,
                "warnings": self.warnings, "matching": self.matching,
                "status_report": self.other.as_dict() if self.other is not None else None}


def _open(source: bytes | str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    if isinstance(source, bytes | bytearray):
        return io.BytesIO(source), True
    if isinstance(source, str | Path):
        return open(source, "rb"), True  # noqa: SIM115 - closed by the caller
    if not source.seekable():
        raise ValidationFailed(_("The file must be seekable."), field="file")
    return source, False


def _size(stream: IO[bytes]) -> int:
    # By seeking, not fstat(fileno()): asking an archive member's spooled file for its fileno
    # would write it to disk.
    position = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return size


def _sha256(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    stream.seek(0)
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def status_report_dispatch(*, content: bytes, filename: str) -> StatusReportResult:
    """pain.002 status reports come through the same doors as statements (upload, API, drop
    folder, import_statement) but belong to the SEPA direct-debit module, which applies them."""
    return status_report_import(content=content, filename=filename)


Progress = Callable[[str, float], None]  # phase ("reading", "matching"), fraction 0..1


def statement_import(*, source: bytes | str | Path | IO[bytes], filename: str = "",
                     origin: str = BankStatement.Source.UPLOAD, user: Any = None, match: bool = True,
                     progress: Progress | None = None, inline_match_max: int | None = None) -> ImportResult:
    """Import one statement file (any supported format); returns what was created.
    Raises StatementParseError / UnsupportedFormat / ValidationFailed with a clear message.

    inline_match_max: above that many new transactions, matching is left to a background task
    (result.matching == {"queued": n}): a web request answers once the file is stored."""
    stream, owned = _open(source)
    if not filename and isinstance(source, str | Path):
        filename = Path(source).name
    try:
        size = _size(stream)
        if size == 0:
            raise StatementParseError("the file is empty")
        if size > max_file_bytes():
            raise ValidationFailed(_("The file is too large (%(size)d bytes, at most %(max)d).")
                                   % {"size": size, "max": max_file_bytes()}, field="file", code="file_too_large")
        stream.seek(0)
        head = stream.read(parsers.HEAD_BYTES)
        stream.seek(0)
        if archives.kind(head):
            return _import_archive(stream, head=head, filename=filename, origin=origin, user=user, match=match,
                                   progress=progress, inline_match_max=inline_match_max)
        fmt = parsers.detect(head)
        if fmt == "pain.002":
            return ImportResult(format=fmt, filename=filename,
                                other=status_report_dispatch(content=stream.read(), filename=filename))
        sha = _sha256(stream)
        existing = list(BankStatement.objects.filter(file_sha256=sha).order_by("index_in_file"))
        if existing:
            return _already_imported(fmt, filename, existing, match=match, inline_match_max=inline_match_max)
        try:
            result = _store(stream, fmt=fmt, filename=filename, sha=sha, origin=origin, user=user,
                            progress=_reading_progress(stream, size, progress))
        except IntegrityError:
            # The same file imported at the same moment by someone else: theirs won.
            existing = list(BankStatement.objects.filter(file_sha256=sha).order_by("index_in_file"))
            if not existing:
                raise
            return _already_imported(fmt, filename, existing, match=match, inline_match_max=inline_match_max)
    finally:
        if owned:
            stream.close()
    if match:
        _match_or_queue(result, progress=progress, inline_match_max=inline_match_max)
    return result


def _match_or_queue(result: ImportResult, *, progress: Progress | None, inline_match_max: int | None,
                    waiting: int | None = None, only_new: bool = False) -> None:
    """Match the statements' transactions now, or leave them to the worker when more than
    inline_match_max wait (`waiting`: the new transactions of this import by default)."""
    waiting = result.created if waiting is None else waiting
    if inline_match_max is not None and waiting > inline_match_max:
        statement_ids = list(result.statement_ids)
        transaction.on_commit(lambda: _enqueue_matching(statement_ids))
        result.matching = {"queued": waiting}
    else:
        from reconciliation.matching import transactions_match

        result.matching = transactions_match(
            statement_ids=result.statement_ids, only_new=only_new,
            progress=(lambda fraction: progress("matching", fraction)) if progress else None)


def _import_archive(stream: IO[bytes], *, head: bytes, filename: str, origin: str, user: Any, match: bool,
                    progress: Progress | None, inline_match_max: int | None) -> ImportResult:
    """A ZIP (what EBICS and bank portals deliver: one camt file a day or an account) or a
    gzip file: every statement in it, all or nothing, then matched like a single file's (after
    the commit, so that matching never holds the archive's transaction)."""
    result = _store_archive(stream, head=head, filename=filename, origin=origin, user=user, progress=progress)
    if match and result.statement_ids:
        _match_or_queue(result, progress=progress, inline_match_max=inline_match_max)
    return result


@transaction.atomic
def _store_archive(stream: IO[bytes], *, head: bytes, filename: str, origin: str, user: Any,
                   progress: Progress | None) -> ImportResult:
    """A member that is not a statement (a PDF copy, a readme) is left out with a warning; a
    statement that cannot be read refuses the whole archive, naming the member."""
    result = ImportResult(format=archives.kind(head), filename=filename, already_imported=True)
    members = list(archives.members(stream, head=head, filename=filename, max_bytes=max_file_bytes()))
    if not members:
        raise StatementParseError("the archive holds no file")
    reports = []
    for number, (name, open_member) in enumerate(members):
        if progress:
            progress("reading", number / len(members))
        with open_member() as member:
            if archives.kind(member.read(4)):
                raise StatementParseError(f"{name}: an archive inside the archive; send its files instead")
            member.seek(0)
            try:
                found = statement_import(source=member, filename=(f"{filename}/{name}" if filename else name)[-255:],
                                         origin=origin, user=user, match=False)
            except UnsupportedFormat:
                result.warnings.append(_("%(member)s: not a bank statement, left out.") % {"member": name})
                continue
            except StatementParseError as exc:
                raise StatementParseError(f"{name}: {exc.message}") from exc
        if found.other is not None:  # a pain.002 status report
            report = found.other
            if not report.ok:
                raise StatementParseError(f"{name}: " + "; ".join(report.errors))
            result.warnings.append(_("%(member)s: status report, %(accepted)d accepted, %(rejected)d rejected.")
                                   % {"member": name, "accepted": report.accepted, "rejected": len(report.rejected)})
            result.already_imported = result.already_imported and report.already_imported
            reports.append(report)
            continue
        result.statement_ids.extend(found.statement_ids)
        result.created += found.created
        result.duplicates += found.duplicates
        result.already_imported = result.already_imported and found.already_imported
        result.warnings.extend(f"{name}: {w}" for w in found.warnings)
    if not result.statement_ids and not reports:
        raise UnsupportedFormat("the archive holds no bank statement")
    return result


def _enqueue_matching(statement_ids: list[int]) -> None:
    # Should the task be lost, the match-new-transactions schedule matches them anyway.
    from django_q.tasks import async_task

    async_task("reconciliation.tasks.match_statements", statement_ids,
               q_options={"task_name": f"match-statements-{statement_ids[0]}"})


def inline_match_max() -> int:
    """How many new transactions an upload (admin, API) matches before answering."""
    return settings.RECONCILIATION_INLINE_MATCH_MAX


def _reading_progress(stream: IO[bytes], size: int, progress: Progress | None) -> Callable[[], None] | None:
    """A callback for the store loop: how far into the file the parser has read."""
    if progress is None:
        return None

    def report() -> None:
        try:
            progress("reading", min(stream.tell() / size, 1.0))
        except (OSError, ValueError):
            pass
    return report


def _already_imported(fmt: str, filename: str, statements: list[BankStatement], *, match: bool,
                      inline_match_max: int | None = None) -> ImportResult:
    total = sum(s.transaction_count + s.duplicate_count for s in statements)
    result = ImportResult(format=fmt, filename=filename, statement_ids=[s.pk for s in statements], created=0,
                          duplicates=total, already_imported=True,
                          warnings=[_("This file was already imported.")])
    if match:
        # The first import may have died between storing and matching: finish its matching.
        waiting = BankTransaction.objects.filter(statement_id__in=result.statement_ids,
                                                 status=BankTransaction.Status.NEW).count()
        _match_or_queue(result, progress=None, inline_match_max=inline_match_max, waiting=waiting, only_new=True)
    return result


def bank_account_resolve(*, header: StatementHeader) -> BankAccount:
    """The configured account of a statement, or one created on the fly and flagged for review:
    a statement is never refused for its account."""
    account_id = header.account_iban or header.account_other_id
    if not account_id:
        raise StatementParseError("the statement does not identify its account")
    # By the identifier it was configured with (the IBAN, or the bank's own form such as an
    # MT940 BLZ/account), else by its IBAN.
    known = [value for value in (header.account_iban, header.account_other_id) if value]
    account = (BankAccount.objects.filter(account_id__in=known).order_by("pk").first()
               or (BankAccount.objects.filter(iban=header.account_iban).order_by("needs_review", "pk").first()
                   if header.account_iban else None))
    if account is not None:
        return account
    if header.account_iban:
        # Some banks report each virtual IBAN as a sub-account with statements of its own: its
        # movements belong to the creditor's account (and stay credited to the virtual IBAN).
        virtual = VirtualIBAN.objects.filter(iban=header.account_iban).select_related("creditor").first()
        if virtual is not None:
            main = (BankAccount.objects.filter(creditor_id=virtual.creditor_id, is_active=True)
                    .order_by("needs_review", "pk").first())
            if main is not None:
                return main
    creditors = list(Creditor.objects.filter(iban=header.account_iban)[:2]) if header.account_iban else []
    with transaction.atomic():
        account, created = BankAccount.objects.get_or_create(
            account_id=account_id,
            defaults={"iban": header.account_iban, "bic": header.account_bic, "currency": header.currency or "EUR",
                      "name": account_id, "needs_review": True,
                      "creditor": creditors[0] if len(creditors) == 1 else None})
        if created:
            event_emit(type="bank_account.created", creditor_id=account.creditor_id,
                       payload={"bank_account_id": account.pk, "iban": account.iban, "account_id": account.account_id,
                                "currency": account.currency},
                       subjects={"bank_account": account.pk})
    return account


def natural_key(account: BankAccount, entry: Entry, occurrence: int, *, fmt: str = "") -> str:
    """Account, booking date, bank references and amount. Without any bank reference the
    counterparty, the text and the occurrence of identical movements that day tell them apart.
    In ISO 20022 files the entry's own reference (NtryRef) counts only without the bank's
    (AcctSvcrRef): many banks number entries within a statement, so an intraday statement, the
    day's statement and a camt.054 notice of the same movement number it differently."""
    entry_reference = "" if fmt.startswith("camt") and entry.bank_reference else entry.entry_reference
    parts = [account.account_id, entry.booking_date.isoformat(), entry.direction, str(round_money(entry.amount)),
             entry.currency, entry.bank_reference, entry_reference, entry.end_to_end_id, entry.transaction_id,
             entry.batch_reference, str(entry.position)]
    if not (entry.bank_reference or entry.end_to_end_id or entry.transaction_id):
        parts += [entry.counterparty_name, entry.counterparty_iban, entry.remittance_info, str(occurrence)]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# What an import writes of each transaction (the rest are defaults: status new, no match yet).
ROW_COLUMNS = ("statement_id", "bank_account_id", "creditor_id", "natural_key", "booking_date", "value_date",
               "direction", "amount", "currency", "is_reversal", "reason_code", "bank_reference",
               "entry_reference", "end_to_end_id", "transaction_id", "mandate_reference", "bank_transaction_code",
               "counterparty_name", "counterparty_iban", "credited_iban", "remittance_info",
               "structured_reference", "batch_reference")


def _insert_copied(rows: list[tuple]) -> None:
    """PostgreSQL: the rows COPYed into a staging table, then inserted in file order with ON
    CONFLICT DO NOTHING on the natural key (a model instance and its SQL a row cost more than
    parsing the entry)."""
    columns = ", ".join(ROW_COLUMNS)
    table = connection.ops.quote_name(BankTransaction._meta.db_table)
    fields = {f.column: f for f in BankTransaction._meta.concrete_fields}
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS statement_rows (seq bigserial, "
                       + ", ".join(f"{c} {fields[c].db_type(connection)}" for c in ROW_COLUMNS)
                       + ") ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY statement_rows ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({columns}, status, imported_at) "
                       f"SELECT {columns}, %s, %s FROM statement_rows ORDER BY seq "
                       f"ON CONFLICT (natural_key) DO NOTHING", [BankTransaction.Status.NEW, timezone.now()])
        cursor.execute("TRUNCATE statement_rows")


class _StatementWriter:
    def __init__(self, *, header: StatementHeader, fmt: str, filename: str, sha: str, origin: str, user: Any):
        self.account = bank_account_resolve(header=header)
        self.header = header
        self.fmt = fmt
        self.statement = BankStatement.objects.create(
            bank_account=self.account, format=fmt, version=header.version, source=origin, filename=filename[:255],
            file_sha256=sha, index_in_file=header.index, statement_id=header.statement_id,
            sequence_number=header.sequence_number, created_by_bank_at=header.created_at,
            from_date=header.from_date, to_date=header.to_date,
            currency=header.currency or self.account.currency,
            opening_balance=header.opening_balance, closing_balance=header.closing_balance,
            imported_by=user if getattr(user, "pk", None) else None)
        self.pending: list[tuple] = []  # rows of ROW_COLUMNS
        self.seen = 0
        self.credits = Decimal(0)
        self.debits = Decimal(0)
        self.occurrences: Counter[tuple] = Counter()
        self.warnings: list[str] = []
        self.not_booked = 0

    def add(self, entry: Entry) -> None:
        if not entry.booked:
            # A pending entry comes again once booked, maybe on another date: importing both
            # would count the same money twice.
            self.not_booked += 1
            return
        self.seen += 1
        if entry.amount <= 0:
            raise StatementParseError("an amount must be greater than zero", entry=self.seen)
        currency = entry.currency or self.statement.currency
        entry.currency = currency
        if entry.direction == "CRDT":
            self.credits += entry.amount
        else:
            self.debits += entry.amount
        base = (entry.booking_date, entry.direction, entry.amount, entry.counterparty_name, entry.remittance_info)
        self.occurrences[base] += 1
        credited = entry.credited_iban
        if not credited and entry.direction == "CRDT":
            # the statement's own account: the bank account's IBAN, or a virtual IBAN reported as
            # a sub-account of it
            credited = self.header.account_iban or self.account.iban
        self.pending.append((
            self.statement.pk, self.account.pk, self.account.creditor_id,
            natural_key(self.account, entry, self.occurrences[base], fmt=self.fmt),
            entry.booking_date, entry.value_date, entry.direction, round_money(entry.amount, currency), currency,
            entry.is_reversal, entry.reason_code[:8], entry.bank_reference[:64], entry.entry_reference[:64],
            entry.end_to_end_id[:64], entry.transaction_id[:64], entry.mandate_reference[:64],
            entry.bank_transaction_code[:64], entry.counterparty_name[:140], entry.counterparty_iban[:64],
            credited[:34], entry.remittance_info, entry.structured_reference[:64], entry.batch_reference[:64]))
        if len(self.pending) >= INSERT_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if connection.vendor == "postgresql":
            _insert_copied(self.pending)
        else:
            BankTransaction.objects.bulk_create([BankTransaction(**dict(zip(ROW_COLUMNS, row, strict=True)))
                                                 for row in self.pending], ignore_conflicts=True)
        self.pending = []

    def finish(self, header: StatementHeader) -> BankStatement:
        self.flush()
        statement = self.statement
        statement.closing_balance = header.closing_balance
        statement.opening_balance = header.opening_balance
        statement.to_date = header.to_date or statement.to_date
        statement.from_date = header.from_date or statement.from_date
        statement.total_credits = self.credits
        statement.total_debits = self.debits
        statement.transaction_count = BankTransaction.objects.filter(statement=statement).count()
        statement.duplicate_count = self.seen - statement.transaction_count
        if statement.opening_balance is not None and statement.closing_balance is not None:
            expected = statement.opening_balance + self.credits - self.debits
            if round_money(expected) != round_money(statement.closing_balance):
                self.warnings.append(
                    _("The balances do not add up: opening %(opening)s + credits %(credits)s - debits %(debits)s "
                      "= %(expected)s, but the closing balance is %(closing)s.")
                    % {"opening": statement.opening_balance, "credits": self.credits, "debits": self.debits,
                       "expected": expected, "closing": statement.closing_balance})
        if self.not_booked:
            self.warnings.append(ngettext(
                "%(count)d pending entry was not imported: it will be once the bank books it.",
                "%(count)d pending entries were not imported: they will be once the bank books them.",
                self.not_booked) % {"count": self.not_booked})
        if self.account.needs_review:
            self.warnings.append(_("The account %(account)s was not configured: it was created and is to be "
                                   "reviewed.") % {"account": self.account.account_id})
        statement.warnings = self.warnings
        statement.save()
        event_emit(type="bank_statement.imported", creditor_id=self.account.creditor_id,
                   payload={"bank_statement_id": statement.pk, "bank_account_id": self.account.pk,
                            "format": statement.format, "filename": statement.filename,
                            "transaction_count": statement.transaction_count,
                            "duplicate_count": statement.duplicate_count, "warnings": statement.warnings},
                   subjects={"bank_statement": statement.pk, "bank_account": self.account.pk})
        return statement


@transaction.atomic
def _store(stream: IO[bytes], *, fmt: str, filename: str, sha: str, origin: str, user: Any,
           progress: Callable[[], None] | None = None) -> ImportResult:
    result = ImportResult(format=fmt, filename=filename)
    writer: _StatementWriter | None = None
    count = 0

    def close() -> None:
        statement = writer.finish(writer.header)
        result.statement_ids.append(statement.pk)
        result.created += statement.transaction_count
        result.duplicates += statement.duplicate_count
        result.warnings += statement.warnings

    for item in parsers.parse(stream, fmt):
        if isinstance(item, StatementHeader):
            if writer is not None and writer.header is item:
                continue  # the same header again, now with its closing balance
            if writer is not None:
                close()
            writer = _StatementWriter(header=item, fmt=fmt, filename=filename, sha=sha, origin=origin, user=user)
        else:
            if writer is None:
                raise StatementParseError("an entry comes before its statement")
            writer.add(item)
            count += 1
            if progress is not None and not count % 1000:
                progress()
    if writer is None:
        raise StatementParseError("the file holds no statement")
    close()
    return result


# --------------------------------------------------------------------------- drop folder

def statement_drop_folder() -> Path:
    return Path(getattr(settings, "STATEMENT_DROP_DIR", settings.DROP_DIR / "statements"))


def statements_import_drop_folder() -> dict[str, int]:
    """Import every file dropped in the statements folder. A file is claimed by renaming it
    into processing/ (atomic: two workers never take the same file) and locked while it is
    imported, then moved to done/ or to failed/ with the reason next to it. Files that a dead
    worker left in processing/ are imported first (importing a file twice creates nothing)."""
    root = statement_drop_folder()
    processing = root / "processing"
    for sub in ("processing", "done", "failed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    counts = {"imported": 0, "failed": 0}
    for claimed, handle, name, left_over in take_all(root, processing):
        if left_over:
            logger.warning("statement %s was left half imported by a dead worker: importing it again", name)
        with handle:
            try:
                statement_import(source=claimed, filename=name, origin=BankStatement.Source.DROP_FOLDER)
            except (StatementParseError, DomainError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                os.replace(claimed, root / "failed" / name)
                (root / "failed" / f"{name}.error.txt").write_text(message + "\n", encoding="utf-8")
                logger.warning("statement %s refused: %s", name, message)
                counts["failed"] += 1
                continue
            os.replace(claimed, root / "done" / name)
            counts["imported"] += 1
    return counts
