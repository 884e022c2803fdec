"""ISO 20022 camt.053 (statements), camt.052 (intraday account reports) and camt.054 (debit/credit
notifications), versions 001.02 to 001.13 (the elements read here did not change after
001.08), read as a stream with lxml: each entry is turned into Entry items as soon as it is
complete and then dropped from the tree, so memory does not grow with the file.

The XML is parsed with entities, DTDs and network access off; a document declaring a DTD
(the vehicle of entity-expansion bombs) is refused before parsing.

Real files also come as several documents glued one after the other (one per day, as some
banks' downloads do), wrapped in an envelope element (BizMsgEnvlp, SWIFT's DataPDU), in
UTF-16, or with a DOS end-of-file mark: all are read.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import IO

from lxml import etree

from reconciliation.parsers.base import (
    Entry, StatementHeader, StatementParseError, UnsupportedFormat, clean_reference, iban_or_empty,
)
from reconciliation.parsers.mt940 import GERMAN_RETURN_CODES

NAMESPACE_RE = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:(camt\.05[234])\.001\.(\d\d)")
SUPPORTED_VERSIONS = {f"{v:02d}" for v in range(2, 14)}
# Pending and information-only entries are not on the account yet: the booked entry will come.
NOT_BOOKED = {"PDNG", "INFO", "FUTR"}
RETURN_SUBFAMILIES = {"UPDD", "PRDD", "RRTN", "ARET", "RCDD", "RPCR"}
HEAD_BYTES = 64 * 1024
CHUNK = 64 * 1024
XML_DECLARATION = b"<?xml"
# Swiss banks put QR-bill processing codes in AddtlRmtInf: not the payer's words.
TECHNICAL_REMITTANCE = re.compile(r"^\?(REJECT|ERROR)\?")
NUMERIC_REFERENCE = re.compile(r"(RF\d\d)?[\dA-Z ]+")
# German banks (DK format) give no ISO domain, only a proprietary code "NRTI+109+…": SWIFT
# transaction type, then the GVC, which tells returns as in MT940.
DK_PROPRIETARY_CODE = re.compile(r"^[A-Z]{4}\+(\d{3})(\+|$)")


def _squeeze(text: str) -> str:
    """Free text with its line breaks and column padding reduced to single spaces (Nordic banks
    pad remittance lines to fixed columns, Swiss banks break the entry text into lines)."""
    return " ".join(text.split())


ROOT_START_RE = re.compile(rb"<[A-Za-z_]")


def scannable(head: bytes) -> bytes:
    """The head as ASCII-compatible bytes, so that the namespace and a DTD can be looked for
    in a UTF-16 document too."""
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(head) > 1 and (head[0] == 0) != (head[1] == 0)):
        for encoding in ("utf-16", "utf-16-le", "utf-16-be"):
            try:
                text = head[: len(head) // 2 * 2].decode(encoding)
            except UnicodeDecodeError:
                continue
            if "<" in text[:64]:
                return text.encode("utf-8", errors="replace")
    return head


def check_prolog(head: bytes) -> None:
    """Refuse a DTD: an internal subset can declare entities (billion laughs, external files).
    A DTD can only stand in the prolog, before the root element's start tag."""
    head = scannable(head)
    root = ROOT_START_RE.search(head)
    prolog = head[: root.start()] if root else head
    if b"<!DOCTYPE" in prolog.upper() or b"<!ENTITY" in prolog.upper():
        raise StatementParseError("XML documents with a DTD or entity declarations are refused")


def _decimal(text: str | None, *, entry: int | None = None) -> Decimal:
    try:
        value = Decimal((text or "").strip())
    except InvalidOperation:
        raise StatementParseError(f"invalid amount {text!r}", entry=entry) from None
    if not value.is_finite():
        raise StatementParseError(f"invalid amount {text!r}", entry=entry)
    return value


def _date(value: str | None, *, entry: int | None = None) -> dt.date | None:
    """An ISODate or ISODateTime; with an offset the date is the one the bank wrote, in its own zone."""
    if not value:
        return None
    value = value.strip()
    try:
        if "T" in value:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).date()
        # ISODate may carry an offset too ("2024-03-01+01:00").
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise StatementParseError(f"invalid date {value!r}", entry=entry) from None


def _datetime(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise StatementParseError(f"invalid date-time {value!r}") from None
    if moment.tzinfo is None:
        # ISO 20022 local times without offset: the bank's; taken as UTC rather than guessed.
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


class _Paths:
    """Namespace-qualified ElementPath expressions, built once per document."""

    def __init__(self, ns: str):
        self.ns = ns
        self._cache: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        try:
            return self._cache[path]
        except KeyError:
            q = "/".join(f"{{{self.ns}}}{part}" if part not in (".", "..") else part for part in path.split("/"))
            self._cache[path] = q
            return q


def detect_version(head: bytes) -> tuple[str, str] | None:
    found = NAMESPACE_RE.search(scannable(head))
    if not found:
        return None
    return found.group(1).decode(), found.group(2).decode()


class _Document:
    """One XML document of a stream that may hold several, one after the other."""

    def __init__(self, source: _Documents):
        self.source = source
        self.done = False
        self.started = False

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        data = self.source.take(self)
        self.done = not data
        return data


class _Documents:
    """Cuts a stream into its XML documents at each XML declaration but the first one's, a
    declaration being allowed nowhere else. Bytes that XML forbids anywhere (a DOS end-of-file
    mark, NUL padding) are dropped, except in UTF-16 where they belong to characters."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self.buffer = b""
        self.eof = False
        self.utf16: bool | None = None

    def _fill(self) -> None:
        while not self.eof and len(self.buffer) < CHUNK:
            chunk = self.stream.read(CHUNK)
            if not chunk:
                self.eof = True
                break
            if self.utf16 is None:
                self.utf16 = scannable(chunk[:64]) != chunk[:64]
            if not self.utf16:
                chunk = chunk.replace(b"\x1a", b"").replace(b"\x00", b"")
            self.buffer += chunk

    def next_document(self) -> tuple[bytes, _Document] | None:
        """The head of the next document, and the document; None at the end of the stream."""
        self._fill()
        if not self.buffer.strip(b" \t\r\n"):
            return None
        return self.buffer[:HEAD_BYTES], _Document(self)

    def take(self, document: _Document) -> bytes:
        self._fill()
        if self.utf16:
            data, self.buffer = self.buffer, b""
            return data
        search_from = 0
        if not document.started:
            document.started = True
            own = self.buffer.find(XML_DECLARATION)
            if own >= 0 and not self.buffer[:own].strip(b" \t\r\n\xef\xbb\xbf"):
                search_from = own + 1
        cut = self.buffer.find(XML_DECLARATION, search_from)
        if cut < 0:
            # keep a tail: a declaration may straddle two chunks
            cut = len(self.buffer) if self.eof else max(len(self.buffer) - len(XML_DECLARATION), search_from)
        data, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return data


def parse(stream: IO[bytes]) -> Iterator[StatementHeader | Entry]:
    documents = _Documents(stream)
    index = -1
    entry_number = 0
    found_any = False
    while (nxt := documents.next_document()) is not None:
        head, document = nxt
        state = {"index": index, "entry_number": entry_number}
        yield from _parse_document(document, head, state, first=not found_any)
        index, entry_number = state["index"], state["entry_number"]
        found_any = True
        if not document.done:
            # a document stops at its root's end: drain what lxml left unread
            while document.read(CHUNK):
                pass
    if not found_any:
        raise StatementParseError("empty file")


def _parse_document(document: _Document, head: bytes, state: dict, *, first: bool) -> Iterator[StatementHeader | Entry]:
    check_prolog(head)
    found = detect_version(head)
    if found is None:
        if first:
            raise UnsupportedFormat("not a camt.052, camt.053 or camt.054 document")
        raise StatementParseError("a further XML document in the file is not a camt.052, camt.053 or camt.054 "
                                  "document")
    message, version = found
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedFormat(f"{message}.001.{version} is not supported (001.02 to 001.13 are)")
    ns = f"urn:iso:std:iso:20022:tech:xsd:{message}.001.{version}"
    p = _Paths(ns)
    statement_tags = {p("Stmt"), p("Rpt"), p("Ntfctn")}
    context = etree.iterparse(
        document, events=("start", "end"),
        tag=(p("GrpHdr"), p("Stmt"), p("Rpt"), p("Ntfctn"), p("Ntry")),
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, remove_comments=True,
        remove_pis=True,
    )
    group_created: dt.datetime | None = None
    index = state["index"]
    first_index = index
    header: StatementHeader | None = None
    checked = False
    try:
        for event, el in context:
            if not checked:
                # Belt and braces for a DTD pushed beyond the scanned head by padding.
                if el.getroottree().docinfo.doctype:
                    raise StatementParseError("XML documents with a DTD or entity declarations are refused")
                checked = True
            tag = el.tag
            if tag == p("GrpHdr"):
                if event == "end":
                    group_created = _datetime(el.findtext(p("CreDtTm")))
            elif tag in statement_tags:
                if event == "start":
                    index += 1
                    state["index"] = index
                    header = None
                else:
                    if header is None:
                        yield _header(el, p, message, version, index, group_created)
                    el.clear()
                    parent = el.getparent()
                    if parent is not None:
                        while el.getprevious() is not None:
                            del parent[0]
            elif tag == p("Ntry"):
                if event == "start":
                    if header is None:
                        header = _header(el.getparent(), p, message, version, index, group_created)
                        yield header
                    continue
                state["entry_number"] += 1
                yield from _entries(el, p, header, state["entry_number"])
                el.clear()
                parent = el.getparent()
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise StatementParseError(f"malformed XML: {exc.msg}", line=exc.lineno) from None
    if index == first_index:
        raise StatementParseError(f"{message} document without any statement or notification")


def _text(el, path: str) -> str:
    return (el.findtext(path) or "").strip()


def _header(stmt, p: _Paths, message: str, version: str, index: int,
            group_created: dt.datetime | None) -> StatementHeader:
    """Read from the statement element's children parsed so far (all but the entries)."""
    header = StatementHeader(format=message, version=f"{message}.001.{version}", index=index)
    header.statement_id = _text(stmt, p("Id"))[:64]
    header.sequence_number = (_text(stmt, p("ElctrncSeqNb")) or _text(stmt, p("LglSeqNb")))[:32]
    header.created_at = _datetime(stmt.findtext(p("CreDtTm"))) or group_created
    acct = stmt.find(p("Acct"))
    if acct is None:
        raise StatementParseError(f"{message} statement {index + 1} has no account (Acct)")
    header.account_iban = _text(acct, p("Id/IBAN")).replace(" ", "").upper()
    header.account_other_id = _text(acct, p("Id/Othr/Id"))
    if not header.account_iban:
        # some banks (Nordic, Baltic, SEB...) put the IBAN in Othr/Id
        header.account_iban = iban_or_empty(header.account_other_id)
    header.currency = _text(acct, p("Ccy")).upper()
    header.account_bic = (_text(acct, p("Svcr/FinInstnId/BIC")) or _text(acct, p("Svcr/FinInstnId/BICFI")))[:11]
    frto = stmt.find(p("FrToDt"))
    if frto is not None:
        header.from_date = _date(frto.findtext(p("FrDtTm")))
        header.to_date = _date(frto.findtext(p("ToDtTm")))
    balances: dict[str, list[tuple[Decimal, dt.date | None]]] = {}
    for bal in stmt.iterfind(p("Bal")):
        code = (_text(bal, p("Tp/CdOrPrtry/Cd")) or _text(bal, p("Tp/CdOrPrtry/Prtry"))).upper()
        amt = bal.find(p("Amt"))
        if amt is None:
            continue
        value = _decimal(amt.text)
        if _text(bal, p("CdtDbtInd")) == "DBIT":
            value = -value
        header.currency = header.currency or (amt.get("Ccy") or "").upper()
        bal_date = _date(bal.findtext(p("Dt/Dt")) or bal.findtext(p("Dt/DtTm")))
        balances.setdefault(code, []).append((value, bal_date))
    # Booked balances only, whatever their order in the file: an available balance (OPAV,
    # CLAV) includes unbooked items. A statement cut into pages opens or closes on an interim
    # booked balance (ITBD) instead.
    interim = balances.get("ITBD", [])
    opening = (balances.get("OPBD") or balances.get("PRCD") or interim[:1] or [None])[0]
    closing_interim = interim[-1:] if len(interim) > 1 or opening not in interim else []
    closing = (balances.get("CLBD") or closing_interim or [None])[-1]
    if opening is not None:
        header.opening_balance = opening[0]
        header.from_date = header.from_date or opening[1]
    if closing is not None:
        header.closing_balance = closing[0]
        header.to_date = header.to_date or closing[1]
    return header


def _entries(ntry, p: _Paths, header: StatementHeader, number: int) -> Iterator[Entry]:
    amt = ntry.find(p("Amt"))
    if amt is None:
        raise StatementParseError("entry without an amount (Amt)", entry=number)
    amount = _decimal(amt.text, entry=number)
    currency = (amt.get("Ccy") or header.currency or "").upper()
    direction = _text(ntry, p("CdtDbtInd"))
    if direction not in ("CRDT", "DBIT"):
        raise StatementParseError(f"invalid credit/debit indicator {direction!r}", entry=number)
    booking = _date(ntry.findtext(p("BookgDt/Dt")) or ntry.findtext(p("BookgDt/DtTm")), entry=number)
    value = _date(ntry.findtext(p("ValDt/Dt")) or ntry.findtext(p("ValDt/DtTm")), entry=number)
    if booking is None:
        booking = value
    if booking is None:
        # Some central and Baltic banks give entries no date at all: the statement's day.
        booking = header.to_date or header.from_date or (header.created_at.date() if header.created_at else None)
    if booking is None:
        raise StatementParseError("entry without a booking date (BookgDt)", entry=number)
    reversal = _text(ntry, p("RvslInd")).lower() in ("true", "1")
    code = _bank_code(ntry, p)
    # Up to 001.07 <Sts>BOOK</Sts>, from 001.08 <Sts><Cd>BOOK</Cd></Sts>.
    status = (_text(ntry, p("Sts")) or _text(ntry, p("Sts/Cd")) or _text(ntry, p("Sts/Prtry"))).upper()
    base = Entry(
        booking_date=booking, value_date=value, amount=amount, direction=direction, currency=currency,
        is_reversal=reversal, booked=status not in NOT_BOOKED,
        bank_reference=clean_reference(_text(ntry, p("AcctSvcrRef"))),
        entry_reference=clean_reference(_text(ntry, p("NtryRef"))), bank_transaction_code=code,
        remittance_info=_squeeze(_text(ntry, p("AddtlNtryInf")))[:500],
    )
    details = ntry.findall(p("NtryDtls/TxDtls"))
    batch = ntry.find(p("NtryDtls/Btch"))
    if not details:
        base.is_reversal = base.is_reversal or _is_return_code(code)
        yield base
        return
    batch_ref = ""
    if len(details) > 1 or batch is not None:
        batch_ref = (_text(batch, p("PmtInfId")) or _text(batch, p("MsgId"))) if batch is not None else ""
        batch_ref = (batch_ref or base.bank_reference or base.entry_reference or f"entry-{number}")[:64]
    if len(details) > 1 and not _splittable(details, p, base):
        # The bank lists the batch's payers but not what each paid, or only some of them (the
        # details do not add up to what was booked): the entry cannot be split, so it is kept
        # whole, at the booked amount, with all their remittance texts.
        texts = [_remittance(tx, p)[0] for tx in details]
        base.remittance_info = " ".join(x for x in (*texts, base.remittance_info) if x)[:1000]
        base.batch_reference = batch_ref
        base.is_reversal = base.is_reversal or _is_return_code(code)
        yield base
        return
    for position, tx in enumerate(details):
        yield _detail(tx, p, base, number, position, batch_ref, single=len(details) == 1,
                      own_iban=header.account_iban)


def _splittable(details: list, p: _Paths, base: Entry) -> bool:
    """Whether a batch entry's transactions give their amounts, in the entry's currency, and add
    up to the amount booked: only then is the entry replaced by its transactions."""
    total = Decimal(0)
    for tx in details:
        el = _amount_element(tx, p, base.currency)
        if el is None or (el.get("Ccy") or base.currency).upper() != base.currency:
            return False
        try:
            amount = Decimal((el.text or "").strip())
        except InvalidOperation:
            return True  # the transaction's own reading names the bad amount
        if not amount.is_finite():
            return True
        direction = _text(tx, p("CdtDbtInd")) or base.direction
        total += amount if direction == base.direction else -amount
    return total == base.amount


def _amount_element(tx, p: _Paths, currency: str):
    """The transaction's amount, in the account's currency when the bank gives several
    (TxAmt, counter value, instructed amount in the payer's currency)."""
    candidates = [el for el in (tx.find(p("Amt")), tx.find(p("AmtDtls/TxAmt/Amt")),
                                tx.find(p("AmtDtls/CntrValAmt/Amt")), tx.find(p("AmtDtls/InstdAmt/Amt")))
                  if el is not None]
    for el in candidates:
        if (el.get("Ccy") or currency).upper() == currency:
            return el
    return candidates[0] if candidates else None


def _remittance(tx, p: _Paths) -> tuple[str, str]:
    """The remittance text and the structured reference of a transaction."""
    ustrd = _squeeze(" ".join((u.text or "") for u in tx.iterfind(p("RmtInf/Ustrd"))))
    # Structured remittance: the creditor reference (RF…, Swiss QR), else the invoice numbers
    # it lists (RfrdDocInf/Nb) and its free additional text. A payment of several invoices
    # repeats Strd, one creditor reference each: the first is the structured reference, the
    # others go to the text, where matching finds them too.
    references = [_joined(ref) for ref in (_text(el, ".") for el in tx.iterfind(p("RmtInf/Strd/CdtrRefInf/Ref")))
                  if ref]
    documents = [(d.text or "").strip() for d in tx.iterfind(p("RmtInf/Strd/RfrdDocInf/Nb"))]
    strd_text = [_squeeze(a.text or "") for a in tx.iterfind(p("RmtInf/Strd/AddtlRmtInf"))]
    strd_text = [t for t in strd_text if not TECHNICAL_REMITTANCE.match(t)]
    text = " ".join(x for x in (ustrd, *references[1:], *documents, *strd_text) if x)
    structured = (references[0] if references else "") or _joined(documents[0] if documents else "")
    return text, structured


def _joined(reference: str) -> str:
    """RF and QR references printed in groups of four or five, joined."""
    if NUMERIC_REFERENCE.fullmatch(reference.upper()) and any(c.isdigit() for c in reference):
        return reference.replace(" ", "")
    return reference


def _is_return_code(code: str) -> bool:
    parts = code.split("/")
    if len(parts) >= 3 and parts[2] in RETURN_SUBFAMILIES:
        return True
    dk = DK_PROPRIETARY_CODE.match(code)
    return bool(dk) and dk.group(1) in GERMAN_RETURN_CODES


def _bank_code(el, p: _Paths) -> str:
    domain = _text(el, p("BkTxCd/Domn/Cd"))
    if domain:
        return "/".join([domain, _text(el, p("BkTxCd/Domn/Fmly/Cd")), _text(el, p("BkTxCd/Domn/Fmly/SubFmlyCd"))])
    return _text(el, p("BkTxCd/Prtry/Cd"))[:64]


def _party_name(tx, p: _Paths, role: str) -> str:
    # up to 001.07: RltdPties/Dbtr/Nm; 001.08: RltdPties/Dbtr/Pty/Nm
    return (_text(tx, p(f"RltdPties/{role}/Nm")) or _text(tx, p(f"RltdPties/{role}/Pty/Nm")))[:140]


def _compact(account: str) -> str:
    return account.replace(" ", "").upper()


def _account(tx, p: _Paths, role: str) -> str:
    return (_text(tx, p(f"RltdPties/{role}Acct/Id/IBAN")) or _text(tx, p(f"RltdPties/{role}Acct/Id/Othr/Id")))[:64]


def _foreign_amount(tx, p: _Paths, currency: str):
    """The amount in the payer's currency when it is not the account's: the instructed amount
    first (banks give it beside the transaction amount converted into the account's currency)."""
    for path in ("AmtDtls/InstdAmt/Amt", "Amt", "AmtDtls/TxAmt/Amt", "AmtDtls/CntrValAmt/Amt"):
        el = tx.find(p(path))
        if el is not None and (el.get("Ccy") or currency).upper() != currency:
            return el
    return None


def _detail(tx, p: _Paths, base: Entry, number: int, position: int, batch_ref: str, *, single: bool,
            own_iban: str = "") -> Entry:
    amount_el = _amount_element(tx, p, base.currency)
    extra = {}
    if single:
        # The entry's amount is what was booked on the account; the transaction's may be
        # the payer's (another currency, or before charges), kept aside.
        amount, currency, direction = base.amount, base.currency, base.direction
        foreign = _foreign_amount(tx, p, currency)
        if foreign is not None:
            extra["original_amount"] = _decimal(foreign.text, entry=number)
            extra["original_currency"] = (foreign.get("Ccy") or "").upper()
    elif amount_el is None:
        raise StatementParseError(f"transaction {position + 1} of a batch entry has no amount", entry=number)
    else:
        amount = _decimal(amount_el.text, entry=number)
        currency = (amount_el.get("Ccy") or base.currency).upper()
        direction = _text(tx, p("CdtDbtInd")) or base.direction
        if direction not in ("CRDT", "DBIT"):
            raise StatementParseError(f"invalid credit/debit indicator {direction!r}", entry=number)
    code = _bank_code(tx, p) or base.bank_transaction_code
    reason = _text(tx, p("RtrInf/Rsn/Cd")) or _text(tx, p("RtrInf/Rsn/Prtry"))
    ustrd, structured = _remittance(tx, p)
    additional = _squeeze(_text(tx, p("AddtlTxInf")))
    role = "Dbtr" if direction == "CRDT" else "Cdtr"
    other = "Cdtr" if role == "Dbtr" else "Dbtr"
    if own_iban and _compact(_account(tx, p, role)) == own_iban and _compact(_account(tx, p, other)) != own_iban \
            and _party_name(tx, p, other):
        # The party on the counterparty's side is the account holder: a return describing the
        # original collection (the debtor is the customer, the creditor is us), as German banks do.
        role = other
    counterparty_name, counterparty_iban = _party_name(tx, p, role), _account(tx, p, role)
    ultimate = _party_name(tx, p, f"Ultmt{role}")
    if ultimate:
        # the party on whose behalf the payment was made (a parent company, a payment service)
        extra["ultimate_debtor" if role == "Dbtr" else "ultimate_creditor"] = ultimate
        counterparty_name = counterparty_name or ultimate
    credited = ""
    if direction == "CRDT":
        # the account the payer credited (a virtual IBAN); some banks give it as an other id
        credited = (_text(tx, p("RltdPties/CdtrAcct/Id/IBAN")).replace(" ", "").upper()
                    or iban_or_empty(_text(tx, p("RltdPties/CdtrAcct/Id/Othr/Id"))))
    if reason or base.is_reversal or _is_return_code(code):
        # In a return the parties are those of the original collection: the debtor is ours.
        counterparty_name = counterparty_name or _party_name(tx, p, "Dbtr")
        counterparty_iban = counterparty_iban or _account(tx, p, "Dbtr")
    return Entry(
        booking_date=base.booking_date, value_date=base.value_date, amount=amount, direction=direction,
        currency=currency, is_reversal=bool(reason) or base.is_reversal or _is_return_code(code),
        reason_code=reason[:8], bank_reference=clean_reference(_text(tx, p("Refs/AcctSvcrRef"))) or base.bank_reference,
        entry_reference=base.entry_reference, end_to_end_id=clean_reference(_text(tx, p("Refs/EndToEndId"))),
        transaction_id=clean_reference(_text(tx, p("Refs/TxId"))),
        mandate_reference=_text(tx, p("Refs/MndtId"))[:64], bank_transaction_code=code,
        counterparty_name=counterparty_name, counterparty_iban=counterparty_iban, credited_iban=credited,
        remittance_info=" ".join(x for x in (ustrd, additional or base.remittance_info) if x)[:1000],
        structured_reference=structured[:64], batch_reference=batch_ref, position=position, booked=base.booked,
        extra=extra,
    )
