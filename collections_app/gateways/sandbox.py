"""The built-in sandbox gateway: behaves like a real card gateway, driven by test card numbers.

| card number          | outcome                                     |
|----------------------|---------------------------------------------|
| 4242 4242 4242 4242  | succeeds                                    |
| 5555 5555 5555 4444  | succeeds (Mastercard)                       |
| 4000 0000 0000 9995  | declined: insufficient_funds (retryable)    |
| 4000 0000 0000 0069  | declined: expired_card                      |
| 4000 0000 0000 0002  | declined: do_not_honor                      |
| 4000 0000 0000 9987  | declined: lost_card                         |
| 4000 0000 0000 0119  | declined: processing_error (retryable)      |
| 4000 0000 0000 3220  | 3-D Secure challenge, then succeeds         |
| 4000 0000 0000 3063  | 3-D Secure challenge, then declined         |

Any expiry in the future and any 3-digit CVC. Tokenisation happens on the gateway side
(`tokenize`), and the token only encodes the test behaviour plus brand/last4/expiry: the
sandbox keeps no card number anywhere, like a real gateway's vault as seen from us.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from collections_app.gateways.base import CardDetails, GatewayResult

TEST_CARDS: dict[str, str] = {
    "4242424242424242": "success",
    "5555555555554444": "success",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000002": "do_not_honor",
    "4000000000009987": "lost_card",
    "4000000000000119": "processing_error",
    "4000000000003220": "3ds_success",
    "4000000000003063": "3ds_failure",
}
BEHAVIOURS = sorted(set(TEST_CARDS.values()))
DECLINE_MESSAGES = {
    "insufficient_funds": "Insufficient funds.",
    "expired_card": "The card has expired.",
    "do_not_honor": "The bank declined the payment (do not honour).",
    "lost_card": "The card was reported lost.",
    "processing_error": "A processing error occurred; try again.",
    "incorrect_number": "The card number is not a test card of the sandbox.",
    "authentication_failed": "3-D Secure authentication failed.",
}


class SandboxError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        checksum += d
    return checksum % 10 == 0


def _brand(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4]) <= 2720:
        return "mastercard"
    if number[:2] in {"34", "37"}:
        return "amex"
    return "card"


def _sign(data: bytes) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), data, hashlib.sha256).hexdigest()[:24]


def _encode(kind: str, payload: dict | list) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{kind}_{body}.{_sign(body.encode())}"


def _decode(kind: str, value: str):
    try:
        prefix, rest = value.split("_", 1)
        body, signature = rest.rsplit(".", 1)
    except ValueError as exc:
        raise SandboxError("invalid_token", "Unknown token.") from exc
    if prefix != kind or not hmac.compare_digest(signature, _sign(body.encode())):
        raise SandboxError("invalid_token", "Unknown token.")
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def tokenize(*, number: str, exp_month: int, exp_year: int, cvc: str, today: dt.date | None = None) -> str:
    """Gateway side: turn card data into a token. The card data is dropped right here."""
    number = "".join(ch for ch in number if ch.isdigit())
    if not (12 <= len(number) <= 19) or not luhn_ok(number):
        raise SandboxError("incorrect_number", "The card number is not valid.")
    if not (cvc.isdigit() and len(cvc) in (3, 4)):
        raise SandboxError("incorrect_cvc", "The security code is not valid.")
    if not 1 <= exp_month <= 12:
        raise SandboxError("invalid_expiry", "The expiry month is not valid.")
    if exp_year < 100:
        exp_year += 2000
    today = today or dt.date.today()
    if (exp_year, exp_month) < (today.year, today.month):
        raise SandboxError("expired_card", DECLINE_MESSAGES["expired_card"])
    behaviour = TEST_CARDS.get(number)
    if behaviour is None:
        raise SandboxError("incorrect_number", DECLINE_MESSAGES["incorrect_number"])
    # Compact (a list, the behaviour by index) so that tokens fit SavedCard.gateway_token.
    return _encode("tok", [BEHAVIOURS.index(behaviour), _brand(number), number[-4:], exp_month, exp_year,
                           secrets.token_hex(4)])


def _card_data(token: str) -> dict:
    b, br, l4, m, y, _n = _decode("tok", token)
    return {"b": BEHAVIOURS[b], "br": br, "l4": l4, "m": m, "y": y}


class SandboxGateway:
    name = "sandbox"
    checkout_url = "/sandbox-gateway/checkout/"

    def card_details(self, *, token: str) -> CardDetails | None:
        data = _card_data(token)
        return CardDetails(brand=data["br"], last4=data["l4"], exp_month=data["m"], exp_year=data["y"])

    def _outcome(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str,
                 allow_challenge: bool, return_url: str = "") -> GatewayResult:
        data = _card_data(token)
        card = CardDetails(brand=data["br"], last4=data["l4"], exp_month=data["m"], exp_year=data["y"])
        behaviour = data["b"]
        # Same idempotency key, same reference: a replayed call is the same payment.
        reference = "sbx_" + hashlib.sha256(f"{idempotency_key}".encode()).hexdigest()[:20]
        if behaviour.startswith("3ds") and allow_challenge:
            _ledger_record(reference, "requires_action")
            pending = _encode("ch", {"r": reference, "b": behaviour, "a": str(amount), "c": currency,
                                     "u": return_url})
            return GatewayResult(status="requires_action", reference=reference, card=card,
                                 action_url=f"/sandbox-gateway/3ds/{pending}/")
        if behaviour in ("success", "3ds_success"):
            _ledger_record(reference, "succeeded")
            return GatewayResult(status="succeeded", reference=reference, card=card)
        code = "authentication_failed" if behaviour == "3ds_failure" else behaviour
        _ledger_record(reference, "failed", code)
        return GatewayResult(status="failed", reference=reference, decline_code=code,
                             message=DECLINE_MESSAGES[code], card=card)

    def authorize(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str,
                  description: str = "", return_url: str = "") -> GatewayResult:
        return self._outcome(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key,
                             allow_challenge=True, return_url=return_url)

    def complete_challenge(self, *, challenge: str, approve: bool) -> GatewayResult:
        """Gateway side: the payer answered the 3-D Secure challenge."""
        data = _decode("ch", challenge)
        if approve and data["b"] == "3ds_success":
            _ledger_record(data["r"], "succeeded")
            return GatewayResult(status="succeeded", reference=data["r"], raw={"return_url": data["u"]})
        _ledger_record(data["r"], "failed", "authentication_failed")
        return GatewayResult(status="failed", reference=data["r"], decline_code="authentication_failed",
                             message=DECLINE_MESSAGES["authentication_failed"], raw={"return_url": data["u"]})

    def action_result(self, *, result: str) -> GatewayResult:
        """Read the signed outcome the 3-D Secure page sent back with the payer."""
        data = _decode("res", result)
        if data["s"] == "succeeded":
            return GatewayResult(status="succeeded", reference=data["r"])
        return GatewayResult(status="failed", reference=data["r"], decline_code=data["d"],
                             message=DECLINE_MESSAGES.get(data["d"], ""))

    def capture(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        return GatewayResult(status="succeeded", reference=reference)

    def charge_saved_card(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str,
                          description: str = "") -> GatewayResult:
        return self._outcome(token=token, amount=amount, currency=currency, idempotency_key=idempotency_key,
                             allow_challenge=False)

    def refund(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        return GatewayResult(status="succeeded",
                             reference="sbr_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20])

    def status(self, *, reference: str) -> GatewayResult:
        state = cache.get(LEDGER_PREFIX + reference)
        if state is None:
            return GatewayResult(status="failed", reference=reference, decline_code="processing_error",
                                 message="unknown payment")
        status, code = state
        return GatewayResult(status=status, reference=reference, decline_code=code,
                             message=DECLINE_MESSAGES.get(code, "") if code else "")


LEDGER_PREFIX = "sandbox-gateway:"


def _ledger_record(reference: str, status: str, code: str = "") -> None:
    """The sandbox's own memory of each payment (the 'gateway side'), in the shared cache, so
    that status() answers like a real gateway: requires_action until the payer answers 3-D Secure."""
    cache.set(LEDGER_PREFIX + reference, (status, code), timeout=30 * 86400)


def challenge_result_encode(result: GatewayResult) -> str:
    """Gateway side: the signed outcome carried back to the merchant's return URL."""
    return _encode("res", {"r": result.reference, "s": result.status, "d": result.decline_code})
