"""What happens after an instalment's collection fails, whoever reported the failure.

The hook: collections_app.services._installment_mark_failed is the one place every failure of
an instalment payment goes through (pain.002 rejects here, camt.054/statement returns through
payment_reverse, gateway declines through payment_record_failure). It calls
`attempt_failure_decide`, which records the failure on the collection attempt and decides from
the retry policy; the caller emits payment.failed / payment.reversed with `will_retry`, then
calls `RetryDecision.apply()` which schedules the next attempt or runs the final actions.
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app import payloads
from collections_app.business_days import add_business_days, local_today
from collections_app.models import Creditor, Installment, InstallmentPlan, Payment, PaymentMethod, PaymentRequest
from collections_app.retries.models import CollectionAttempt, NoticeSent, RetryPolicy
from collections_app.retries.reasons import reason_meaning
from notifications.services import event_emit

logger = logging.getLogger(__name__)

# The business date a job or an import runs for (`--date`), so that retry dates computed deep
# inside payment_record_failure follow the run's date instead of the wall clock.
_run_date: contextvars.ContextVar[dt.date | None] = contextvars.ContextVar("encaisse_run_date", default=None)


@contextlib.contextmanager
def run_date(day: dt.date | None) -> Iterator[None]:
    token = _run_date.set(day)
    try:
        yield
    finally:
        _run_date.reset(token)


def business_today(creditor: Creditor) -> dt.date:
    return _run_date.get() or local_today(creditor.time_zone)


def retry_policy_for(*, creditor: Creditor, method: str) -> RetryPolicy:
    return (RetryPolicy.objects.filter(creditor=creditor, method=method).first()
            or RetryPolicy.default_for(creditor=creditor, method=method))


def retry_date(*, policy: RetryPolicy, failed_on: dt.date) -> dt.date:
    if policy.interval_unit == RetryPolicy.IntervalUnit.CALENDAR_DAYS:
        return failed_on + dt.timedelta(days=policy.interval)
    return add_business_days(failed_on, policy.interval)


@dataclass
class RetryDecision:
    attempt: CollectionAttempt
    payment: Payment
    policy: RetryPolicy
    will_retry: bool
    retry_on: dt.date | None = None

    def apply(self) -> None:
        """Runs after the failure event, in the same transaction."""
        if self.will_retry:
            _schedule_retry(self)
        else:
            _final_actions(self)


def attempt_failure_decide(*, installment: Installment, payment: Payment) -> RetryDecision | None:
    """Record the failure on the payment's collection attempt and decide whether to retry.
    Payments that no collection run made (a debtor paying on the pay page) have no attempt:
    no policy applies to them."""
    attempt = CollectionAttempt.objects.select_for_update().filter(payment_id=payment.pk).first()
    if attempt is None or attempt.status in (CollectionAttempt.Status.FAILED, CollectionAttempt.Status.CANCELLED):
        return None
    plan = InstallmentPlan.objects.select_related("creditor").get(pk=installment.plan_id)
    policy = retry_policy_for(creditor=plan.creditor, method=attempt.method)
    code = payment.reason_code
    retryable = code in set(policy.retry_codes or [])
    attempts_left = attempt.number - 1 < policy.max_retries
    will_retry = retryable and attempts_left and plan.status == InstallmentPlan.Status.ACTIVE
    attempt.status = CollectionAttempt.Status.FAILED
    attempt.reason_code = code
    attempt.reason_message = payment.reason_message or reason_meaning(code)
    attempt.will_retry = will_retry
    attempt.finished_at = timezone.now()
    attempt.save()
    decision = RetryDecision(attempt=attempt, payment=payment, policy=policy, will_retry=will_retry)
    if will_retry:
        decision.retry_on = retry_date(policy=policy, failed_on=business_today(plan.creditor))
    return decision


def _schedule_retry(decision: RetryDecision) -> None:
    attempt = decision.attempt
    try:
        with transaction.atomic():
            retry = CollectionAttempt.objects.create(
                installment_id=attempt.installment_id, creditor_id=attempt.creditor_id, number=attempt.number + 1,
                method=attempt.method, scheduled_for=decision.retry_on)
    except IntegrityError:
        return  # already scheduled by an earlier report of the same failure
    payment = decision.payment
    event_emit(type="payment.retry_scheduled", creditor_id=payment.creditor_id,
               payload=payloads.payment_payload(payment, payment.status, will_retry=True,
                                                retry_attempt=retry.number, retry_date=retry.scheduled_for,
                                                notify_debtor=decision.policy.notify_debtor,
                                                reason_meaning=reason_meaning(payment.reason_code)),
               subjects={"payment": payment.pk, "customer": payment.customer_id,
                         "installment": attempt.installment_id, "collection_attempt": retry.pk})


def _final_actions(decision: RetryDecision) -> None:
    from collections_app import services  # the core imports this module lazily; same the other way

    policy, payment, attempt = decision.policy, decision.payment, decision.attempt
    installment = Installment.objects.select_related("plan__payment_request", "plan__customer").get(
        pk=attempt.installment_id)
    plan = installment.plan
    meaning = reason_meaning(payment.reason_code)
    suspended = False
    if policy.final_suspend and plan.status == InstallmentPlan.Status.ACTIVE:
        reason = (_("Instalment %(seq)d could not be collected after %(n)d attempt(s): %(code)s %(meaning)s")
                  % {"seq": installment.sequence, "n": attempt.number, "code": payment.reason_code,
                     "meaning": meaning})
        services.installment_plan_suspend(plan=plan, reason=reason)
        suspended = True
    pay_link: PaymentRequest | None = None
    if policy.final_send_pay_link:
        pay_link = _pay_link_for(installment=installment, plan=plan)
    event_emit(type="installment.uncollectable", creditor_id=payment.creditor_id,
               payload=payloads.installment_payload(
                   installment, installment.status, payment_id=payment.pk, reason_code=payment.reason_code,
                   reason_meaning=meaning, attempts=attempt.number, suspended=suspended,
                   alert_team=policy.final_alert_team,
                   pay_link_payment_request_id=pay_link.pk if pay_link else None,
                   pay_url=pay_link.pay_url if pay_link else None),
               subjects={"installment": installment.pk, "instalment_plan": plan.pk, "customer": plan.customer_id,
                         "payment": payment.pk, "payment_request": pay_link.pk if pay_link else None})


def _pay_link_for(*, installment: Installment, plan: InstallmentPlan) -> PaymentRequest | None:
    """A pay link for the instalment's amount, on the plan's invoices that are still open."""
    from collections_app import services

    reference = f"INST-{installment.pk}-{installment.attempts.count()}"
    existing = PaymentRequest.objects.filter(creditor_id=plan.creditor_id, reference=reference).first()
    if existing is not None:
        return existing
    invoices = []
    if plan.payment_request_id:
        invoices = list(plan.payment_request.invoices.filter(status__in=["open", "partially_paid"]))
    return services.payment_request_create(
        creditor=plan.creditor, customer=plan.customer, invoices=invoices, amount=installment.amount,
        currency=installment.currency, reference=reference,
        allowed_methods=[PaymentMethod.CARD, PaymentMethod.TRANSFER],
        description=_("Instalment %(seq)d of plan #%(plan)d") % {"seq": installment.sequence, "plan": plan.pk})


# --------------------------------------------------------------------------- attempts


def attempts_materialise(*, method: str, creditor: Creditor, up_to: dt.date) -> int:
    """First attempts for the scheduled instalments due by `up_to` of the creditor's active plans.
    Inserted with ON CONFLICT DO NOTHING on (instalment, number): two runs create each once."""
    due = (Installment.objects
           .filter(plan__creditor=creditor, plan__method=method, plan__status=InstallmentPlan.Status.ACTIVE,
                   status=Installment.Status.SCHEDULED, due_date__lte=up_to)
           .exclude(attempts__number=1)
           .values_list("pk", "due_date"))
    rows = [CollectionAttempt(installment_id=pk, creditor=creditor, number=1, method=method, scheduled_for=due_date)
            for pk, due_date in due]
    CollectionAttempt.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    return len(rows)


PLAN_RELATED = ("customer", "payment_request", "mandate", "saved_card")


def attempt_submit(*, attempt: CollectionAttempt, gateway: str = "", end_to_end_id: str = "",
                   extra: dict[str, Any] | None = None, plan: InstallmentPlan | None = None) -> Payment:
    """Turn a claimed attempt into a payment in flight (the caller holds the attempt's row lock;
    `plan`, loaded with PLAN_RELATED, saves the queries when the caller has it)."""
    from collections_app import services

    installment = Installment.objects.select_for_update(no_key=True).get(pk=attempt.installment_id)
    if plan is None:
        plan = InstallmentPlan.objects.select_related(*PLAN_RELATED).get(pk=installment.plan_id)
    request = plan.payment_request
    if request is not None and (request.status not in PaymentRequest.OPEN_STATUSES
                                or (request.expires_at and request.expires_at <= timezone.now())):
        request = None  # a 12-month plan outlives its pay link: the money still goes to the plan's invoices
    previous = None
    if attempt.number > 1:
        previous = (CollectionAttempt.objects.filter(installment_id=attempt.installment_id, number=attempt.number - 1)
                    .values_list("payment_id", flat=True).first())
    payment = services.payment_create(
        customer=plan.customer, method=attempt.method, amount=installment.amount, currency=installment.currency,
        payment_request=request, installment=installment, mandate=plan.mandate if attempt.method == "sepa_dd" else None,
        saved_card=plan.saved_card if attempt.method == "card" else None, gateway=gateway,
        retry_of=Payment(pk=previous) if previous else None, attempt=attempt.number)
    if installment.status != Installment.Status.PROCESSING:
        installment.status = Installment.Status.PROCESSING
        installment.save(update_fields=["status", "updated_at"])
    attempt.payment = payment
    attempt.status = CollectionAttempt.Status.SUBMITTED
    attempt.submitted_at = timezone.now()
    for name, value in (extra or {}).items():
        setattr(attempt, name, value)
    attempt.save()
    if end_to_end_id or attempt.method == "sepa_dd":
        payment = services.payment_mark_processing(payment=payment, end_to_end_id=end_to_end_id or payment.uuid.hex)
    return payment


def attempt_mark_succeeded(*, attempt: CollectionAttempt, gateway_reference: str = "") -> Payment:
    from collections_app import services

    payment = services.payment_record_success(payment=attempt.payment, gateway_reference=gateway_reference)
    CollectionAttempt.objects.filter(pk=attempt.pk).update(status=CollectionAttempt.Status.SUCCEEDED,
                                                          finished_at=timezone.now(), updated_at=timezone.now())
    return payment


def notice_once(*, kind: str, key: str) -> bool:
    """True the first time (kind, key) is seen, in the caller's transaction."""
    try:
        with transaction.atomic():
            NoticeSent.objects.create(kind=kind, key=key)
    except IntegrityError:
        return False
    return True


# --------------------------------------------------------------------------- card charges on file


@dataclass
class RunResult:
    submitted: int = 0
    succeeded: int = 0
    failed: int = 0
    retries_scheduled: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"submitted": self.submitted, "succeeded": self.succeeded, "failed": self.failed,
                "retries_scheduled": self.retries_scheduled, "files": self.files, "errors": self.errors}


# A card attempt left submitted this long (the worker died between the claim and the gateway's
# answer) is asked again, with the same idempotency key: the gateway answers the same charge.
STALE_CARD_CLAIM = dt.timedelta(minutes=10)


def _claim_card_attempt(*, creditor_id: int, today: dt.date, only_retries: bool,
                        now: dt.datetime | None = None) -> tuple[int, Payment] | None:
    with transaction.atomic():
        stale = (now or timezone.now()) - STALE_CARD_CLAIM
        qs = (CollectionAttempt.objects.select_for_update(skip_locked=True, of=("self",))
              .filter(creditor_id=creditor_id, method=PaymentMethod.CARD, scheduled_for__lte=today))
        if only_retries:
            qs = qs.filter(number__gt=1)
        from django.db.models import Q

        attempt = (qs.filter(Q(status=CollectionAttempt.Status.SCHEDULED)
                             | Q(status=CollectionAttempt.Status.SUBMITTED, submitted_at__lt=stale,
                                 payment__status=Payment.Status.PENDING))
                   .order_by("scheduled_for", "pk").first())
        if attempt is None:
            return None
        if attempt.status == CollectionAttempt.Status.SUBMITTED:
            attempt.submitted_at = timezone.now()  # re-claimed: hold it for another STALE_CARD_CLAIM
            attempt.save(update_fields=["submitted_at", "updated_at"])
            return attempt.pk, attempt.payment
        plan = attempt.installment.plan
        if plan.status != InstallmentPlan.Status.ACTIVE:
            attempt.status = CollectionAttempt.Status.CANCELLED
            attempt.finished_at = timezone.now()
            attempt.save(update_fields=["status", "finished_at", "updated_at"])
            return attempt.pk, None  # type: ignore[return-value]
        from collections_app.gateways import get_gateway

        payment = attempt_submit(attempt=attempt, gateway=plan.saved_card.gateway if plan.saved_card_id
                                 else get_gateway().name)
        return attempt.pk, payment


def card_charges_run(*, today: dt.date | None = None, only_retries: bool = False,
                     creditor_ids: list[int] | None = None, now: dt.datetime | None = None) -> RunResult:
    """Charge the saved card of every due card instalment (first attempts and retries).
    Each attempt is claimed and committed before the gateway is called, with the attempt as
    the idempotency key, so a second worker or a re-run never charges it again. An attempt
    left submitted by a dead worker is asked again once STALE_CARD_CLAIM has passed since its
    claim (`now`, default the current time, is the clock that is compared with)."""
    from collections_app import services
    from collections_app.gateways import get_gateway

    result = RunResult()
    creditors = Creditor.objects.filter(is_active=True)
    if creditor_ids:
        creditors = creditors.filter(pk__in=creditor_ids)
    for creditor in creditors:
        day = today or local_today(creditor.time_zone)
        if not only_retries:
            attempts_materialise(method=PaymentMethod.CARD, creditor=creditor, up_to=day)
        with run_date(day):
            while True:
                claimed = _claim_card_attempt(creditor_id=creditor.pk, today=day, only_retries=only_retries,
                                              now=now)
                if claimed is None:
                    break
                attempt_pk, payment = claimed
                if payment is None:
                    continue
                result.submitted += 1
                card = payment.saved_card
                with transaction.atomic():
                    attempt = CollectionAttempt.objects.select_for_update().get(pk=attempt_pk)
                    if card is None or card.status != "active":
                        services.payment_record_failure(payment=payment, reason_code="card_unavailable",
                                                        reason_message=reason_meaning("card_unavailable"))
                        result.failed += 1
                        result.retries_scheduled += int(_reload(attempt).will_retry)
                        continue
                try:
                    outcome = get_gateway(card.gateway).charge_saved_card(
                        token=card.gateway_token, amount=payment.amount, currency=payment.currency,
                        idempotency_key=f"encaisse-attempt-{attempt_pk}",
                        description=f"Instalment {payment.installment_id}")
                except Exception as exc:  # noqa: BLE001 - a gateway outage must not stop the other charges
                    # the attempt stays submitted: asked again, with the same key, after STALE_CARD_CLAIM
                    logger.warning("card charge of attempt %s failed to reach the gateway", attempt_pk, exc_info=True)
                    result.errors.append(f"attempt {attempt_pk}: {exc}")
                    continue
                with transaction.atomic():
                    attempt = CollectionAttempt.objects.select_for_update().get(pk=attempt_pk)
                    current = Payment.objects.get(pk=payment.pk)
                    if current.status not in (Payment.Status.PENDING, Payment.Status.PROCESSING):
                        continue  # another worker recorded the same answer first
                    if outcome.succeeded:
                        attempt_mark_succeeded(attempt=attempt, gateway_reference=outcome.reference)
                        result.succeeded += 1
                    elif outcome.status in ("failed", "requires_action"):
                        # a merchant-initiated charge the issuer wants authenticated: the debtor must
                        # pay on the pay page (the policy's pay link), no retry can succeed alone
                        Payment.objects.filter(pk=payment.pk).update(gateway_reference=outcome.reference)
                        code = (outcome.decline_code or "do_not_honor") if outcome.status == "failed" \
                            else "authentication_required"
                        services.payment_record_failure(payment=current, reason_code=code,
                                                        reason_message=reason_meaning(code))
                        result.failed += 1
                        result.retries_scheduled += int(_reload(attempt).will_retry)
    return result


def _reload(attempt: CollectionAttempt) -> CollectionAttempt:
    attempt.refresh_from_db()
    return attempt


def cards_expiring_notify(*, today: dt.date | None = None) -> int:
    """card.expiring, once per card and expiry, for active saved cards of active plans that still
    have instalments to pay and expire within the creditor's warning window."""
    import calendar

    from collections_app.models import SavedCard
    from collections_app.sepa.services import collection_settings_for

    count = 0
    cards = (SavedCard.objects.filter(status=SavedCard.Status.ACTIVE,
                                      instalment_plans__status=InstallmentPlan.Status.ACTIVE,
                                      instalment_plans__installments__status=Installment.Status.SCHEDULED)
             .select_related("customer__creditor").distinct())
    for card in cards:
        creditor = card.customer.creditor
        day = today or local_today(creditor.time_zone)
        last_day = dt.date(card.exp_year, card.exp_month, calendar.monthrange(card.exp_year, card.exp_month)[1])
        days_left = (last_day - day).days
        if days_left < 0:
            # past its month: the card can no longer be charged (card.expired; its instalments
            # then fail as card_unavailable and follow the policy)
            from collections_app.services import saved_card_expire

            with transaction.atomic():
                if SavedCard.objects.select_for_update(skip_locked=True).filter(
                        pk=card.pk, status=SavedCard.Status.ACTIVE).exists():
                    saved_card_expire(card=card, today=day)
            continue
        if days_left > collection_settings_for(creditor).card_expiry_warning_days:
            continue
        with transaction.atomic():
            if not notice_once(kind="card.expiring", key=f"{card.pk}:{card.exp_year}-{card.exp_month:02d}"):
                continue
            event_emit(type="card.expiring", creditor_id=creditor.pk,
                       payload=payloads.card_payload(card, days_left=days_left),
                       subjects={"saved_card": card.pk, "customer": card.customer_id})
            count += 1
    return count


def retries_run(*, today: dt.date | None = None) -> RunResult:
    """`manage.py run_retries`: the retry attempts that are due, by card (charged now) and by
    direct debit (put in files; the daily sepa_export usually took them already)."""
    from collections_app.sepa.services import sepa_export

    cards = card_charges_run(today=today, only_retries=True)
    sepa = sepa_export(today=today, only_retries=True)
    return RunResult(submitted=cards.submitted + sepa.submitted, succeeded=cards.succeeded,
                     failed=cards.failed + sepa.failed, retries_scheduled=cards.retries_scheduled,
                     files=sepa.files, errors=cards.errors + sepa.errors)


@transaction.atomic
def installment_collect_again(*, installment: Installment, on: dt.date | None = None) -> CollectionAttempt:
    """An operator asks for one more attempt on a failed instalment (after resuming its plan,
    say): the next attempt number, due on `on` (default: the creditor's today)."""
    from collections_app.errors import InvalidTransition

    installment = Installment.objects.select_for_update().select_related("plan__creditor").get(pk=installment.pk)
    plan = installment.plan
    if plan.status != InstallmentPlan.Status.ACTIVE:
        raise InvalidTransition(_("The plan is not active: resume it first."))
    if installment.status != Installment.Status.FAILED:
        raise InvalidTransition(_("Only a failed instalment can be collected again."))
    if plan.method not in (PaymentMethod.CARD, PaymentMethod.SEPA_DD):
        raise InvalidTransition(_("Only card and direct-debit instalments are collected."))
    attempts = list(CollectionAttempt.objects.select_for_update().filter(installment=installment).order_by("number"))
    if any(a.status in (CollectionAttempt.Status.SCHEDULED, CollectionAttempt.Status.SUBMITTED) for a in attempts):
        raise InvalidTransition(_("An attempt is already planned or in progress."))
    number = (attempts[-1].number if attempts else 0) + 1
    if number > 4:
        raise InvalidTransition(_("This instalment already had 4 attempts."))
    attempt = CollectionAttempt.objects.create(
        installment=installment, creditor=plan.creditor, number=number, method=plan.method,
        scheduled_for=on or business_today(plan.creditor))
    last_payment = attempts[-1].payment if attempts and attempts[-1].payment_id else None
    if last_payment is not None:
        policy = retry_policy_for(creditor=plan.creditor, method=plan.method)
        event_emit(type="payment.retry_scheduled", creditor_id=plan.creditor_id,
                   payload=payloads.payment_payload(last_payment, last_payment.status, will_retry=True,
                                                    retry_attempt=number, retry_date=attempt.scheduled_for,
                                                    notify_debtor=policy.notify_debtor,
                                                    reason_meaning=reason_meaning(last_payment.reason_code)),
                   subjects={"payment": last_payment.pk, "customer": plan.customer_id,
                             "installment": installment.pk, "collection_attempt": attempt.pk})
    return attempt
