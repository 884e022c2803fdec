"""QR codes: the pay link (for paper letters) and the EPC069-12 "GiroCode" for bank transfers."""
from __future__ import annotations

import io

import segno
from segno import helpers

from collections_app.models import PaymentRequest
from collections_app.selectors import transfer_beneficiary

FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def pay_link_qr(payment_request: PaymentRequest) -> segno.QRCode:
    return segno.make(payment_request.pay_url, error="m")


def epc_available(payment_request: PaymentRequest) -> bool:
    """EPC QR codes carry euros only, to a known IBAN."""
    return payment_request.currency == "EUR" and bool(transfer_beneficiary(payment_request=payment_request).iban)


def epc_qr(payment_request: PaymentRequest) -> segno.QRCode:
    beneficiary = transfer_beneficiary(payment_request=payment_request)
    # The short reference goes in the unstructured remittance text: it is what the
    # reconciliation matches on, and banking apps show it to the payer as typed.
    return helpers.make_epc_qr(name=beneficiary.name[:70], iban=beneficiary.iban, amount=payment_request.amount_due,
                               text=beneficiary.reference, bic=beneficiary.bic or None)


def render(code: segno.QRCode, fmt: str) -> tuple[bytes, str]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown QR format {fmt!r}")
    out = io.BytesIO()
    if fmt == "png":
        code.save(out, kind="png", scale=8, border=4)
    else:
        code.save(out, kind="svg", scale=8, border=4, title="QR code")
    return out.getvalue(), FORMATS[fmt]
