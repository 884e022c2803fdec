"""Business operations of dunning: the daily run (plan, claim, send), pauses, escalations.

Exactly once per invoice and step, and never for what is already paid:

1. Planning (selectors.dunning_plan) decides, in batches, which step is due for each open
   invoice. Only the latest due step is ever sent; earlier steps that were missed (downtime, a
   pause) are written as skipped ("superseded"), never sent in a burst.
2. Claim: one INSERT … ON CONFLICT DO NOTHING per batch writes the Reminder rows; the unique
   constraint (invoice, step) decides which process owns a step. Rows start as "claimed".
3. Send, row by row: in ONE transaction the claimed row is locked (SKIP LOCKED: another worker
   has it) and the invoice is re-read under its row lock; a paid, cancelled or written-off
   invoice turns the row into "skipped", otherwise the message is rendered with the amount due
   at that instant (partial payments re-anchor it) and the row becomes "sending" and commits.
   Only then is the message handed to SMTP / the SMS provider, and the result recorded.

At most once, on purpose. A process that dies leaves its rows "claimed" (nothing was sent:
the next run sends them, nothing is lost) or "sending" (the message may have left: the row is
never sent again automatically; `reminders_recover_stuck` marks it "unknown" after
STUCK_AFTER and a human decides). A duplicate reminder annoys a debtor more than a missing one,
and the next step follows anyway.
"""
from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app import payloads
from collections_app import services as core
from collections_app.dunning.models import (
    DunningEscalation,
    DunningPause,
    DunningScenario,
    DunningStep,
    DunningStepTemplate,
    Reminder,
)
from collections_app.dunning.pauses import paused_invoices, paused_requests
from collections_app.dunning.selectors import Action, PlanItem, dunning_plan, scenarios_load, zone
from collections_app.errors import Conflict, InvalidTransition, ValidationFailed
from collections_app.models import Customer, Invoice, PaymentRequest
from notifications import channels
from notifications.services import event_emit
from notifications.templating import TemplateRefused, build_context, render

MAX_ATTEMPTS = 3
RETRY_DELAY = dt.timedelta(minutes=30)
STUCK_AFTER = dt.timedelta(minutes=10)  # far longer than one SMTP (30 s) or SMS (10 s) call may last
SEND_BATCH = 200

SKIP_REASONS = {
    "superseded": "a later step was already due (missed during downtime or a pause)",
    "paid": "the invoice is paid",
    "cancelled": "the invoice is cancelled",
    "written_off": "the invoice is written off",
    "expired": "the payment request expired",
    "no_contact": "the customer has no email address or phone number for this channel",
    "no_template": "the step has no template",
    "template_error": "the template could not be rendered",
}


@dataclass
class Debt:
    """What a reminder is about: an invoice, or a payment request that has no invoice."""

    invoice: Invoice | None = None
    request: PaymentRequest | None = None

    @classmethod
    def of(cls, reminder: Reminder) -> Debt:
        return cls(invoice=reminder.invoice) if reminder.invoice_id else cls(request=reminder.payment_request)

    @property
    def obj(self) -> Invoice | PaymentRequest:
        return self.invoice or self.request

    @property
    def customer(self) -> Customer:
        return self.obj.customer

    @property
    def creditor_id(self) -> int:
        return self.obj.creditor_id

    @property
    def ref(self) -> str:
        return self.invoice.external_ref if self.invoice else self.request.reference

    @property
    def amount_total(self):
        return self.invoice.amount_total if self.invoice else self.request.amount

    @property
    def due_date(self) -> dt.date:
        if self.invoice:
            return self.invoice.due_date
        return self.request.created_at.astimezone(zone(self.customer.time_zone)).date()

    @property
    def issue_date(self) -> dt.date:
        return self.invoice.issue_date if self.invoice else self.due_date

    @property
    def closed_reason(self) -> str:
        """Why nothing may be claimed any more ('' while open)."""
        if self.invoice:
            return "" if self.invoice.status in Invoice.OPEN_STATUSES else str(self.invoice.status)
        if self.request.status not in PaymentRequest.OPEN_STATUSES:
            return str(self.request.status)
        if self.request.expires_at and self.request.expires_at <= timezone.now():
            return "expired"
        return ""

    def subjects(self) -> dict[str, Any]:
        if self.invoice:
            return {"invoice": self.invoice.pk, "customer": self.invoice.customer_id}
        return {"payment_request": self.request.pk, "customer": self.request.customer_id}

    def fields(self) -> dict[str, Any]:
        return {"invoice_id": self.invoice.pk if self.invoice else None,
                "payment_request_id": self.request.pk if self.request else None,
                "invoice_external_ref": self.ref, "amount_due": self.obj.amount_due, "currency": self.obj.currency,
                "due_date": self.due_date, **payloads.customer_fields(self.customer)}


def _skip_payload(reminder: Reminder, debt: Debt, reason: str) -> dict[str, Any]:
    return {**_reminder_payload(reminder, debt), "reason": reason, "reason_text": SKIP_REASONS.get(reason, reason)}


def _reminder_payload(reminder: Reminder, debt: Debt) -> dict[str, Any]:
    return {
        "reminder_id": reminder.pk, "scenario_id": reminder.scenario_id, "step_id": reminder.step_id,
        "step_offset_days": reminder.step.offset_days if reminder.step_id else None,
        "step_date": reminder.step_date, "channel": reminder.channel, "status": reminder.status,
        **debt.fields(),
    }


def _emit(event_type: str, reminder: Reminder, debt: Debt, **extra: Any) -> None:
    event_emit(type=event_type, creditor_id=debt.creditor_id, payload={**_reminder_payload(reminder, debt), **extra},
               subjects=debt.subjects())


# --------------------------------------------------------------------------- the run


def dunning_run(*, today: dt.date | None = None, now: dt.datetime | None = None, dry_run: bool = False,
                creditor_id: int | None = None, batch_size: int = 5000) -> dict[str, Any]:
    """The daily (in fact every few minutes, for the send windows) dunning job.

    Safe to run concurrently and after a crash (see the module docstring). With dry_run, nothing
    is written and the items that would go out are returned."""
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    token = uuid.uuid4()
    counts: Counter[str] = Counter()
    items: list[dict[str, Any]] = []
    for batch in dunning_plan(today=today, now=now, creditor_id=creditor_id, batch_size=batch_size):
        for item in batch:
            counts[f"planned_{item.action}"] += 1
        if dry_run:
            items.extend(i.as_dict() for i in batch if i.action in (Action.SEND, Action.ESCALATE))
            continue
        sends = [i for i in batch if i.action == Action.SEND]
        counts["skipped_superseded"] += reminders_claim(items=sends, today=today, token=token)
        counts["escalated"] += escalations_record(items=[i for i in batch if i.action == Action.ESCALATE],
                                                  today=today)
        counts.update(reminders_send_claimed(now=now, today=today, creditor_id=creditor_id))
    if not dry_run:
        # Rows claimed by a process that died before sending them, with no new plan to trigger it.
        counts.update(reminders_send_claimed(now=now, today=today, creditor_id=creditor_id))
    result: dict[str, Any] = {"date": today, "dry_run": dry_run, "counts": {k: v for k, v in sorted(counts.items()) if v}}
    if dry_run:
        result["items"] = items
    return result


@transaction.atomic
def reminders_claim(*, items: list[PlanItem], today: dt.date, token: uuid.UUID) -> int:
    """Write the claim rows of one planning batch; returns how many missed steps were skipped."""
    if not items:
        return 0
    rows = []
    for item in items:
        owner = {"invoice_id": item.invoice_id, "payment_request_id": item.payment_request_id}
        for step, step_date in item.superseded:
            rows.append(Reminder(**owner, step_id=step.id, scenario_id=item.scenario_id,
                                 status=Reminder.Status.SKIPPED, skip_reason="superseded", step_date=step_date,
                                 run_date=today, claim_token=token, channel=step.channel))
        rows.append(Reminder(**owner, step_id=item.step.id, scenario_id=item.scenario_id,
                             status=Reminder.Status.CLAIMED, step_date=item.step_date, run_date=today,
                             claim_token=token, channel=item.step.channel))
    Reminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    # Only the rows this process inserted carry its token: another process's skips are its own to report.
    skipped = list(Reminder.objects.filter(claim_token=token, status=Reminder.Status.SKIPPED,
                                           skip_reason="superseded", run_date=today)
                   .select_related("step", "invoice__customer", "payment_request__customer"))
    for reminder in skipped:
        debt = Debt.of(reminder)
        _emit("reminder.skipped", reminder, debt, reason="superseded", reason_text=SKIP_REASONS["superseded"])
    return len(skipped)


def reminders_send_claimed(*, now: dt.datetime, today: dt.date, creditor_id: int | None = None) -> Counter[str]:
    """Send every claimed reminder (this run's, another's, or a crashed run's), one pass."""
    counts: Counter[str] = Counter()
    scenarios = scenarios_load()
    templates: dict[int, dict[str, DunningStepTemplate]] = {}
    mail = None
    last_id = 0
    claimed = Reminder.objects.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                                      status=Reminder.Status.CLAIMED)
    if creditor_id:
        claimed = claimed.filter(Q(invoice__creditor_id=creditor_id) | Q(payment_request__creditor_id=creditor_id))
    try:
        while True:
            batch = list(claimed.filter(pk__gt=last_id)
                         .order_by("pk").values_list("pk", "invoice_id", "payment_request_id", "scenario_id",
                                                     "invoice__customer__time_zone",
                                                     "payment_request__customer__time_zone")[:SEND_BATCH])
            if not batch:
                break
            last_id = batch[-1][0]
            paused_inv = paused_invoices(list({r[1] for r in batch if r[1]}), today)
            paused_req = paused_requests(list({r[2] for r in batch if r[2]}), today)
            release = []
            for pk, invoice_id, request_id, scenario_id, tz, request_tz in batch:
                scenario = scenarios.get(scenario_id)
                paused = invoice_id in paused_inv if invoice_id else request_id in paused_req
                if paused or scenario is None or not scenario.in_window(now, tz or request_tz):
                    release.append(pk)
                    continue
                reminder = reminder_begin_send(reminder_id=pk, today=today, templates=templates)
                if reminder is None:
                    counts["taken_by_another_worker"] += 1
                    continue
                if reminder.status == Reminder.Status.SKIPPED:
                    counts[f"skipped_{reminder.skip_reason}"] += 1
                    continue
                if mail is None and reminder.channel != DunningStep.Channel.SMS:
                    mail = channels.email_connection()
                    mail.open()
                status = reminder_deliver(reminder=reminder, mail_connection=mail, now=now)
                counts[status] += 1
                if status != "sent" and mail is not None:
                    # The SMTP session may be what broke: the next email opens a fresh one.
                    mail.close()
                    mail = None
            if release:
                # A pause began, or the window closed, since the claim: the step is planned again later.
                counts["released"] += Reminder.objects.filter(pk__in=release, status=Reminder.Status.CLAIMED,
                                                              attempts=0).delete()[0]
            if len(batch) < SEND_BATCH:
                break
    finally:
        if mail is not None:
            mail.close()
    return counts


def _pay_request_for(invoice: Invoice) -> PaymentRequest:
    request = (invoice.payment_requests.filter(status__in=PaymentRequest.OPEN_STATUSES)
               .order_by("-created_at", "-pk").first())
    if request is not None:
        return request
    try:
        return core.payment_request_create(creditor=invoice.creditor, customer=invoice.customer, invoices=[invoice])
    except Conflict:
        # An earlier (cancelled or expired) request holds the invoice number as its reference.
        return core.payment_request_create(creditor=invoice.creditor, customer=invoice.customer, invoices=[invoice],
                                           reference=f"{invoice.external_ref}-{secrets.token_hex(3).upper()}")


def reminder_context(*, debt: Debt, step: DunningStep, template: DunningStepTemplate | None,
                     request: PaymentRequest | None, today: dt.date) -> dict[str, Any]:
    base = settings.PUBLIC_BASE_URL
    customer, creditor = debt.customer, debt.obj.creditor
    payload = {
        **debt.fields(),
        "invoice_description": debt.obj.description, "amount_total": debt.amount_total,
        "amount_paid": debt.obj.amount_paid, "issue_date": debt.issue_date,
        "days_overdue": max(0, (today - debt.due_date).days), "days_until_due": (debt.due_date - today).days,
        "step_name": step.name, "step_offset_days": step.offset_days,
        "creditor_name": creditor.legal_name or creditor.name,
        "creditor_email": creditor.email, "creditor_phone": creditor.phone,
        "pay_url": f"{base}/pay/{request.token}/" if request else "",
        "short_reference": request.short_reference if request else "",
        "qr_url": f"{base}/pay/{request.token}/qr.png" if request else "",
    }
    context = build_context(event={"type": "reminder", "occurred_at": timezone.now().isoformat()},
                            payload=payload,
                            recipient={"name": customer.name, "email": customer.email,
                                       "phone": customer.phone, "locale": customer.locale})
    late_fee = template.late_fee_text if template else ""
    context["payload"]["late_fee_text"] = render(late_fee, context, locale=customer.locale) if late_fee else ""
    return context


def _template_for(step: DunningStep, locale: str, fallback: str,
                  cache: dict[int, dict[str, DunningStepTemplate]] | None = None) -> DunningStepTemplate | None:
    if cache is None or step.pk not in cache:
        templates = {t.locale: t for t in step.templates.all()}
        if cache is not None:
            cache[step.pk] = templates
    else:
        templates = cache[step.pk]
    return templates.get(locale) or templates.get(fallback) or next(iter(templates.values()), None)


def _skip(reminder: Reminder, debt: Debt, reason: str) -> Reminder:
    reminder.status, reminder.skip_reason = Reminder.Status.SKIPPED, reason
    reminder.save(update_fields=["status", "skip_reason", "error"])
    _emit("reminder.skipped", reminder, debt, reason=reason, reason_text=SKIP_REASONS.get(reason, reason))
    return reminder


def _lock_debt(reminder: Reminder) -> Debt:
    if reminder.invoice_id:
        return Debt(invoice=Invoice.objects.select_for_update(of=("self",)).select_related("customer", "creditor")
                    .get(pk=reminder.invoice_id))
    return Debt(request=PaymentRequest.objects.select_for_update(of=("self",)).select_related("customer", "creditor")
                .get(pk=reminder.payment_request_id))


@transaction.atomic
def reminder_begin_send(*, reminder_id: int, today: dt.date,
                        templates: dict[int, dict[str, DunningStepTemplate]] | None = None) -> Reminder | None:
    """The real-time truth: in one transaction, lock the claimed row and the invoice (or request),
    re-read it, and either skip (paid, cancelled…) or render and mark "sending". Returns None when
    another worker holds or already moved the row."""
    reminder = (Reminder.objects.select_for_update(skip_locked=True, of=("self",)).select_related("step")
                .filter(pk=reminder_id, status=Reminder.Status.CLAIMED).first())
    if reminder is None:
        return None
    debt = _lock_debt(reminder)
    if debt.closed_reason:
        return _skip(reminder, debt, debt.closed_reason)
    customer, step = debt.customer, reminder.step
    wants_email = step.sends_email and bool(customer.email)
    wants_sms = step.sends_sms and bool(customer.phone)
    if not (wants_email or wants_sms):
        return _skip(reminder, debt, "no_contact")
    template = _template_for(step, customer.locale, debt.obj.creditor.default_locale, templates)
    if template is None:
        return _skip(reminder, debt, "no_template")
    request = _pay_request_for(debt.invoice) if debt.invoice else debt.request
    context = reminder_context(debt=debt, step=step, template=template, request=request, today=today)
    try:
        subject = " ".join(render(template.subject, context, locale=customer.locale).split())
        body = render(template.body_text, context, locale=customer.locale) if wants_email else ""
        sms_text = " ".join(render(template.sms_text, context, locale=customer.locale).split()) if wants_sms else ""
    except TemplateRefused as exc:
        reminder.error = str(exc)[:2000]
        return _skip(reminder, debt, "template_error")
    reminder.email = customer.email if wants_email and body else ""
    reminder.phone = customer.phone if wants_sms and sms_text else ""
    if not (reminder.email or reminder.phone):
        return _skip(reminder, debt, "no_template")
    reminder.locale, reminder.subject, reminder.body_text, reminder.sms_text = customer.locale, subject, body, sms_text
    reminder.amount_due, reminder.currency = debt.obj.amount_due, debt.obj.currency
    reminder.status, reminder.sending_started_at = Reminder.Status.SENDING, timezone.now()
    reminder.attempts += 1
    reminder.save()
    reminder.debt = debt  # as re-read under the lock: what the message says, and what its event will say
    return reminder


@dataclass
class _Outgoing:
    """The shape notifications.channels sends (a Delivery's fields)."""

    uuid: uuid.UUID
    recipient: str
    subject: str = ""
    body_text: str = ""
    body_html: str = ""


def reminder_deliver(*, reminder: Reminder, mail_connection=None, now: dt.datetime | None = None) -> str:
    """Hand a "sending" reminder to its channels, then record the outcome. No transaction is
    open while SMTP or the SMS provider is called."""
    pending = [c for c in ("email", "sms") if getattr(reminder, "email" if c == "email" else "phone")
               and c not in reminder.channels_done]
    error, permanent = "", False
    for channel in pending:
        if channel == "email":
            result = channels.send_email(
                _Outgoing(uuid=reminder.uuid, recipient=reminder.email, subject=reminder.subject,
                          body_text=reminder.body_text), connection=mail_connection)
        else:
            result = channels.send_sms(_Outgoing(uuid=reminder.uuid, recipient=reminder.phone,
                                                 body_text=reminder.sms_text))
        if not result.ok:
            error, permanent = f"{channel}: {result.error}", result.permanent
            break
        reminder.channels_done = [*reminder.channels_done, channel]
        if channel != pending[-1]:
            # Record each channel as it leaves: a retry after a failure of the next one never repeats it.
            Reminder.objects.filter(pk=reminder.pk, status=Reminder.Status.SENDING).update(
                channels_done=reminder.channels_done)
    return reminder_record(reminder=reminder, error=error, permanent=permanent, now=now)


@transaction.atomic
def reminder_record(*, reminder: Reminder, error: str = "", permanent: bool = False,
                    now: dt.datetime | None = None) -> str:
    if not error and getattr(reminder, "debt", None) is not None:
        # The common case in one statement: the row is still ours only if it is still "sending".
        sent_at = timezone.now()
        if not Reminder.objects.filter(pk=reminder.pk, status=Reminder.Status.SENDING).update(
                status=Reminder.Status.SENT, sent_at=sent_at, error="", channels_done=reminder.channels_done):
            return "lost_race"
        reminder.status, reminder.sent_at, reminder.error = Reminder.Status.SENT, sent_at, ""
        _emit("reminder.sent", reminder, reminder.debt, amount_shown=reminder.amount_due, email=reminder.email,
              phone=reminder.phone, channels=reminder.channels_done, subject=reminder.subject)
        return "sent"
    row = (Reminder.objects.select_for_update(of=("self",))
           .select_related("step", "invoice__customer", "payment_request__customer")
           .filter(pk=reminder.pk, status=Reminder.Status.SENDING).first())
    if row is None:
        return "lost_race"
    row.channels_done = reminder.channels_done
    debt = Debt.of(row)
    if not error:
        row.status, row.sent_at, row.error = Reminder.Status.SENT, timezone.now(), ""
        row.save(update_fields=["status", "sent_at", "error", "channels_done"])
        _emit("reminder.sent", row, debt, amount_shown=row.amount_due, email=row.email, phone=row.phone,
              channels=row.channels_done, subject=row.subject)
        return "sent"
    row.error = error[:4000]
    if permanent or row.attempts >= MAX_ATTEMPTS:
        row.status = Reminder.Status.FAILED
        row.save(update_fields=["status", "error", "channels_done"])
        _emit("reminder.failed", row, debt, error=row.error, attempts=row.attempts)
        return "failed"
    # Refused before leaving (connection refused, 4xx from SMTP…): safe to try again, a little later.
    row.status, row.next_attempt_at = Reminder.Status.CLAIMED, (now or timezone.now()) + RETRY_DELAY
    row.save(update_fields=["status", "error", "channels_done", "next_attempt_at"])
    return "retry_later"


@transaction.atomic
def reminders_recover_stuck(*, older_than: dt.timedelta = STUCK_AFTER, now: dt.datetime | None = None) -> int:
    """Rows left "sending" by a process that died while handing a message over: their outcome is
    unknown, and they are not sent again automatically (see the module docstring)."""
    now = now or timezone.now()
    rows = list(Reminder.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("step", "invoice__customer", "payment_request__customer")
                .filter(status=Reminder.Status.SENDING, sending_started_at__lt=now - older_than))
    for row in rows:
        row.status = Reminder.Status.UNKNOWN
        row.error = ("interrupted while sending: the message may have been delivered, so it is not sent again "
                     "automatically")
        row.save(update_fields=["status", "error"])
        _emit("reminder.failed", row, Debt.of(row), error=row.error, attempts=row.attempts)
    return len(rows)


@transaction.atomic
def escalations_record(*, items: list[PlanItem], today: dt.date) -> int:
    """After the last step: record the scenario's escalation once per invoice (or request) and
    tell the team (dunning.escalated: rules route it to the team, the litigation queue or the ERP)."""
    count = 0
    invoices = Invoice.objects.select_related("customer").in_bulk([i.invoice_id for i in items if i.invoice_id])
    requests = PaymentRequest.objects.select_related("customer").in_bulk(
        [i.payment_request_id for i in items if i.payment_request_id])
    for item in items:
        try:
            # The unique constraint decides between two concurrent runs; the loser's savepoint rolls back.
            with transaction.atomic():
                escalation = DunningEscalation.objects.create(
                    invoice_id=item.invoice_id, payment_request_id=item.payment_request_id,
                    scenario_id=item.scenario_id, action=item.reason, run_date=today)
        except IntegrityError:
            continue
        debt = (Debt(invoice=invoices[item.invoice_id]) if item.invoice_id
                else Debt(request=requests[item.payment_request_id]))
        event_emit(type="dunning.escalated", creditor_id=debt.creditor_id,
                   payload={"escalation_id": escalation.pk, "action": escalation.action,
                            "scenario_id": item.scenario_id, "status": debt.obj.status,
                            "amount_total": debt.amount_total, "amount_paid": debt.obj.amount_paid,
                            **debt.fields()},
                   subjects=debt.subjects())
        count += 1
    return count


# --------------------------------------------------------------------------- pauses


def _pause_payload(pause: DunningPause) -> dict[str, Any]:
    return {"pause_id": pause.pk, "kind": pause.kind, "status": pause.status, "until": pause.until,
            "invoice_id": pause.invoice_id, "invoice_external_ref": pause.invoice.external_ref if pause.invoice_id else "",
            "note": pause.note, **payloads.customer_fields(pause.customer)}


@transaction.atomic
def pause_create(*, customer: Customer, kind: str, invoice: Invoice | None = None, until: dt.date | None = None,
                 note: str = "") -> DunningPause:
    if kind not in DunningPause.Kind.values:
        raise ValidationFailed(_("Unknown pause kind."), field="kind")
    if invoice is not None and invoice.customer_id != customer.pk:
        raise ValidationFailed(_("The invoice belongs to another customer."), field="invoice")
    if kind == DunningPause.Kind.PROMISE_TO_PAY and until is None:
        raise ValidationFailed(_("A promise to pay needs the promised date."), field="until")
    pause = DunningPause.objects.create(customer=customer, invoice=invoice, kind=kind, until=until, note=note)
    event_emit(type="dunning.paused", creditor_id=customer.creditor_id, payload=_pause_payload(pause),
               subjects={"customer": customer.pk, "invoice": invoice.pk if invoice else None})
    return pause


@transaction.atomic
def pause_end(*, pause: DunningPause) -> DunningPause:
    pause = DunningPause.objects.select_for_update(of=("self",)).select_related("customer", "invoice").get(pk=pause.pk)
    if pause.status != DunningPause.Status.ACTIVE:
        raise InvalidTransition(_("This pause has already ended."))
    pause.status, pause.ended_at = DunningPause.Status.ENDED, timezone.now()
    pause.save(update_fields=["status", "ended_at"])
    event_emit(type="dunning.resumed", creditor_id=pause.customer.creditor_id, payload=_pause_payload(pause),
               subjects={"customer": pause.customer_id, "invoice": pause.invoice_id})
    return pause


# --------------------------------------------------------------------------- scenarios


@transaction.atomic
def scenario_create(*, creditor, name: str, steps: list[dict[str, Any]], is_default: bool = False,
                    **fields: Any) -> DunningScenario:
    """A scenario with its steps; each step: offset_days, channel, name, templates {locale: {...}}."""
    if is_default:
        DunningScenario.objects.filter(creditor=creditor, is_default=True).update(is_default=False)
    if DunningScenario.objects.filter(creditor=creditor, name=name).exists():
        raise Conflict(_("A scenario with this name already exists."), field="name")
    scenario = DunningScenario(creditor=creditor, name=name, is_default=is_default, **fields)
    scenario.full_clean(exclude=["creditor"])
    scenario.save()
    for spec in steps:
        step = DunningStep.objects.create(scenario=scenario, offset_days=spec["offset_days"],
                                          channel=spec.get("channel", DunningStep.Channel.EMAIL),
                                          name=spec.get("name", ""))
        for locale, texts in spec.get("templates", {}).items():
            template = DunningStepTemplate(step=step, locale=locale, **texts)
            template.full_clean(exclude=["step"])
            template.save()
    return scenario


