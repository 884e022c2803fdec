"""pain.002 (Customer Payment Status Report) parsing: the bank's answer to a pain.008.

Any pain.002 version is read, with entities, DTDs and network access off: 001.03 and later
(CstmrPmtStsRpt), the old 001.02 (the message element is named `pain.002.001.02` and lists the
transactions without payment-information blocks), national namespaces (Swiss, German DK),
prefixed or missing namespaces, and a Document inside a business-message envelope. Only
rejections matter to us: accepted transactions settle on their collection date."""
from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass, field

from lxml import etree

REJECTED = {"RJCT"}
_BODIES = ("CstmrPmtStsRpt", "pain.002.001.02")
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_blank_text=True)
# Some banks declare UTF-8 (or nothing) and write Latin-1: the ids and codes we read are ASCII.
_CP1252_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                 remove_blank_text=True, encoding="windows-1252")
_DECLARED_ENCODING = re.compile(rb"""<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)""")


class Pain002Error(ValueError):
    pass


@dataclass(frozen=True)
class Rejection:
    end_to_end_id: str  # empty when the bank only echoed our instruction id
    reason_code: str
    instruction_id: str = ""


@dataclass
class StatusReport:
    message_id: str
    original_message_id: str
    rejections: list[Rejection] = field(default_factory=list)
    accepted: int = 0
    group_rejection: str | None = None  # reason code when the whole original message was rejected
    # OrgnlPmtInfId -> reason code, for payment-information blocks rejected as a whole
    block_rejections: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"  # of the file's bytes, to keep a faithful copy of it


def _children(node, name: str) -> list:
    return [c for c in node if isinstance(c.tag, str) and etree.QName(c).localname == name]


def _child(node, path: str):
    for name in path.split("/"):
        if node is None:
            return None
        found = _children(node, name)
        node = found[0] if found else None
    return node


def _text(node, path: str) -> str:
    found = _child(node, path)
    return (found.text or "").strip() if found is not None else ""


def _status(node, tag: str) -> str:
    return _text(node, tag).upper()


def _identifier(node, tag: str) -> str:
    value = _text(node, tag)
    # SEPA's placeholder for "no reference": never one of ours
    return "" if value.upper() == "NOTPROVIDED" else value


def _reason(node) -> str:
    """The first reason code given, or "" (001.02 names the reason StsRsn, later versions Rsn)."""
    for info in _children(node, "StsRsnInf"):
        for reason in ("Rsn", "StsRsn"):
            code = _text(info, f"{reason}/Cd") or _text(info, f"{reason}/Prtry")
            if code:
                return code
    return ""


def _cleaned(content: bytes) -> bytes:
    # a BOM or a blank line before the XML declaration makes the file unreadable to libxml2
    if content.startswith(codecs.BOM_UTF8):
        content = content[len(codecs.BOM_UTF8):]
    return content.lstrip(b" \t\r\n")


def _mislabelled_latin(content: bytes) -> bool:
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        declared = _DECLARED_ENCODING.match(content)
        return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")
    return False


def is_status_report(content: bytes) -> bool:
    """Whether a file is a pain.002 (for an importer that receives every kind of bank file):
    only the first elements are read, enough to look inside an envelope."""
    try:
        events = etree.iterparse(io.BytesIO(_cleaned(content)), events=("start",), resolve_entities=False,
                                 no_network=True, load_dtd=False)
        for count, (_event, element) in enumerate(events):
            name = etree.QName(element)
            if "pain.002" in (name.namespace or "") or name.localname in _BODIES:
                return True
            if (name.localname == "Document" and name.namespace) or count > 500:
                return False  # another ISO 20022 message
    except (etree.XMLSyntaxError, ValueError):
        return False
    return False


def _root(content: bytes):
    content = _cleaned(content)
    try:
        return etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        if _mislabelled_latin(content):
            try:
                return etree.fromstring(content, _CP1252_PARSER)  # its docinfo says windows-1252
            except etree.XMLSyntaxError:
                pass
        raise Pain002Error(f"not well-formed XML: {exc}") from exc


def _message(root):
    """The report element, from the Document at the root or inside an envelope (BizMsgEnvlp...)."""
    documents = [root] if etree.QName(root).localname == "Document" else root.iter("{*}Document")
    for document in documents:
        namespace = etree.QName(document).namespace or ""
        if namespace and "pain.002" not in namespace:
            continue
        for name in _BODIES:
            body = _child(document, name)
            if body is not None:
                return body
        if namespace:
            raise Pain002Error("missing CstmrPmtStsRpt")
    raise Pain002Error("not a pain.002 payment status report")


def parse(content: bytes) -> StatusReport:
    root = _root(content)
    body = _message(root)
    message_id = _text(body, "GrpHdr/MsgId")
    if not message_id:
        raise Pain002Error("missing GrpHdr/MsgId")
    group = _child(body, "OrgnlGrpInfAndSts")
    if group is None:
        raise Pain002Error("missing OrgnlGrpInfAndSts")
    report = StatusReport(message_id=message_id[:35], original_message_id=_text(group, "OrgnlMsgId")[:35],
                          encoding=root.getroottree().docinfo.encoding or "utf-8")
    group_rejected = _status(group, "GrpSts") in REJECTED
    # 001.02 has no payment-information level: its transactions are right under the message
    blocks = _children(body, "OrgnlPmtInfAndSts") or [body]
    named_any = False
    for block in blocks:
        block_status = _status(block, "PmtInfSts")
        block_rejected = block_status in REJECTED
        named = False
        for tx in _children(block, "TxInfAndSts"):
            status = _status(tx, "TxSts") or block_status or _status(group, "GrpSts")
            if status not in REJECTED:
                report.accepted += 1
                continue
            end_to_end_id = _identifier(tx, "OrgnlEndToEndId")
            instruction_id = _identifier(tx, "OrgnlInstrId")
            if not end_to_end_id and not instruction_id:
                if block_rejected or group_rejected:
                    continue  # only echoes amounts and accounts of a block or file rejected as a whole
                raise Pain002Error("a rejected transaction has neither OrgnlEndToEndId nor OrgnlInstrId")
            named = True
            reason = _reason(tx) or _reason(block) or _reason(group) or "MS03"  # MS03: reason not specified
            report.rejections.append(Rejection(end_to_end_id=end_to_end_id[:35], reason_code=reason[:32],
                                               instruction_id=instruction_id[:35]))
        # A rejected block or file that names some of its transactions rejects those only: failing
        # a debit the bank did not name could collect it twice.
        if block_rejected and not named:
            report.block_rejections[_text(block, "OrgnlPmtInfId")[:35]] = (
                _reason(block) or _reason(group) or "MS03")[:32]
        named_any = named_any or named
    if group_rejected and not named_any:
        report.group_rejection = (_reason(group) or "MS03")[:32]
    return report
