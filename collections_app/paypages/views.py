"""The debtor's pages: /pay/<token>/... and /portal/<token>/.

A wrong token raises Http404, the very page any missing URL gets: nothing tells a guesser
that a token format is close. Every public view is rate limited per client IP.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import DecimalField, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from collections_app.errors import DomainError
from collections_app.gateways import get_gateway
from collections_app.models import (
    Creditor,
    Customer,
    InstallmentPlan,
    Invoice,
    Payment,
    PaymentMethod,
    PaymentRequest,
)
from collections_app.paypages import qr, services as pp
from collections_app.paypages.models import PaySubmission
from collections_app.paypages.ratelimit import client_ip, rate_limited
from collections_app.selectors import transfer_beneficiary

LANGUAGES = {code for code, _name in settings.LANGUAGES}
# The landing page is the one opened from every email, SMS and letter: it is kept rendered
# while nothing it shows has changed (the cache key says what it shows), at most this long.
PAGE_CACHE_SECONDS = 300


def decline_message(code: str) -> str:
    # Lazy: the page activates the debtor's language after the context is built.
    messages = {
        "insufficient_funds": gettext_lazy("Insufficient funds on this card."),
        "expired_card": gettext_lazy("This card has expired."),
        "do_not_honor": gettext_lazy("Your bank declined the payment."),
        "lost_card": gettext_lazy("This card cannot be used."),
        "processing_error": gettext_lazy("A processing error occurred; please try again."),
        "incorrect_number": gettext_lazy("The card number is not valid."),
        "incorrect_cvc": gettext_lazy("The security code is not valid."),
        "invalid_expiry": gettext_lazy("The expiry date is not valid."),
        "authentication_failed": gettext_lazy("The 3-D Secure authentication failed."),
        "authentication_abandoned": gettext_lazy("The 3-D Secure step was not completed in time."),
        "amount_exceeds_balance": gettext_lazy("The amount is above the remaining balance."),
    }
    return messages.get(code, gettext_lazy("The payment was declined."))


# --------------------------------------------------------------------------- helpers


def _language(request, locale: str, default_locale: str) -> tuple[str, bool]:
    """An explicit choice (?lang= or the language cookie) wins over the customer's locale."""
    chosen = request.GET.get("lang")
    if chosen in LANGUAGES:
        return chosen, True
    cookie = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
    if cookie in LANGUAGES:
        return cookie, False
    for candidate in (locale, default_locale):
        if candidate in LANGUAGES:
            return candidate, False
    return settings.LANGUAGE_CODE, False


def _page(request, template: str, context: dict | Callable[[], dict], *, customer: Customer, status: int = 200,
          cache_version: str = "") -> HttpResponse:
    """Render in the debtor's language. With `cache_version` (everything the page shows,
    summed up), the HTML is kept in the cache and served again while nothing changed."""
    language, explicit = _language(request, customer.locale, customer.creditor.default_locale)
    translation.activate(language)
    request.LANGUAGE_CODE = language
    key = _page_cache_key(template, language, cache_version) if cache_version else ""
    if callable(context):
        context = context()
    context = {**context, "customer": customer, "creditor": customer.creditor, "language": language,
               "path": request.path}
    response = render(request, template, context, status=status)
    if key:
        cache.set(key, response.content, timeout=PAGE_CACHE_SECONDS)
    return _language_cookie(response, language, explicit)


def _page_cache_key(template: str, language: str, version: str) -> str:
    return "paypage:" + hashlib.sha256(f"{template}|{language}|{version}".encode()).hexdigest()


def _language_cookie(response: HttpResponse, language: str, explicit: bool) -> HttpResponse:
    if explicit:
        response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 86400, samesite="Lax")
    return response


def _reserved_subquery():
    reserved = (Payment.objects.filter(payment_request=OuterRef("pk"), status__in=pp.IN_FLIGHT)
                .values("payment_request").annotate(total=Sum("amount")).values("total"))
    return Coalesce(Subquery(reserved), Value(Decimal("0.00")), output_field=DecimalField())


def _request_or_404(request, token: str) -> PaymentRequest:
    # Tokens are 43 URL-safe characters; anything else is not even looked up.
    if not pp.NONCE_RE.match(token):
        raise Http404
    # One query: the request, its creditor and customer, and what payments in flight reserve.
    try:
        payment_request = (PaymentRequest.objects.select_related("creditor", "customer")
                           .annotate(reserved_amount=_reserved_subquery()).get(token=token))
    except PaymentRequest.DoesNotExist:
        raise Http404 from None
    payment_request.customer.creditor = payment_request.creditor
    _activate_language(request, payment_request.customer)
    return payment_request


def _activate_language(request, customer: Customer) -> None:
    # Before any domain call: its error messages are translated when raised.
    translation.activate(_language(request, customer.locale, customer.creditor.default_locale)[0])


def _submission_or_404(payment_request: PaymentRequest, nonce: str) -> PaySubmission:
    submission = (PaySubmission.objects.select_related("payment", "mandate", "plan", "saved_card")
                  .filter(payment_request=payment_request, nonce=nonce).first())
    if submission is None:
        raise Http404
    return submission


def _closed_page(request, payment_request: PaymentRequest, state: str) -> HttpResponse:
    return _page(request, "paypages/closed.html", {"request_obj": payment_request, "state": state},
                 customer=payment_request.customer)


def _open_request(request, token: str, *,
                  method: str | None = None) -> tuple[PaymentRequest, dict, HttpResponse | None]:
    """The request of a payment step, its base context, and the page to show instead when it is
    no longer open. A method the request does not offer is a 404."""
    payment_request = _request_or_404(request, token)
    state = pp.pay_page_state(payment_request)
    if state != "open":
        return payment_request, {}, _closed_page(request, payment_request, state)
    context = _base_context(payment_request)
    if method is not None and method not in context["options"].methods:
        raise Http404
    return payment_request, context, None


def _base_context(payment_request: PaymentRequest) -> dict:
    balance = pp.available_balance(payment_request, reserved=getattr(payment_request, "reserved_amount", None))
    return {"request_obj": payment_request, "balance": balance,
            "options": pp.pay_options(payment_request, balance=balance)}


def _errors(exc: DomainError) -> dict[str, str]:
    return {exc.field or "__all__": exc.message}


def _submission_redirect(payment_request: PaymentRequest, submission: PaySubmission) -> HttpResponseRedirect:
    token = payment_request.token
    if submission.status == PaySubmission.Status.AWAITING_CARD:
        return HttpResponseRedirect(reverse("paypages:card-entry", args=[token, submission.nonce]))
    if submission.status == PaySubmission.Status.AWAITING_ACTION and submission.action_url:
        return HttpResponseRedirect(submission.action_url)
    return HttpResponseRedirect(reverse("paypages:result", args=[token, submission.nonce]))


# --------------------------------------------------------------------------- pay page


@require_GET
@rate_limited("pay")
def pay(request, token: str):
    if not pp.NONCE_RE.match(token):
        raise Http404
    head = _pay_page_head(token)
    if head is None:
        raise Http404
    if pp.pay_state(status=head["status"], expires_at=head["expires_at"]) != "open":
        payment_request = _request_or_404(request, token)
        return _closed_page(request, payment_request, pp.pay_page_state(payment_request))
    # Everything the page shows, summed up: when none of it changed, the page is served again
    # as rendered, after this one small query (the full page needs three and a template).
    version = "|".join(str(head[k]) for k in ("pk", "updated_at", "reserved_amount", "invoices_updated_at",
                                              "creditor__updated_at", "customer__updated_at", "running_plans"))
    language, explicit = _language(request, head["customer__locale"], head["creditor__default_locale"])
    html = cache.get(_page_cache_key("paypages/pay.html", language, version))
    if html is not None:
        translation.activate(language)
        return _language_cookie(HttpResponse(html), language, explicit)
    payment_request = _request_or_404(request, token)
    return _page(request, "paypages/pay.html",
                 lambda: {**_base_context(payment_request),
                          "invoices": list(payment_request.invoices.order_by("due_date", "pk"))},
                 customer=payment_request.customer, cache_version=version)


_HEAD_COLUMNS = ("pk", "status", "expires_at", "updated_at", "creditor__updated_at", "customer__updated_at",
                 "customer__locale", "creditor__default_locale", "reserved_amount", "invoices_updated_at",
                 "running_plans")


@functools.cache
def _head_sql() -> str:
    # Hand-written because it runs on every view of the most visited page: building the same
    # query with the ORM costs more than running it. Table names come from the models.
    request, payment, invoice = (m._meta.db_table for m in (PaymentRequest, Payment, Invoice))
    creditor, customer = Creditor._meta.db_table, Customer._meta.db_table
    m2m = PaymentRequest._meta.get_field("invoices")
    through, request_col, invoice_col = m2m.m2m_db_table(), m2m.m2m_column_name(), m2m.m2m_reverse_name()
    in_flight = ", ".join(f"'{status}'" for status in pp.IN_FLIGHT)
    plan, running = InstallmentPlan._meta.db_table, ", ".join(f"'{status}'" for status in pp.PLAN_RUNNING)
    return f"""
        SELECT r.id, r.status, r.expires_at, r.updated_at, cr.updated_at, cu.updated_at, cu.locale,
               cr.default_locale,
               COALESCE((SELECT SUM(p.amount) FROM {payment} p
                         WHERE p.payment_request_id = r.id AND p.status IN ({in_flight})), 0),
               (SELECT MAX(i.updated_at) FROM {invoice} i JOIN {through} t ON t.{invoice_col} = i.id
                WHERE t.{request_col} = r.id),
               (SELECT COUNT(*) FROM {plan} pl WHERE pl.payment_request_id = r.id AND pl.status IN ({running}))
        FROM {request} r JOIN {creditor} cr ON cr.id = r.creditor_id JOIN {customer} cu ON cu.id = r.customer_id
        WHERE r.token = %s"""


def _pay_page_head(token: str) -> dict | None:
    """What decides the landing page's content, in one small query."""
    with connection.cursor() as cursor:
        cursor.execute(_head_sql(), [token])
        row = cursor.fetchone()
    if row is None:
        return None
    head = dict(zip(_HEAD_COLUMNS, row, strict=True))
    expires_at = head["expires_at"]
    if isinstance(expires_at, str):  # SQLite hands datetimes back as text, or naive (stored in UTC)
        expires_at = parse_datetime(expires_at)
    if expires_at is not None and timezone.is_naive(expires_at):
        expires_at = timezone.make_aware(expires_at, dt.timezone.utc)
    head["expires_at"] = expires_at
    return head


# --------------------------------------------------------------------------- card


@require_http_methods(["GET", "POST"])
@rate_limited("pay")
def card(request, token: str):
    payment_request, context, closed = _open_request(request, token, method=PaymentMethod.CARD)
    if closed is not None:
        return closed
    errors: dict[str, str] = {}
    values = {"amount": str(context["balance"]), "save_card": False}
    if request.method == "POST":
        values = {"amount": request.POST.get("amount", ""), "save_card": request.POST.get("save_card") == "1"}
        count = request.POST.get("instalment_count")
        try:
            submission, _created = pp.card_checkout_start(
                payment_request=payment_request, nonce=request.POST.get("nonce", ""), amount=values["amount"],
                save_card=values["save_card"], instalment_count=int(count) if count and count.isdigit() else None,
                client_ip=client_ip(request))
            return _submission_redirect(payment_request, submission)
        except DomainError as exc:
            errors = _errors(exc)
    return _page(request, "paypages/card.html",
                 {**context, "errors": errors, "values": values, "nonce": pp.nonce_new()},
                 customer=payment_request.customer, status=400 if errors else 200)


@require_GET
@rate_limited("pay")
def card_entry(request, token: str, nonce: str):
    payment_request = _request_or_404(request, token)
    submission = _submission_or_404(payment_request, nonce)
    if submission.status != PaySubmission.Status.AWAITING_CARD:
        return _submission_redirect(payment_request, submission)
    state = pp.pay_page_state(payment_request)
    if state != "open":
        return _closed_page(request, payment_request, state)
    error = request.GET.get("error", "")
    return _page(request, "paypages/card_entry.html", {
        "request_obj": payment_request, "submission": submission, "gateway": get_gateway(),
        "return_url": reverse("paypages:card-return", args=[token, nonce]),
        "error": decline_message(error) if error else "",
        "schedule": _card_schedule(payment_request, submission),
    }, customer=payment_request.customer)


def _card_schedule(payment_request, submission):
    if submission.kind != PaySubmission.Kind.CARD_INSTALMENTS:
        return []
    try:
        return pp.instalment_preview(payment_request, count=submission.instalment_count, method=PaymentMethod.CARD,
                                     today=pp.customer_today(payment_request.customer))
    except DomainError:
        return []


@csrf_exempt  # posted back by the gateway's page; the 256-bit one-time nonce in the URL is the guard
@require_POST
@rate_limited("pay")
def card_return(request, token: str, nonce: str):
    payment_request = _request_or_404(request, token)
    submission = _submission_or_404(payment_request, nonce)
    card_token = request.POST.get("token", "")
    if not card_token:
        error = request.POST.get("error", "") or "processing_error"
        return HttpResponseRedirect(reverse("paypages:card-entry", args=[token, nonce]) + f"?error={error}")
    try:
        submission = pp.card_token_receive(submission=submission, card_token=card_token)
    except DomainError as exc:
        return _page(request, "paypages/result.html", {"request_obj": payment_request, "submission": submission,
                                                       "error": exc.message},
                     customer=payment_request.customer, status=409)
    return _submission_redirect(payment_request, submission)


@require_GET
@rate_limited("pay")
def card_complete(request, token: str, nonce: str):
    payment_request = _request_or_404(request, token)
    submission = _submission_or_404(payment_request, nonce)
    if submission.status == PaySubmission.Status.AWAITING_ACTION:
        try:
            submission = pp.card_challenge_complete(submission=submission, result=request.GET.get("result", ""))
        except (DomainError, ValueError):
            raise Http404 from None
    return _submission_redirect(payment_request, submission)


@require_GET
@rate_limited("pay")
def result(request, token: str, nonce: str):
    payment_request = _request_or_404(request, token)
    submission = _submission_or_404(payment_request, nonce)
    context = {**_base_context(payment_request), "submission": submission, "paid": payment_request.status == "paid",
               "decline": decline_message(submission.decline_code) if submission.decline_code else ""}
    if submission.mandate_id:
        context["debits"] = pp.sepa_debits(submission)
    if submission.plan_id:
        context["installments"] = list(submission.plan.installments.order_by("sequence"))
    return _page(request, "paypages/result.html", context, customer=payment_request.customer)


# --------------------------------------------------------------------------- SEPA direct debit


@sensitive_post_parameters("iban")
@require_http_methods(["GET", "POST"])
@rate_limited("pay")
def sepa(request, token: str):
    payment_request, context, closed = _open_request(request, token, method=PaymentMethod.SEPA_DD)
    if closed is not None:
        return closed
    source = request.POST if request.method == "POST" else request.GET
    count_raw = source.get("instalment_count", "")
    count = int(count_raw) if count_raw.isdigit() else None
    today = pp.customer_today(payment_request.customer)
    errors: dict[str, str] = {}
    schedule = []
    if count:
        try:
            schedule = pp.instalment_preview(payment_request, count=count, method=PaymentMethod.SEPA_DD, today=today)
        except DomainError as exc:
            errors, count = _errors(exc), None
    values = {"holder_name": payment_request.customer.name, "iban": "", "amount": str(context["balance"])}
    if request.method == "POST":
        values = {"holder_name": request.POST.get("holder_name", ""), "iban": request.POST.get("iban", ""),
                  "amount": request.POST.get("amount", "")}
        try:
            submission, _created = pp.sepa_mandate_sign(
                payment_request=payment_request, nonce=request.POST.get("nonce", ""),
                holder_name=values["holder_name"], iban=values["iban"], consent=request.POST.get("consent") == "1",
                amount=values["amount"] if not count else None, instalment_count=count,
                client_ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", ""), today=today)
            return HttpResponseRedirect(reverse("paypages:result", args=[token, submission.nonce]))
        except DomainError as exc:
            errors = _errors(exc)
    return _page(request, "paypages/sepa.html", {
        **context, "errors": errors, "values": values, "nonce": pp.nonce_new(), "instalment_count": count,
        "schedule": schedule, "first_debit_date": pp.sepa_first_debit_date(today=today),
        "prenotification_days": settings.SEPA_PRENOTIFICATION_DAYS,
    }, customer=payment_request.customer, status=400 if errors and request.method == "POST" else 200)


# --------------------------------------------------------------------------- bank transfer


@require_GET
@rate_limited("pay")
def transfer(request, token: str):
    payment_request, context, closed = _open_request(request, token, method=PaymentMethod.TRANSFER)
    if closed is not None:
        return closed
    beneficiary = transfer_beneficiary(payment_request=payment_request)
    return _page(request, "paypages/transfer.html", {
        **context, "beneficiary": beneficiary,
        # Groups of four, as printed on bank documents: easier to read out and to type.
        "iban_display": " ".join(beneficiary.iban[i:i + 4] for i in range(0, len(beneficiary.iban), 4)),
        "epc": qr.epc_available(payment_request),
    }, customer=payment_request.customer)


@require_GET
@rate_limited("qr")
def transfer_qr(request, token: str, fmt: str):
    payment_request = _request_or_404(request, token)
    if pp.pay_page_state(payment_request) != "open" or not qr.epc_available(payment_request):
        raise Http404
    body, content_type = qr.render(qr.epc_qr(payment_request), fmt)
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@rate_limited("qr")
def pay_link_qr(request, token: str, fmt: str):
    payment_request = _request_or_404(request, token)
    body, content_type = qr.render(qr.pay_link_qr(payment_request), fmt)
    return HttpResponse(body, content_type=content_type)


# --------------------------------------------------------------------------- instalments


@require_GET
@rate_limited("pay")
def instalments(request, token: str):
    payment_request, context, closed = _open_request(request, token)
    if closed is not None:
        return closed
    options = context["options"]
    if not options.instalments:
        raise Http404
    errors: dict[str, str] = {}
    schedule, count, method = [], None, request.GET.get("method", "")
    count_raw = request.GET.get("count", "")
    if count_raw:
        try:
            count = int(count_raw) if count_raw.isdigit() else 0
            schedule = pp.instalment_preview(payment_request, count=count, method=method,
                                             today=pp.customer_today(payment_request.customer))
        except DomainError as exc:
            errors = _errors(exc)
    return _page(request, "paypages/instalments.html", {
        **context, "errors": errors, "schedule": schedule, "count": count, "method": method,
        "nonce": pp.nonce_new(),
    }, customer=payment_request.customer, status=400 if errors else 200)


# --------------------------------------------------------------------------- customer portal


@require_http_methods(["GET", "POST"])
@rate_limited("portal")
def portal(request, token: str):
    if not pp.NONCE_RE.match(token):
        raise Http404
    customer = Customer.objects.select_related("creditor").filter(portal_token=token).first()
    if customer is None:
        raise Http404
    _activate_language(request, customer)
    errors: dict[str, str] = {}
    notice = ""
    if request.method == "POST":
        try:
            card_obj = pp.portal_card_remove(customer=customer, card_id=int(request.POST.get("card", "0") or 0))
            notice = _("The card ending in %(last4)s was removed.") % {"last4": card_obj.last4}
        except (DomainError, ValueError) as exc:
            errors = _errors(exc) if isinstance(exc, DomainError) else {"card": _("Unknown card.")}
    return _page(request, "paypages/portal.html", {**pp.portal_overview(customer), "errors": errors,
                                                   "notice": notice}, customer=customer)
