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
import logging
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
from collections_app.dunning.pauses import paused_invoices
from collections_app.dunning.selectors import Action, PlanItem, dunning_plan, scenarios_load
from collections_app.errors import Conflict, InvalidTransition, ValidationFailed
from collections_app.models import Customer, Invoice, PaymentRequest
from notifications import channels
from notifications.services import event_emit
from notifications.templating import TemplateRefused, build_context, render

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAY = dt.timedelta(minutes=30)
STUCK_AFTER = dt.timedelta(minutes=10)  # far longer than one SMTP (30 s) or SMS (10 s) call may last
SEND_BATCH = 200

SKIP_REASONS = {
    "superseded": "a later step was already due (missed during downtime or a pause)",
    "paid": "the invoice is paid",
    "cancelled": "the invoice is cancelled",
    "written_off": "the invoice is written off",
    "no_contact": "the customer has no email address or phone number for this channel",
    "no_template": "the step has no template",
    "template_error": "the template could not be rendered",
}


def _skip_payload(reminder: Reminder, invoice: Invoice, reason: str) -> dict[str, Any]:
    return {**_reminder_payload(reminder, invoice), "reason": reason,
            "reason_text": SKIP_REASONS.get(reason, reason)}


def _reminder_payload(reminder: Reminder, invoice: Invoice) -> dict[str, Any]:
    return {
        "reminder_id": reminder.pk, "scenario_id": reminder.scenario_id, "step_id": reminder.step_id,
        "step_offset_days": reminder.step.offset_days if reminder.step_id else None,
        "step_date": reminder.step_date, "channel": reminder.channel, "status": reminder.status,
        "invoice_id": invoice.pk, "invoice_external_ref": invoice.external_ref,
        "amount_due": invoice.amount_due, "currency": invoice.currency, "due_date": invoice.due_date,
        **payloads.customer_fields(invoice.customer),
    }


def _subjects(invoice: Invoice) -> dict[str, Any]:
    return {"invoice": invoice.pk, "customer": invoice.customer_id}


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
    evaluated_batches = 0
    for batch in dunning_plan(today=today, now=now, creditor_id=creditor_id, batch_size=batch_size):
        evaluated_batches += 1
        for item in batch:
            counts[f"planned_{item.action}"] += 1
        if dry_run:
            items.extend(i.as_dict() for i in batch if i.action in (Action.SEND, Action.ESCALATE))
            continue
        sends = [i for i in batch if i.action == Action.SEND]
        counts["skipped_superseded"] += reminders_claim(items=sends, today=today, token=token)
        counts["escalated"] += escalations_record(items=[i for i in batch if i.action == Action.ESCALATE],
                                                  today=today)
        counts.update(reminders_send_claimed(now=now, today=today))
    if not dry_run:
        # Rows claimed by a process that died before sending them, with no new plan to trigger it.
        counts.update(reminders_send_claimed(now=now, today=today))
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
        for step, step_date in item.superseded:
            rows.append(Reminder(invoice_id=item.invoice_id, step_id=step.id, scenario_id=item.scenario_id,
                                 status=Reminder.Status.SKIPPED, skip_reason="superseded", step_date=step_date,
                                 run_date=today, claim_token=token, channel=step.channel))
        rows.append(Reminder(invoice_id=item.invoice_id, step_id=item.step.id, scenario_id=item.scenario_id,
                             status=Reminder.Status.CLAIMED, step_date=item.step_date, run_date=today,
                             claim_token=token, channel=item.step.channel))
    Reminder.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    # Only the rows this process inserted carry its token: another process's skips are its own to report.
    skipped = list(Reminder.objects.filter(claim_token=token, status=Reminder.Status.SKIPPED,
                                           invoice_id__in=[i.invoice_id for i in items], run_date=today,
                                           skip_reason="superseded")
                   .select_related("step", "invoice__customer"))
    for reminder in skipped:
        event_emit(type="reminder.skipped", creditor_id=reminder.invoice.creditor_id,
                   payload=_skip_payload(reminder, reminder.invoice, "superseded"),
                   subjects=_subjects(reminder.invoice))
    return len(skipped)


def reminders_send_claimed(*, now: dt.datetime, today: dt.date, limit: int | None = None) -> Counter[str]:
    """Send every claimed reminder (this run's, another's, or a crashed run's), one pass."""
    counts: Counter[str] = Counter()
    scenarios = scenarios_load()
    mail = None
    last_id = 0
    try:
        while True:
            batch = list(Reminder.objects.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                                                 status=Reminder.Status.CLAIMED, pk__gt=last_id)
                         .order_by("pk").values_list("pk", "invoice_id", "scenario_id",
                                                     "invoice__customer__time_zone")[:SEND_BATCH])
            if not batch:
                break
            last_id = batch[-1][0]
            paused = paused_invoices(list({r[1] for r in batch}), today)
            release = []
            for pk, invoice_id, scenario_id, tz in batch:
                scenario = scenarios.get(scenario_id)
                if invoice_id in paused or scenario is None or not scenario.in_window(now, tz):
                    release.append(pk)
                    continue
                reminder = reminder_begin_send(reminder_id=pk, today=today)
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
                if limit and counts["sent"] >= limit:
                    return counts
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


def reminder_context(*, invoice: Invoice, step: DunningStep, template: DunningStepTemplate | None,
                     request: PaymentRequest | None, today: dt.date) -> dict[str, Any]:
    base = settings.PUBLIC_BASE_URL
    payload = {
        "invoice_external_ref": invoice.external_ref, "invoice_description": invoice.description,
        "amount_total": invoice.amount_total, "amount_paid": invoice.amount_paid, "amount_due": invoice.amount_due,
        "currency": invoice.currency, "issue_date": invoice.issue_date, "due_date": invoice.due_date,
        "days_overdue": max(0, (today - invoice.due_date).days), "days_until_due": (invoice.due_date - today).days,
        "step_name": step.name, "step_offset_days": step.offset_days,
        "creditor_name": invoice.creditor.legal_name or invoice.creditor.name,
        "creditor_email": invoice.creditor.email, "creditor_phone": invoice.creditor.phone,
        "pay_url": f"{base}/pay/{request.token}/" if request else "",
        "short_reference": request.short_reference if request else "",
        "qr_url": f"{base}/pay/{request.token}/qr.png" if request else "",
        **payloads.customer_fields(invoice.customer),
    }
    context = build_context(event={"type": "reminder", "occurred_at": timezone.now().isoformat()},
                            payload=payload,
                            recipient={"name": invoice.customer.name, "email": invoice.customer.email,
                                       "phone": invoice.customer.phone, "locale": invoice.customer.locale})
    late_fee = template.late_fee_text if template else ""
    context["payload"]["late_fee_text"] = render(late_fee, context, locale=invoice.customer.locale) if late_fee else ""
    return context


def _template_for(step: DunningStep, locale: str, fallback: str) -> DunningStepTemplate | None:
    templates = {t.locale: t for t in step.templates.all()}
    return templates.get(locale) or templates.get(fallback) or next(iter(templates.values()), None)


def _skip(reminder: Reminder, invoice: Invoice, reason: str) -> Reminder:
    reminder.status, reminder.skip_reason = Reminder.Status.SKIPPED, reason
    reminder.save(update_fields=["status", "skip_reason"])
    event_emit(type="reminder.skipped", creditor_id=invoice.creditor_id,
               payload=_skip_payload(reminder, invoice, reason), subjects=_subjects(invoice))
    return reminder


@transaction.atomic
def reminder_begin_send(*, reminder_id: int, today: dt.date) -> Reminder | None:
    """The real-time truth: in one transaction, lock the claimed row and the invoice, re-read the
    invoice, and either skip (paid, cancelled…) or render and mark "sending". Returns None when
    another worker holds or already moved the row."""
    reminder = (Reminder.objects.select_for_update(skip_locked=True, of=("self",)).select_related("step")
                .filter(pk=reminder_id, status=Reminder.Status.CLAIMED).first())
    if reminder is None:
        return None
    invoice = (Invoice.objects.select_for_update(of=("self",)).select_related("customer", "creditor")
               .get(pk=reminder.invoice_id))
    if invoice.status not in Invoice.OPEN_STATUSES:
        return _skip(reminder, invoice, str(invoice.status))
    customer, step = invoice.customer, reminder.step
    wants_email = step.sends_email and bool(customer.email)
    wants_sms = step.sends_sms and bool(customer.phone)
    if not (wants_email or wants_sms):
        return _skip(reminder, invoice, "no_contact")
    template = _template_for(step, customer.locale, invoice.creditor.default_locale)
    if template is None:
        return _skip(reminder, invoice, "no_template")
    request = _pay_request_for(invoice)
    context = reminder_context(invoice=invoice, step=step, template=template, request=request, today=today)
    try:
        subject = " ".join(render(template.subject, context, locale=customer.locale).split())
        body = render(template.body_text, context, locale=customer.locale) if wants_email else ""
        sms_text = " ".join(render(template.sms_text, context, locale=customer.locale).split()) if wants_sms else ""
    except TemplateRefused as exc:
        reminder.error = str(exc)[:2000]
        return _skip(reminder, invoice, "template_error")
    reminder.email = customer.email if wants_email and body else ""
    reminder.phone = customer.phone if wants_sms and sms_text else ""
    if not (reminder.email or reminder.phone):
        return _skip(reminder, invoice, "no_template")
    reminder.locale, reminder.subject, reminder.body_text, reminder.sms_text = customer.locale, subject, body, sms_text
    reminder.amount_due, reminder.currency = invoice.amount_due, invoice.currency
    reminder.status, reminder.sending_started_at = Reminder.Status.SENDING, timezone.now()
    reminder.attempts += 1
    reminder.save()
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
    row = (Reminder.objects.select_for_update(of=("self",)).select_related("step", "invoice__customer")
           .filter(pk=reminder.pk, status=Reminder.Status.SENDING).first())
    if row is None:
        return "lost_race"
    row.channels_done = reminder.channels_done
    invoice = row.invoice
    if not error:
        row.status, row.sent_at, row.error = Reminder.Status.SENT, timezone.now(), ""
        row.save(update_fields=["status", "sent_at", "error", "channels_done"])
        event_emit(type="reminder.sent", creditor_id=invoice.creditor_id,
                   payload={**_reminder_payload(row, invoice), "amount_shown": row.amount_due,
                            "email": row.email, "phone": row.phone, "channels": row.channels_done,
                            "subject": row.subject},
                   subjects=_subjects(invoice))
        return "sent"
    row.error = error[:4000]
    if permanent or row.attempts >= MAX_ATTEMPTS:
        row.status = Reminder.Status.FAILED
        row.save(update_fields=["status", "error", "channels_done"])
        event_emit(type="reminder.failed", creditor_id=invoice.creditor_id,
                   payload={**_reminder_payload(row, invoice), "error": row.error, "attempts": row.attempts},
                   subjects=_subjects(invoice))
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
    rows = list(Reminder.objects.select_for_update(skip_locked=True, of=("self",)).select_related("step", "invoice__customer")
                .filter(status=Reminder.Status.SENDING, sending_started_at__lt=now - older_than))
    for row in rows:
        row.status = Reminder.Status.UNKNOWN
        row.error = ("interrupted while sending: the message may have been delivered, so it is not sent again "
                     "automatically")
        row.save(update_fields=["status", "error"])
        event_emit(type="reminder.failed", creditor_id=row.invoice.creditor_id,
                   payload={**_reminder_payload(row, row.invoice), "error": row.error, "attempts": row.attempts},
                   subjects=_subjects(row.invoice))
    return len(rows)


@transaction.atomic
def escalations_record(*, items: list[PlanItem], today: dt.date) -> int:
    """After the last step: record the scenario's escalation once per invoice and tell the team
    (dunning.escalated: rules route it to the team, the litigation queue or the ERP)."""
    count = 0
    invoices = {i.pk: i for i in Invoice.objects.filter(pk__in=[i.invoice_id for i in items])
                .select_related("customer")}
    for item in items:
        try:
            # The unique constraint decides between two concurrent runs; the loser's savepoint rolls back.
            with transaction.atomic():
                escalation = DunningEscalation.objects.create(invoice_id=item.invoice_id, scenario_id=item.scenario_id,
                                                              action=item.reason, run_date=today)
        except IntegrityError:
            continue
        invoice = invoices[item.invoice_id]
        event_emit(type="dunning.escalated", creditor_id=invoice.creditor_id,
                   payload={"escalation_id": escalation.pk, "action": escalation.action,
                            "scenario_id": item.scenario_id, **payloads.invoice_payload(invoice)},
                   subjects=_subjects(invoice))
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


