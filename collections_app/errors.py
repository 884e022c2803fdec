"""Domain errors: raised by services, turned into JSON errors by the API and messages by the admin."""
from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    http_status = 409

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class InvalidTransition(DomainError):
    code = "invalid_transition"


class ValidationFailed(DomainError):
    code = "validation_error"
    http_status = 400


class AmountExceedsBalance(ValidationFailed):
    code = "amount_exceeds_balance"


class Conflict(DomainError):
    code = "conflict"
