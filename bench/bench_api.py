"""API: creating payment requests through POST /api/v1/payment-requests/ (API key auth,
idempotency key, validation, service, outbox event) against a bare DRF view that only parses
and validates a similar body, both served by the same gunicorn in the same run."""
from __future__ import annotations

import uuid

from bench.httpload import gunicorn, load

NAME = "api_payment_requests"
DESCRIPTION = "POST /api/v1/payment-requests/ vs a bare DRF view (req/s, p50/p99)"


def run(ctx) -> dict:
    from collections_app.api.auth import api_key_create
    from tests.factories import CreditorFactory, CustomerFactory

    creditor = CreditorFactory()
    customer = CustomerFactory(creditor=creditor)
    _key, raw = api_key_create(name=f"bench-{uuid.uuid4().hex[:6]}", creditor=creditor)
    run_id = uuid.uuid4().hex[:8]
    requests = ctx.scale(3000, 300)
    concurrency = 4

    def body(i: int) -> dict:
        return {"customer": customer.pk, "amount": "49.90", "reference": f"B-{run_id}-{i}"}

    with gunicorn(workers=2) as base:
        # warm both paths (imports, connections)
        load(lambda c, i: c.post(f"{base}/bench/bare-drf/", json=body(-1 - i)), requests=20, concurrency=2,
             expect=201)
        bare = load(lambda c, i: c.post(f"{base}/bench/bare-drf/", json=body(i)), requests=requests,
                    concurrency=concurrency, expect=201)
        headers = {"Authorization": f"Api-Key {raw}"}
        api = load(lambda c, i: c.post(f"{base}/api/v1/payment-requests/", json=body(i),
                                       headers={**headers, "Idempotency-Key": f"{run_id}-{i}"}),
                   requests=requests, concurrency=concurrency, expect=201)
    return {
        "ratio": api["rps"] / bare["rps"],
        "ratio_meaning": "API payment-request creations per second / bare DRF view requests per second",
        "figures": {
            "api_rps": api["rps"], "api_p50_ms": api["p50_ms"], "api_p99_ms": api["p99_ms"],
            "bare_drf_rps": bare["rps"], "bare_p50_ms": bare["p50_ms"], "bare_p99_ms": bare["p99_ms"],
            "requests_each": requests, "concurrency": concurrency, "gunicorn_workers": 2,
        },
    }
