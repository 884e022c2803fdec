"""Payment gateway adapters. `get_gateway()` returns the configured one (sandbox by default)."""
from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from collections_app.gateways.base import GatewayResult, PaymentGateway  # noqa: F401


def get_gateway(name: str | None = None) -> PaymentGateway:
    gateways = getattr(settings, "PAYMENT_GATEWAYS", {"sandbox": "collections_app.gateways.sandbox.SandboxGateway"})
    name = name or getattr(settings, "PAYMENT_GATEWAY", "sandbox")
    return import_string(gateways[name])()
