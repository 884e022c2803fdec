"""Money: Decimal amounts with an ISO 4217 currency. The one rounding helper lives here."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 currencies accepted by the platform, with their minor units.
CURRENCY_EXPONENTS: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "DKK": 2, "NOK": 2, "PLN": 2,
    "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "CAD": 2, "AUD": 2, "JPY": 0, "XOF": 0,
    "XPF": 0, "MAD": 2, "TND": 3,
}
CURRENCY_CHOICES = [(code, code) for code in sorted(CURRENCY_EXPONENTS)]
MAX_DIGITS = 14
DECIMAL_PLACES = 2  # storage precision (3-decimal currencies are rounded to cents on storage)


class MoneyError(ValueError):
    pass


def is_known_currency(code: str) -> bool:
    return code in CURRENCY_EXPONENTS


def quantum(currency: str) -> Decimal:
    exponent = min(CURRENCY_EXPONENTS.get(currency, 2), DECIMAL_PLACES)
    return Decimal(1).scaleb(-exponent)


def round_money(amount: Decimal | int | str, currency: str = "EUR") -> Decimal:
    """Round half up to the currency's minor unit. The only rounding helper of the code base."""
    if isinstance(amount, float):
        raise MoneyError("money is never a float; pass a Decimal or a string")
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    except InvalidOperation as exc:
        raise MoneyError(f"{amount!r} is not an amount") from exc
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite amount")
    return value.quantize(quantum(currency), rounding=ROUND_HALF_UP)


def split_evenly(total: Decimal, parts: int, currency: str = "EUR") -> list[Decimal]:
    """Split into `parts` amounts that add up exactly; the first one carries the remainder."""
    if parts < 1:
        raise MoneyError("parts must be at least 1")
    total = round_money(total, currency)
    q = quantum(currency)
    base = (total / parts).quantize(q, rounding="ROUND_DOWN")
    amounts = [base] * parts
    amounts[0] = total - base * (parts - 1)
    return amounts


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not is_known_currency(self.currency):
            raise MoneyError(f"unknown currency {self.currency!r}")
        object.__setattr__(self, "amount", round_money(self.amount, self.currency))

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
