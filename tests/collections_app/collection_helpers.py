"""Plans collected by direct debit or saved card, and pain.002 reports as banks send them."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from xml.sax.saxutils import escape

from collections_app import services
from collections_app.gateways.sandbox import tokenize
from collections_app.models import Customer, InstallmentPlan, Mandate
from tests.factories import make_request

DEBTOR_IBANS = ["FR1420041010050500013M02606", "DE89370400440532013000", "FR7630001007941234567890185",
                "BE68539007547034", "NL91ABNA0417164300", "IT60X0542811101000000123456"]


def sepa_plan(customer: Customer, *, first_due: dt.date, count: int = 3, total: str = "90.00",
              mandate: Mandate | None = None, iban: str = DEBTOR_IBANS[0]) -> InstallmentPlan:
    request = make_request(customer, amount=total)
    mandate = mandate or services.mandate_create(creditor=customer.creditor, customer=customer,
                                                 holder_name=customer.name, iban=iban)
    schedule = services.instalment_schedule_build(total=Decimal(total), count=count, first_due_date=first_due)
    return services.installment_plan_create(customer=customer, method="sepa_dd", payment_request=request,
                                            mandate=mandate, schedule=schedule)


def card_plan(customer: Customer, *, first_due: dt.date, number: str = "4242424242424242", count: int = 3,
              total: str = "90.00", exp_year: int = 2030, exp_month: int = 12) -> InstallmentPlan:
    request = make_request(customer, amount=total)
    token = tokenize(number=number, exp_month=exp_month, exp_year=exp_year, cvc="123", today=dt.date(2026, 1, 1))
    card = services.saved_card_create(customer=customer, gateway="sandbox", gateway_token=token, brand="visa",
                                      last4=number[-4:], exp_month=exp_month, exp_year=exp_year)
    schedule = services.instalment_schedule_build(total=Decimal(total), count=count, first_due_date=first_due)
    return services.installment_plan_create(customer=customer, method="card", payment_request=request,
                                            saved_card=card, schedule=schedule)


def pain002(*, message_id: str, original_message_id: str, rejected: list[tuple[str, str]] = (),
            accepted: list[str] = (), group_reject: str | None = None, version: str = "pain.002.001.03") -> bytes:
    """A pain.002 status report: (end-to-end id, reason code) per rejected transaction."""
    txs = []
    for e2e, code in rejected:
        txs.append(f"<TxInfAndSts><StsId>S-{escape(e2e)}</StsId><OrgnlEndToEndId>{escape(e2e)}</OrgnlEndToEndId>"
                   f"<TxSts>RJCT</TxSts><StsRsnInf><Rsn><Cd>{escape(code)}</Cd></Rsn></StsRsnInf></TxInfAndSts>")
    for e2e in accepted:
        txs.append(f"<TxInfAndSts><OrgnlEndToEndId>{escape(e2e)}</OrgnlEndToEndId><TxSts>ACCP</TxSts></TxInfAndSts>")
    group_status = "RJCT" if group_reject else ("PART" if rejected and accepted else ("RJCT" if rejected else "ACCP"))
    group_reason = (f"<StsRsnInf><Rsn><Cd>{group_reject}</Cd></Rsn></StsRsnInf>" if group_reject else "")
    batches = "" if group_reject else (
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{escape(original_message_id)}</OrgnlPmtInfId>{''.join(txs)}"
        f"</OrgnlPmtInfAndSts>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>'
            f'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:{version}"><CstmrPmtStsRpt>'
            f"<GrpHdr><MsgId>{escape(message_id)}</MsgId><CreDtTm>2026-12-22T08:00:00</CreDtTm>"
            f"<InitgPty><Nm>BANQUE</Nm></InitgPty></GrpHdr>"
            f"<OrgnlGrpInfAndSts><OrgnlMsgId>{escape(original_message_id)}</OrgnlMsgId>"
            f"<OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId><GrpSts>{group_status}</GrpSts>{group_reason}"
            f"</OrgnlGrpInfAndSts>{batches}</CstmrPmtStsRpt></Document>").encode()
