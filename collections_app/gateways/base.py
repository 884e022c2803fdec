"""The adapter interface every card gateway implements.

Card numbers and CVVs never reach Encaisse: the pay page's card form posts to the
gateway side, which answers with a single-use or reusable token. Everything here works on
tokens and gateway references only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class CardDetails:
    """What a gateway tells us about a tokenised card: never the number."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class GatewayResult:
    status: str  # "succeeded" | "failed" | "requires_action" | "pending"
    reference: str = ""
    decline_code: str = ""  # e.g. insufficient_funds, expired_card, do_not_honor, lost_card, processing_error
    message: str = ""
    action_url: str = ""  # 3-D Secure challenge to send the payer to
    card: CardDetails | None = None
    raw: dict = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class PaymentGateway(Protocol):
    name: str
    # Where the pay page's card form posts (the gateway's side, never ours). The gateway
    # tokenises the card and posts back {token} or {error} to the return_url it was given.
    checkout_url: str

    def authorize(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str,
                  description: str = "", return_url: str = "") -> GatewayResult:
        """Authorise a payment on a card token; may answer requires_action (3-D Secure)."""

    def capture(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        """Capture an authorised payment."""

    def charge_saved_card(self, *, token: str, amount: Decimal, currency: str, idempotency_key: str,
                          description: str = "") -> GatewayResult:
        """Merchant-initiated charge on a saved card (instalments, retries): no 3-D Secure."""

    def refund(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> GatewayResult:
        """Refund all or part of a captured payment."""

    def status(self, *, reference: str) -> GatewayResult:
        """Current status of a payment at the gateway."""

    def action_result(self, *, result: str) -> GatewayResult:
        """The outcome of a payer action (3-D Secure) from what the gateway's return carried."""

    def card_details(self, *, token: str) -> CardDetails | None:
        """Brand, last 4 and expiry of a tokenised card."""
