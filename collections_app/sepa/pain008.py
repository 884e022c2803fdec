"""pain.008 (SEPA Direct Debit initiation) messages: built with lxml from plain data and
validated against the official ISO 20022 XSD vendored in ./xsd before anything is stored.

Works on dataclasses, not models, so that it can be benchmarked and tested on its own.
"""
from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from lxml import etree

XSD_DIR = Path(__file__).resolve().parent / "xsd"
VERSIONS = ("pain.008.001.02", "pain.008.001.08")

# The EPC "basic Latin" character set that every SEPA bank must accept.
_NOT_SEPA = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]")
_SPACES = re.compile(r"\s+")


_BIC = re.compile(r"[A-Z]{6}[A-Z2-9][A-NP-Z0-9]([A-Z0-9]{3})?")


def sepa_text(value: str, max_length: int, *, fallback: str = "") -> str:
    """Transliterate to the SEPA character set (é → e, & → +) and cut to the field's length.
    A name with nothing left (written in another script) becomes `fallback`."""
    value = unicodedata.normalize("NFKD", value or "").encode("ascii", "ignore").decode("ascii")
    value = _NOT_SEPA.sub(" ", value.replace("&", "+"))
    return _SPACES.sub(" ", value).strip()[:max_length].strip() or fallback


def usable_bic(value: str) -> str:
    """The BIC if it is well formed, else "" (optional in SEPA since 2016: the IBAN suffices)."""
    value = (value or "").strip().upper()
    return value if _BIC.fullmatch(value) else ""


@dataclass(frozen=True)
class Amendment:
    original_iban: str = ""
    original_mandate_id: str = ""


@dataclass(frozen=True)
class DirectDebit:
    instruction_id: str
    end_to_end_id: str
    amount: Decimal
    mandate_id: str
    mandate_signed_on: dt.date
    debtor_name: str
    debtor_iban: str
    debtor_bic: str = ""
    remittance: str = ""
    amendment: Amendment | None = None


@dataclass(frozen=True)
class Batch:
    """One PmtInf block: a collection date, a sequence type, the creditor's account."""

    payment_info_id: str
    collection_date: dt.date
    sequence_type: str  # FRST / RCUR / FNAL / OOFF
    creditor_name: str
    creditor_iban: str
    creditor_bic: str
    creditor_identifier: str
    debits: list[DirectDebit]
    scheme: str = "CORE"  # or B2B
    batch_booking: bool = True
    currency: str = "EUR"


@dataclass(frozen=True)
class Message:
    message_id: str
    created_at: dt.datetime
    initiating_party: str
    batches: list[Batch] = field(default_factory=list)

    @property
    def transaction_count(self) -> int:
        return sum(len(b.debits) for b in self.batches)

    @property
    def control_sum(self) -> Decimal:
        return sum((d.amount for b in self.batches for d in b.debits), Decimal("0.00"))


class Pain008Invalid(ValueError):
    """The message does not validate against the XSD; `errors` lists line: message."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors[:5]))
        self.errors = errors


def _amount(value: Decimal) -> str:
    return f"{value:.2f}"


class _Builder:
    def __init__(self, version: str):
        if version not in VERSIONS:
            raise ValueError(f"unsupported pain.008 version {version!r}")
        self.ns = f"urn:iso:std:iso:20022:tech:xsd:{version}"
        self.bic_tag = "BICFI" if version.endswith(".08") else "BIC"
        self.q = "{%s}" % self.ns

    def sub(self, parent, tag: str, text: str | None = None):
        node = etree.SubElement(parent, self.q + tag)
        if text is not None:
            node.text = text
        return node

    def path(self, parent, tags: str, text: str | None = None):
        node = parent
        for tag in tags.split("/"):
            node = self.sub(node, tag)
        if text is not None:
            node.text = text
        return node

    def agent(self, parent, tag: str, bic: str) -> None:
        fin = self.path(parent, f"{tag}/FinInstnId")
        bic = usable_bic(bic)
        if bic:
            self.sub(fin, self.bic_tag, bic)
        else:
            self.path(fin, "Othr/Id", "NOTPROVIDED")

    def build(self, message: Message) -> etree._Element:
        root = etree.Element(self.q + "Document", nsmap={None: self.ns})
        initiation = self.sub(root, "CstmrDrctDbtInitn")
        header = self.sub(initiation, "GrpHdr")
        self.sub(header, "MsgId", message.message_id)
        self.sub(header, "CreDtTm", message.created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"))
        self.sub(header, "NbOfTxs", str(message.transaction_count))
        self.sub(header, "CtrlSum", _amount(message.control_sum))
        self.path(header, "InitgPty/Nm", sepa_text(message.initiating_party, 70, fallback="NOTPROVIDED"))
        for batch in message.batches:
            self.batch(initiation, batch)
        return root

    def batch(self, parent, batch: Batch) -> None:
        info = self.sub(parent, "PmtInf")
        self.sub(info, "PmtInfId", batch.payment_info_id)
        self.sub(info, "PmtMtd", "DD")
        self.sub(info, "BtchBookg", "true" if batch.batch_booking else "false")
        self.sub(info, "NbOfTxs", str(len(batch.debits)))
        self.sub(info, "CtrlSum", _amount(sum((d.amount for d in batch.debits), Decimal("0.00"))))
        type_info = self.sub(info, "PmtTpInf")
        self.path(type_info, "SvcLvl/Cd", "SEPA")
        self.path(type_info, "LclInstrm/Cd", batch.scheme)
        self.sub(type_info, "SeqTp", batch.sequence_type)
        self.sub(info, "ReqdColltnDt", batch.collection_date.isoformat())
        self.path(info, "Cdtr/Nm", sepa_text(batch.creditor_name, 70, fallback="NOTPROVIDED"))
        self.path(info, "CdtrAcct/Id/IBAN", batch.creditor_iban)
        self.agent(info, "CdtrAgt", batch.creditor_bic)
        self.sub(info, "ChrgBr", "SLEV")
        other = self.path(info, "CdtrSchmeId/Id/PrvtId/Othr")
        self.sub(other, "Id", batch.creditor_identifier)
        self.path(other, "SchmeNm/Prtry", "SEPA")
        currency = batch.currency
        for debit in batch.debits:
            self.debit(info, debit, currency)

    def debit(self, parent, debit: DirectDebit, currency: str) -> None:
        tx = self.sub(parent, "DrctDbtTxInf")
        pmt_id = self.sub(tx, "PmtId")
        self.sub(pmt_id, "InstrId", debit.instruction_id)
        self.sub(pmt_id, "EndToEndId", debit.end_to_end_id)
        self.sub(tx, "InstdAmt", _amount(debit.amount)).set("Ccy", currency)
        mandate = self.path(tx, "DrctDbtTx/MndtRltdInf")
        self.sub(mandate, "MndtId", debit.mandate_id)
        self.sub(mandate, "DtOfSgntr", debit.mandate_signed_on.isoformat())
        if debit.amendment is not None:
            self.sub(mandate, "AmdmntInd", "true")
            details = self.sub(mandate, "AmdmntInfDtls")
            if debit.amendment.original_mandate_id:
                self.sub(details, "OrgnlMndtId", debit.amendment.original_mandate_id)
            if debit.amendment.original_iban:
                self.path(details, "OrgnlDbtrAcct/Id/IBAN", debit.amendment.original_iban)
        self.agent(tx, "DbtrAgt", debit.debtor_bic)
        self.path(tx, "Dbtr/Nm", sepa_text(debit.debtor_name, 70, fallback="NOTPROVIDED"))
        self.path(tx, "DbtrAcct/Id/IBAN", debit.debtor_iban)
        remittance = sepa_text(debit.remittance, 140)
        if remittance:
            self.path(tx, "RmtInf/Ustrd", remittance)


def build_tree(message: Message, *, version: str) -> etree._Element:
    return _Builder(version).build(message)


def serialize(tree: etree._Element) -> bytes:
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@lru_cache(maxsize=None)
def schema(version: str) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(XSD_DIR / f"{version}.xsd"), parser))


def validate(tree: etree._Element, *, version: str) -> None:
    xsd = schema(version)
    if not xsd.validate(tree):
        raise Pain008Invalid([f"line {e.line}: {e.message}" for e in xsd.error_log])


def build(message: Message, *, version: str) -> bytes:
    """The validated XML, or Pain008Invalid: an invalid file is never returned."""
    if not message.batches or not message.transaction_count:
        raise ValueError("a pain.008 message needs at least one direct debit")
    tree = build_tree(message, version=version)
    validate(tree, version=version)
    return serialize(tree)
