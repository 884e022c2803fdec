"""What a debtor does on the hosted pay pages, as services on top of the domain core.

Card payments run in three steps so that no database lock is held while the gateway answers:
1. under the request's row lock, the payment is created: its amount is reserved against the
   balance (`payment_create`), so two payers racing can never collect more than is due;
2. the gateway is called with the submission's nonce as idempotency key;
3. the outcome is recorded (`payment_record_success` / `payment_record_failure`).
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from collections_app import business_days, payloads, services
from collections_app.errors import AmountExceedsBalance, InvalidTransition, ValidationFailed
from collections_app.gateways import GatewayResult, get_gateway
from collections_app.models import (
    Customer,
    InstallmentPlan,
    Mandate,
    Payment,
    PaymentMethod,
    PaymentRequest,
    SavedCard,
)
from collections_app.money import MoneyError, round_money
from collections_app.paypages.models import PaySubmission
from notifications.services import event_emit

ZERO = Decimal("0.00")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
PLAN_RUNNING = (InstallmentPlan.Status.ACTIVE, InstallmentPlan.Status.SUSPENDED)


def nonce_new() -> str:
    """A one-time form nonce: 256 random bits."""
    return secrets.token_urlsafe(32)


# --------------------------------------------------------------------------- what the page offers


@dataclass(frozen=True)
class PayOptions:
    methods: tuple[str, ...]
    allow_partial: bool
    min_partial_amount: Decimal
    instalment_methods: tuple[str, ...]
    instalment_counts: tuple[int, ...]
    min_instalment_amount: Decimal

    @property
    def instalments(self) -> bool:
        return bool(self.instalment_methods and self.instalment_counts)


def pay_options(payment_request: PaymentRequest, *, balance: Decimal | None = None) -> PayOptions:
    """The request's own settings, else the creditor's."""
    creditor = payment_request.creditor
    methods = tuple(m for m in (PaymentMethod.CARD, PaymentMethod.SEPA_DD, PaymentMethod.TRANSFER)
                    if m in payment_request.allowed_methods)
    allow_partial, min_partial = partial_rules(payment_request)
    allow_instalments = creditor.allow_instalments if payment_request.allow_instalments is None \
        else payment_request.allow_instalments
    balance = payment_request.amount_due if balance is None else balance
    counts: tuple[int, ...] = ()
    instalment_methods: tuple[str, ...] = ()
    # Instalments cover the whole balance: not once a part of it is paid or in flight, nor
    # when a plan (the debtor's or one an operator negotiated) already runs.
    if (allow_instalments and balance == payment_request.amount_due and payment_request.amount_paid == 0
            and not payment_request.instalment_plans.filter(status__in=PLAN_RUNNING).exists()):
        top = payment_request.max_instalments or creditor.max_instalments
        counts = tuple(n for n in range(2, min(top, 12) + 1) if balance / n >= creditor.min_instalment_amount)
        instalment_methods = tuple(m for m in (PaymentMethod.CARD, PaymentMethod.SEPA_DD)
                                   if m in methods and m in (creditor.instalment_methods or []))
    return PayOptions(methods=methods, allow_partial=allow_partial, min_partial_amount=min_partial,
                      instalment_methods=instalment_methods, instalment_counts=counts,
                      min_instalment_amount=creditor.min_instalment_amount)


IN_FLIGHT = (Payment.Status.PENDING, Payment.Status.PROCESSING)


def partial_rules(payment_request: PaymentRequest) -> tuple[bool, Decimal]:
    """May the debtor pay part, and at least how much (the request's settings, else the creditor's)."""
    creditor = payment_request.creditor
    allow = creditor.allow_partial_payments if payment_request.allow_partial is None else payment_request.allow_partial
    return bool(allow), payment_request.min_partial_amount or creditor.min_partial_amount


def available_balance(payment_request: PaymentRequest, *, reserved: Decimal | None = None) -> Decimal:
    """The balance minus what payments in flight have reserved (pass `reserved` when the
    caller already read it, e.g. annotated on the request)."""
    if reserved is None:
        reserved = services.payment_request_reserved_amount(payment_request)
    return max(ZERO, payment_request.amount_due - reserved)


def pay_page_state(payment_request: PaymentRequest, *, now: dt.datetime | None = None) -> str:
    """open, paid, cancelled or expired: what the page shows (expiry is read live, not only
    once the expiry job has run)."""
    return pay_state(status=payment_request.status, expires_at=payment_request.expires_at, now=now)


def pay_state(*, status: str, expires_at: dt.datetime | None, now: dt.datetime | None = None) -> str:
    if status == PaymentRequest.Status.PAID:
        return "paid"
    if status == PaymentRequest.Status.CANCELLED:
        return "cancelled"
    if status == PaymentRequest.Status.EXPIRED or (expires_at and expires_at <= (now or timezone.now())):
        return "expired"
    return "open"


def amount_check(payment_request: PaymentRequest, value: Any, *, balance: Decimal | None = None) -> Decimal:
    """The amount the debtor typed, or a field error saying what is allowed."""
    try:
        amount = round_money(str(value).strip().replace(",", ".").replace("\u00a0", "").replace(" ", ""),
                             payment_request.currency)
    except MoneyError as exc:
        raise ValidationFailed(_("Enter a valid amount."), field="amount") from exc
    if amount <= 0:
        raise ValidationFailed(_("The amount must be greater than zero."), field="amount")
    balance = available_balance(payment_request) if balance is None else balance
    if amount > balance:
        raise AmountExceedsBalance(
            _("The amount is above the remaining balance of %(balance)s %(currency)s.")
            % {"balance": balance, "currency": payment_request.currency}, field="amount")
    if amount < balance:
        allow_partial, minimum = partial_rules(payment_request)
        if not allow_partial:
            raise ValidationFailed(_("This request must be paid in full (%(balance)s %(currency)s).")
                                   % {"balance": balance, "currency": payment_request.currency}, field="amount")
        if amount < minimum:
            raise ValidationFailed(
                _("The minimum payment is %(minimum)s %(currency)s (or the full remaining balance).")
                % {"minimum": minimum, "currency": payment_request.currency}, field="amount")
    return amount


# --------------------------------------------------------------------------- instalments and SEPA dates


def sepa_first_debit_date(*, today: dt.date) -> dt.date:
    """The earliest collection date of a new SEPA Core debit signed today.

    SEPA Core: the file must reach the debtor's bank one TARGET2 business day before the
    collection date (D-1, FRST included since 2016); the file goes out on the next business
    day, hence at least two business days. The debtor is pre-notified SEPA_PRENOTIFICATION_DAYS
    calendar days ahead (14 in the rulebook unless agreed otherwise in the mandate terms)."""
    lead = business_days.add_business_days(today, 2)
    notice = today + dt.timedelta(days=settings.SEPA_PRENOTIFICATION_DAYS)
    return business_days.next_business_day(max(lead, notice))


def instalment_preview(payment_request: PaymentRequest, *, count: int, method: str,
                       today: dt.date) -> list[tuple[dt.date, Decimal]]:
    """The schedule the debtor confirms: by card the first instalment is taken today; by
    direct debit on the first possible collection date, later ones on business days."""
    options = pay_options(payment_request)
    if method not in options.instalment_methods:
        raise ValidationFailed(_("Instalments are not available with this payment method."), field="method")
    if count not in options.instalment_counts:
        raise ValidationFailed(_("Choose between %(low)s and %(high)s instalments.")
                               % {"low": min(options.instalment_counts, default=2),
                                  "high": max(options.instalment_counts, default=2)}, field="count")
    first = today if method == PaymentMethod.CARD else sepa_first_debit_date(today=today)
    schedule = services.instalment_schedule_build(total=payment_request.amount_due, count=count,
                                                  first_due_date=first, currency=payment_request.currency)
    if method == PaymentMethod.SEPA_DD:
        schedule = [(business_days.next_business_day(day), amount) for day, amount in schedule]
    return schedule


def customer_today(customer: Customer) -> dt.date:
    return business_days.local_today(customer.time_zone or "Europe/Paris")


# --------------------------------------------------------------------------- submissions (nonces)


def _submission_claim(*, nonce: str, payment_request: PaymentRequest, **fields: Any) -> tuple[PaySubmission, bool]:
    """Create the submission for this nonce, or find the one a first POST created."""
    if not NONCE_RE.match(nonce or ""):
        raise ValidationFailed(_("This form has expired; please try again."), field="nonce")
    try:
        with transaction.atomic():
            return PaySubmission.objects.create(nonce=nonce, payment_request=payment_request,
                                                currency=payment_request.currency, **fields), True
    except IntegrityError:
        existing = PaySubmission.objects.get(nonce=nonce)
        if existing.payment_request_id != payment_request.pk:
            raise ValidationFailed(_("This form has expired; please try again."), field="nonce") from None
        return existing, False


def _replayed(nonce: str, payment_request: PaymentRequest) -> PaySubmission | None:
    """A submission this nonce already made: a replay gets it back before any check, since
    the first submission may have changed what the checks see (the balance)."""
    return PaySubmission.objects.filter(nonce=nonce, payment_request=payment_request).first()


def _check_open(payment_request: PaymentRequest) -> None:
    if pay_page_state(payment_request) != "open":
        raise InvalidTransition(_("This payment request can no longer be paid."))


@transaction.atomic
def card_checkout_start(*, payment_request: PaymentRequest, nonce: str, amount: Any = None,
                        save_card: bool = False, instalment_count: int | None = None,
                        client_ip: str | None = None) -> tuple[PaySubmission, bool]:
    """Step 1 of a card payment: what to pay is checked and kept; the card form comes next."""
    previous = _replayed(nonce, payment_request)
    if previous is not None:
        return previous, False
    _check_open(payment_request)
    if instalment_count:
        schedule = instalment_preview(payment_request, count=instalment_count, method=PaymentMethod.CARD,
                                      today=customer_today(payment_request.customer))
        amount, kind, save_card = schedule[0][1], PaySubmission.Kind.CARD_INSTALMENTS, True
    else:
        amount, kind = amount_check(payment_request, amount), PaySubmission.Kind.CARD
    return _submission_claim(nonce=nonce, payment_request=payment_request, kind=kind, amount=amount,
                             save_card=bool(save_card), instalment_count=instalment_count or None,
                             client_ip=client_ip)


def card_return_url(submission: PaySubmission) -> str:
    return f"/pay/{submission.payment_request.token}/card/{submission.nonce}/complete/"


def card_token_receive(*, submission: PaySubmission, card_token: str) -> PaySubmission:
    """Step 2: the gateway sent back a card token. Reserve, authorise, record the outcome."""
    gateway = get_gateway()
    with transaction.atomic():
        submission = PaySubmission.objects.select_for_update().get(pk=submission.pk)
        if submission.status != PaySubmission.Status.AWAITING_CARD:
            return submission  # a replayed post-back: the first one is already being handled
        payment_request = PaymentRequest.objects.select_related("creditor", "customer").get(
            pk=submission.payment_request_id)
        _check_open(payment_request)
        customer = payment_request.customer
        card = None
        if submission.save_card:
            details = gateway.card_details(token=card_token)
            card = services.saved_card_create(customer=customer, gateway=gateway.name, gateway_token=card_token,
                                              brand=details.brand, last4=details.last4,
                                              exp_month=details.exp_month, exp_year=details.exp_year)
        installment = None
        if submission.kind == PaySubmission.Kind.CARD_INSTALMENTS:
            schedule = instalment_preview(payment_request, count=submission.instalment_count,
                                          method=PaymentMethod.CARD, today=customer_today(customer))
            plan = services.installment_plan_create(customer=customer, method=PaymentMethod.CARD, schedule=schedule,
                                                    payment_request=payment_request, saved_card=card,
                                                    origin=InstallmentPlan.Origin.DEBTOR)
            installment = plan.installments.get(sequence=1)
            submission.plan = plan
        payment = services.payment_create(customer=customer, method=PaymentMethod.CARD, amount=submission.amount,
                                          payment_request=payment_request, installment=installment,
                                          saved_card=card, gateway=gateway.name)
        submission.payment, submission.saved_card = payment, card
        submission.status = PaySubmission.Status.PROCESSING
        submission.card_token = card_token
        submission.save()
    return _card_authorize(gateway, submission, payment_request)


def _card_authorize(gateway, submission: PaySubmission, payment_request: PaymentRequest) -> PaySubmission:
    # Same idempotency key on every call: a replay after a crash is the same payment at the gateway.
    result = gateway.authorize(token=submission.card_token, amount=submission.amount, currency=submission.currency,
                               idempotency_key=submission.nonce,
                               description=f"{payment_request.reference} {payment_request.short_reference}",
                               return_url=card_return_url(submission))
    return _card_outcome_record(submission=submission, result=_capture(gateway, submission, result))


def _capture(gateway, submission: PaySubmission, result: GatewayResult) -> GatewayResult:
    """An authorised payment is captured at once: the debtor is paying what is due now."""
    if not result.succeeded:
        return result
    captured = gateway.capture(reference=result.reference, amount=submission.amount, currency=submission.currency,
                               idempotency_key=f"{submission.nonce}:capture")
    return captured if captured.reference else GatewayResult(status=captured.status, reference=result.reference,
                                                              decline_code=captured.decline_code,
                                                              message=captured.message)


@transaction.atomic
def _card_outcome_record(*, submission: PaySubmission, result: GatewayResult) -> PaySubmission:
    submission = PaySubmission.objects.select_for_update().get(pk=submission.pk)
    if submission.status not in (PaySubmission.Status.PROCESSING, PaySubmission.Status.AWAITING_ACTION):
        return submission
    payment = submission.payment
    if result.status == "requires_action":
        services.payment_mark_processing(payment=payment, gateway_reference=result.reference)
        submission.status, submission.action_url = PaySubmission.Status.AWAITING_ACTION, result.action_url
    elif result.succeeded:
        services.payment_record_success(payment=payment, gateway_reference=result.reference)
        submission.status = PaySubmission.Status.SUCCEEDED
    else:
        services.payment_record_failure(payment=payment, reason_code=result.decline_code or "declined",
                                        reason_message=result.message)
        if submission.plan_id:
            # No plan without its first instalment: the debtor starts again with another card.
            services.installment_plan_cancel(plan=submission.plan)
        submission.status, submission.decline_code = PaySubmission.Status.FAILED, result.decline_code or "declined"
    if submission.status != PaySubmission.Status.AWAITING_ACTION:
        submission.card_token = ""
    submission.save()
    return submission


def card_checkouts_recover(*, now: dt.datetime | None = None, minutes: int | None = None) -> dict[str, int]:
    """Finish card checkouts that a dead worker or an abandoned 3-D Secure page left half done,
    so that no payment stays pending and no balance stays reserved for ever.

    - at the gateway (our process died during the call): the call is made again with the same
      idempotency key, which gives the original outcome, never a second charge;
    - waiting for 3-D Secure past the timeout: the gateway's status decides; a payer who never
      came back fails the payment ("authentication_abandoned") and frees the balance.
    Rows are claimed with SKIP LOCKED, so two recoveries (or a recovery and the payer's own
    return) never record an outcome twice."""
    now = now or timezone.now()
    minutes = settings.PAYPAGE_CHECKOUT_TIMEOUT_MINUTES if minutes is None else minutes
    stale = list(PaySubmission.objects.filter(
        status__in=[PaySubmission.Status.PROCESSING, PaySubmission.Status.AWAITING_ACTION],
        updated_at__lt=now - dt.timedelta(minutes=minutes)).order_by("pk").values_list("pk", flat=True))
    counts = {"succeeded": 0, "failed": 0, "skipped": 0}
    gateway = get_gateway()
    for pk in stale:
        with transaction.atomic():
            submission = (PaySubmission.objects.select_for_update(skip_locked=True, of=("self",))
                          .select_related("payment", "payment_request")
                          .filter(pk=pk, status__in=[PaySubmission.Status.PROCESSING,
                                                     PaySubmission.Status.AWAITING_ACTION]).first())
            if submission is None:
                counts["skipped"] += 1
                continue
            if submission.status == PaySubmission.Status.PROCESSING and submission.card_token:
                submission = _card_authorize(gateway, submission, submission.payment_request)
                if submission.status == PaySubmission.Status.AWAITING_ACTION:
                    # Only the payer can pass 3-D Secure: give them the usual time from now.
                    counts["skipped"] += 1
                    continue
            else:
                result = gateway.status(reference=submission.payment.gateway_reference) \
                    if submission.payment and submission.payment.gateway_reference else GatewayResult(status="pending")
                if result.status in ("requires_action", "pending"):
                    result = GatewayResult(status="failed", reference=result.reference,
                                           decline_code="authentication_abandoned",
                                           message="3-D Secure was not completed in time")
                submission = _card_outcome_record(submission=submission, result=_capture(gateway, submission, result))
            counts["succeeded" if submission.status == PaySubmission.Status.SUCCEEDED else "failed"] += 1
    return counts


def card_challenge_complete(*, submission: PaySubmission, result: str) -> PaySubmission:
    """Step 3 after 3-D Secure: the payer is back from the bank's page."""
    gateway = get_gateway()
    outcome = gateway.action_result(result=result)
    if submission.payment is None or outcome.reference != submission.payment.gateway_reference:
        raise ValidationFailed(_("This 3-D Secure answer is not for this payment."), field="result")
    return _card_outcome_record(submission=submission, result=_capture(gateway, submission, outcome))


# --------------------------------------------------------------------------- SEPA direct debit


def iban_check(value: str) -> None:
    """schwifty's verdict, said in the debtor's language and in words that help fix the typo."""
    from schwifty import IBAN
    from schwifty import exceptions as iban_errors

    if not (value or "").strip():
        raise ValidationFailed(_("Enter your IBAN."), field="iban")
    try:
        IBAN(value)
    except iban_errors.InvalidChecksumDigits as exc:
        raise ValidationFailed(_("This IBAN is not valid: its check digits do not match. Please look for a typo."),
                               field="iban") from exc
    except iban_errors.InvalidCountryCode as exc:
        raise ValidationFailed(_("This IBAN is not valid: it must start with a country code, such as FR76."),
                               field="iban") from exc
    except iban_errors.InvalidLength as exc:
        raise ValidationFailed(_("This IBAN is not valid: it does not have the right length for its country."),
                               field="iban") from exc
    except iban_errors.SchwiftyException as exc:
        raise ValidationFailed(_("This IBAN is not valid: please check it."), field="iban") from exc


@transaction.atomic
def sepa_mandate_sign(*, payment_request: PaymentRequest, nonce: str, holder_name: str, iban: str,
                      consent: bool, amount: Any = None, instalment_count: int | None = None,
                      client_ip: str | None = None, user_agent: str = "",
                      today: dt.date | None = None) -> tuple[PaySubmission, bool]:
    """The debtor signs a mandate: then either one debit of `amount` or an instalment plan,
    collected from the first possible date. The confirmation email goes out after commit."""
    if not holder_name.strip():
        raise ValidationFailed(_("Enter the account holder's name."), field="holder_name")
    iban_check(iban)
    if not consent:
        raise ValidationFailed(_("Tick the box to sign the mandate."), field="consent")
    request = PaymentRequest.objects.select_for_update(of=("self",)).select_related("creditor", "customer").get(
        pk=payment_request.pk)
    # The request's row lock serialises two copies of one submission: the second sees the first.
    previous = _replayed(nonce, request)
    if previous is not None:
        return previous, False
    _check_open(request)
    if PaymentMethod.SEPA_DD not in request.allowed_methods:
        raise ValidationFailed(_("Direct debit is not available for this request."), field="method")
    customer = request.customer
    today = today or customer_today(customer)
    if instalment_count:
        schedule = instalment_preview(request, count=instalment_count, method=PaymentMethod.SEPA_DD, today=today)
        kind, amount = PaySubmission.Kind.SEPA_INSTALMENTS, schedule[0][1]
    else:
        kind, amount = PaySubmission.Kind.SEPA, amount_check(request, request.amount_due if amount in (None, "")
                                                             else amount)
    submission, created = _submission_claim(nonce=nonce, payment_request=request, kind=kind, amount=amount,
                                            instalment_count=instalment_count or None, client_ip=client_ip)
    if not created:
        return submission, False
    mandate = services.mandate_create(creditor=request.creditor, customer=customer, holder_name=holder_name,
                                      iban=iban, signature_ip=client_ip, signature_user_agent=user_agent)
    submission.mandate = mandate
    if instalment_count:
        submission.plan = services.installment_plan_create(
            customer=customer, method=PaymentMethod.SEPA_DD, schedule=schedule, payment_request=request,
            mandate=mandate, origin=InstallmentPlan.Origin.DEBTOR)
        submission.collection_date = schedule[0][0]
    else:
        # One debit, pending until the collection run puts it in a pain.008 file: its amount is
        # reserved from now on, so nobody pays it twice by card meanwhile.
        submission.payment = services.payment_create(customer=customer, method=PaymentMethod.SEPA_DD,
                                                     amount=amount, payment_request=request, mandate=mandate)
        submission.collection_date = sepa_first_debit_date(today=today)
    submission.status = PaySubmission.Status.SUCCEEDED
    submission.save()
    mandate_confirmation_queue(submission=submission)
    return submission, True


def sepa_debits(submission: PaySubmission) -> list[tuple[dt.date, Decimal]]:
    """The debits announced to the debtor (the pre-notification)."""
    if submission.plan_id:
        return [(i.due_date, i.amount) for i in submission.plan.installments.order_by("sequence")]
    return [(submission.collection_date, submission.amount)]


def mandate_confirmation_queue(*, submission: PaySubmission):
    """Email the signed mandate and the pre-notification (amounts and debit dates), in the
    submission's own transaction: the delivery sender sends it once committed, and retries it,
    so the notice the SEPA rulebook requires is not lost with a web process or an SMTP outage."""
    from notifications.services import email_queue

    customer = submission.payment_request.customer
    if not customer.email:
        return None
    context = {"submission": submission, "mandate": submission.mandate, "request": submission.payment_request,
               "creditor": submission.payment_request.creditor, "customer": customer,
               "debits": sepa_debits(submission)}
    with translation.override(customer.locale or "fr"):
        subject = _("Your direct debit mandate %(reference)s") % {"reference": submission.mandate.reference}
        text = render_to_string("paypages/email/mandate_confirmation.txt", context)
    return email_queue(to=customer.email, subject=subject, text=text,
                       creditor_id=submission.payment_request.creditor_id)


# --------------------------------------------------------------------------- portal


@transaction.atomic
def portal_card_remove(*, customer: Customer, card_id: int) -> SavedCard:
    card = SavedCard.objects.select_for_update().filter(customer=customer, pk=card_id).first()
    if card is None:
        raise ValidationFailed(_("Unknown card."), field="card")
    if InstallmentPlan.objects.filter(saved_card=card, status__in=[InstallmentPlan.Status.ACTIVE,
                                                                  InstallmentPlan.Status.SUSPENDED]).exists():
        raise InvalidTransition(_("This card pays an instalment plan and cannot be removed."), field="card")
    return services.saved_card_remove(card=card)


def portal_overview(customer: Customer) -> dict[str, Any]:
    now = timezone.now()
    open_requests = [r for r in customer.payment_requests.filter(status__in=PaymentRequest.OPEN_STATUSES)
                     .order_by("expires_at", "pk") if pay_page_state(r, now=now) == "open"]
    return {
        "open_requests": open_requests,
        "payments": customer.payments.filter(status=Payment.Status.SUCCEEDED).select_related("payment_request")
        .order_by("-succeeded_at")[:50],
        "mandates": customer.mandates.filter(status=Mandate.Status.ACTIVE).order_by("-signed_at"),
        "cards": customer.saved_cards.filter(status=SavedCard.Status.ACTIVE).order_by("-created_at"),
    }


# --------------------------------------------------------------------------- sending the pay link


def pay_link_message(payment_request: PaymentRequest) -> tuple[str, str, str]:
    customer = payment_request.customer
    with translation.override(customer.locale or "fr"):
        subject = _("Payment request %(reference)s from %(creditor)s") % {
            "reference": payment_request.reference, "creditor": payment_request.creditor.name}
        text = render_to_string("paypages/email/pay_link.txt", {"request": payment_request, "customer": customer,
                                                                "creditor": payment_request.creditor})
        sms = _("%(creditor)s: %(amount)s %(currency)s to pay, ref %(short)s. Pay here: %(url)s") % {
            "creditor": payment_request.creditor.name, "amount": payment_request.amount_due,
            "currency": payment_request.currency, "short": payment_request.short_reference,
            "url": payment_request.pay_url}
    return subject, text, sms


def pay_link_send(*, payment_request: PaymentRequest, channel: str, sent_by: str = "") -> str:
    """Send the pay link now (an operator on the phone). Returns the recipient."""
    from notifications import sms as sms_backend

    request = PaymentRequest.objects.select_related("creditor", "customer").get(pk=payment_request.pk)
    if pay_page_state(request) != "open":
        raise InvalidTransition(_("This payment request can no longer be paid."))
    customer = request.customer
    subject, text, sms_text = pay_link_message(request)
    if channel == "email":
        if not customer.email:
            raise ValidationFailed(_("The customer has no email address."), field="email")
        recipient = customer.email
        EmailMultiAlternatives(subject=subject, body=text, from_email=settings.DEFAULT_FROM_EMAIL,
                               to=[recipient]).send()
    elif channel == "sms":
        if not customer.phone:
            raise ValidationFailed(_("The customer has no phone number."), field="phone")
        recipient = customer.phone
        try:
            sms_backend.send_sms(to=recipient, text=sms_text)
        except sms_backend.SmsError as exc:
            raise InvalidTransition(_("The SMS could not be sent: %(error)s") % {"error": exc}) from exc
    else:
        raise ValidationFailed(_("Unknown channel."), field="channel")
    with transaction.atomic():
        event_emit(type="payment_request.link_sent", creditor_id=request.creditor_id,
                   payload={**payloads.payment_request_payload(request), "channel": channel,
                            "recipient": recipient, "sent_by": sent_by},
                   subjects={"payment_request": request.pk, "customer": customer.pk})
    return recipient
