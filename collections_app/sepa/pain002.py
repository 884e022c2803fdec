"""pain.002 (Customer Payment Status Report) parsing: the bank's answer to a pain.008.

Any pain.002.001.xx version is read (the elements we need have not moved), with entities,
DTDs and network access off. Only rejections matter to us: accepted transactions settle on
their collection date."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from lxml import etree

REJECTED = {"RJCT"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                          remove_blank_text=True)


class Pain002Error(ValueError):
    pass


@dataclass(frozen=True)
class Rejection:
    end_to_end_id: str
    reason_code: str


@dataclass
class StatusReport:
    message_id: str
    original_message_id: str
    rejections: list[Rejection] = field(default_factory=list)
    accepted: int = 0
    group_rejection: str | None = None  # reason code when the whole file/batch was rejected


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


def _reason(node) -> str:
    for info in _children(node, "StsRsnInf"):
        code = _text(info, "Rsn/Cd") or _text(info, "Rsn/Prtry")
        if code:
            return code
    return "MS03"  # rejected without a reason: "reason not specified"


def is_status_report(content: bytes) -> bool:
    """Whether a file is a pain.002 (for an importer that receives every kind of bank file):
    only the root element is read."""
    try:
        for _event, element in etree.iterparse(io.BytesIO(content), events=("start",), resolve_entities=False,
                                               no_network=True, load_dtd=False):
            return "pain.002" in (etree.QName(element).namespace or "")
    except etree.XMLSyntaxError:
        return False
    return False


def parse(content: bytes) -> StatusReport:
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise Pain002Error(f"not well-formed XML: {exc}") from exc
    namespace = etree.QName(root).namespace or ""
    if etree.QName(root).localname != "Document" or "pain.002" not in namespace:
        raise Pain002Error("not a pain.002 payment status report")
    body = _child(root, "CstmrPmtStsRpt")
    if body is None:
        raise Pain002Error("missing CstmrPmtStsRpt")
    message_id = _text(body, "GrpHdr/MsgId")
    if not message_id:
        raise Pain002Error("missing GrpHdr/MsgId")
    group = _child(body, "OrgnlGrpInfAndSts")
    if group is None:
        raise Pain002Error("missing OrgnlGrpInfAndSts")
    report = StatusReport(message_id=message_id[:35], original_message_id=_text(group, "OrgnlMsgId")[:35])
    batches = _children(body, "OrgnlPmtInfAndSts")
    has_transactions = any(_children(b, "TxInfAndSts") for b in batches)
    if _text(group, "GrpSts") in REJECTED and not has_transactions:
        report.group_rejection = _reason(group)
        return report
    for batch in batches:
        transactions = _children(batch, "TxInfAndSts")
        if _text(batch, "PmtInfSts") in REJECTED and not transactions:
            report.group_rejection = _reason(batch)
            continue
        for tx in transactions:
            end_to_end_id = _text(tx, "OrgnlEndToEndId")
            if not end_to_end_id:
                raise Pain002Error("a transaction status has no OrgnlEndToEndId")
            status = _text(tx, "TxSts") or _text(batch, "PmtInfSts")
            if status in REJECTED:
                report.rejections.append(Rejection(end_to_end_id=end_to_end_id, reason_code=_reason(tx)[:32]))
            else:
                report.accepted += 1
    return report
