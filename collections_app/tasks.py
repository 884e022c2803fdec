"""django-q2 entry points of the collections core; each calls one service."""
from collections_app.api.idempotency import idempotency_records_purge
from collections_app.services import payment_requests_expire_due, recurring_plans_extend


def expire_payment_requests() -> int:
    return payment_requests_expire_due()


def purge_idempotency_keys() -> int:
    return idempotency_records_purge()


def extend_recurring_plans() -> int:
    return recurring_plans_extend()
