"""Pay page: GET /pay/<token>/ (rate-limit check on the cache, token lookup, invoices,
reservations, options, locale, full template) against a bare Django view returning a tiny
HTML page, both served by the same gunicorn in the same run. Goal: at least half the bare
view's throughput."""
from __future__ import annotations

from bench.httpload import gunicorn, load

NAME = "paypage"
DESCRIPTION = "GET /pay/<token>/ vs a bare Django view under gunicorn (req/s, p50/p99)"


def run(ctx) -> dict:
    from tests.factories import CreditorFactory, CustomerFactory, make_request

    creditor = CreditorFactory()
    customer = CustomerFactory(creditor=creditor, locale="fr")
    request = make_request(customer, amount="180.00", invoices=3)
    requests = ctx.scale(4000, 400)
    concurrency = 4
    workers = 2
    pay_path = f"/pay/{request.token}/"

    with gunicorn(workers=workers) as base:
        for path in (pay_path, "/bench/bare-django/"):  # warm imports, templates, connections
            load(lambda c, i, p=path: c.get(base + p), requests=40, concurrency=2, expect=200)
        bare = load(lambda c, i: c.get(f"{base}/bench/bare-django/"), requests=requests,
                    concurrency=concurrency, expect=200)
        page = load(lambda c, i: c.get(base + pay_path), requests=requests, concurrency=concurrency, expect=200)
    return {
        "ratio": page["rps"] / bare["rps"],
        "ratio_meaning": "pay page requests per second / bare Django view requests per second (goal >= 0.5)",
        "figures": {
            "paypage_rps": page["rps"], "paypage_p50_ms": page["p50_ms"], "paypage_p99_ms": page["p99_ms"],
            "bare_django_rps": bare["rps"], "bare_p50_ms": bare["p50_ms"], "bare_p99_ms": bare["p99_ms"],
            "requests_each": requests, "concurrency": concurrency, "gunicorn_workers": workers,
        },
    }
