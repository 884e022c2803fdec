"""What a failure's reason code means: SEPA R-transaction codes (ISO 20022 ExternalStatusReason /
ExternalReturnReason, as used by the EPC rulebook) and the gateway's card decline codes."""
from __future__ import annotations

from django.utils.translation import gettext, gettext_lazy as _

SEPA_REASONS = {
    "AC01": _("Account identifier incorrect (invalid IBAN)"),
    "AC04": _("Account closed"),
    "AC06": _("Account blocked for direct debits"),
    "AC13": _("Debtor account is a consumer account (B2B not allowed)"),
    "AG01": _("Direct debits forbidden on this account"),
    "AG02": _("Invalid file format or operation code"),
    "AM04": _("Insufficient funds"),
    "AM05": _("Duplicate collection"),
    "BE05": _("Creditor identifier unknown"),
    "CNOR": _("Creditor bank not registered"),
    "DNOR": _("Debtor bank not registered"),
    "FF01": _("Invalid file format"),
    "MD01": _("No mandate"),
    "MD02": _("Missing mandate data"),
    "MD06": _("Refund requested by the debtor"),
    "MD07": _("Debtor deceased"),
    "MS02": _("Refused by the debtor"),
    "MS03": _("Reason not specified"),
    "RC01": _("Bank identifier (BIC) incorrect"),
    "RR01": _("Missing debtor account or identification (regulatory)"),
    "RR02": _("Missing debtor name or address (regulatory)"),
    "RR03": _("Missing creditor name or address (regulatory)"),
    "RR04": _("Regulatory reason"),
    "SL01": _("Specific service offered by the debtor bank"),
}

CARD_REASONS = {
    "insufficient_funds": _("Insufficient funds on the card"),
    "processing_error": _("Processing error at the card network"),
    "expired_card": _("The card has expired"),
    "lost_card": _("The card was reported lost"),
    "stolen_card": _("The card was reported stolen"),
    "do_not_honor": _("Declined by the card issuer"),
    "authentication_failed": _("3-D Secure authentication failed"),
    "authentication_required": _("The card issuer requires the cardholder to authenticate"),
    "card_unavailable": _("No usable saved card"),
}

INTERNAL_REASONS = {
    "MANDATE_INACTIVE": _("The mandate is cancelled or expired"),
    "CURRENCY_NOT_EUR": _("SEPA direct debits are in euros only"),
}


def reason_meaning(code: str) -> str:
    label = SEPA_REASONS.get(code) or CARD_REASONS.get(code) or INTERNAL_REASONS.get(code)
    return str(label) if label else gettext("Unknown reason code %(code)s") % {"code": code}
