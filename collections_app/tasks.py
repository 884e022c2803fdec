"""django-q2 entry points of the collections core; each calls one service."""
from collections_app.api.idempotency import idempotency_records_purge
from collections_app.services import payment_requests_expire_due


def expire_payment_requests() -> int:
    return payment_requests_expire_due()


def purge_idempotency_keys() -> int:
    return idempotency_records_purge()
