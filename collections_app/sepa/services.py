"""SEPA direct-debit collection: the collection run that turns due instalments into pain.008
files, their settlement, pain.002 status reports, mandate amendments and expiry, and the
pre-notification of upcoming debits."""
from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from collections_app import payloads
from collections_app.business_days import add_business_days, local_today, next_business_day
from collections_app.errors import ValidationFailed
from collections_app.models import Creditor, Installment, InstallmentPlan, Mandate, Payment, PaymentMethod
from collections_app.retries.models import CollectionAttempt
from collections_app.retries.reasons import reason_meaning
from collections_app.retries.services import (
    PLAN_RELATED,
    RunResult,
    attempt_mark_succeeded,
    attempt_submit,
    attempts_materialise,
    notice_once,
    run_date,
)
from collections_app.sepa import pain008
from collections_app.sepa.models import CollectionSettings, MandateAmendment, SepaFile, SequenceType
from notifications.services import event_emit

MANDATE_VALIDITY = relativedelta(months=36)


def collection_settings_for(creditor: Creditor) -> CollectionSettings:
    found = CollectionSettings.objects.filter(creditor=creditor).first()
    return found or CollectionSettings(creditor=creditor)


def earliest_collection_date(*, creditor: Creditor, today: dt.date) -> dt.date:
    """The first TARGET2 business day a file sent today may be collected on (SEPA Core lead time)."""
    return add_business_days(today, collection_settings_for(creditor).lead_days)


# --------------------------------------------------------------------------- mandates


@transaction.atomic
def mandate_amend(*, mandate: Mandate, iban: str, bic: str = "") -> Mandate:
    """The debtor moved to a new account: the mandate keeps its reference, the next collection
    carries the original IBAN in its amendment details."""
    from collections_app.services import iban_validate

    mandate = Mandate.objects.select_for_update().get(pk=mandate.pk)
    if mandate.status != Mandate.Status.ACTIVE:
        raise ValidationFailed(_("Only an active mandate can be amended."), field="iban")
    parsed = iban_validate(iban)
    new_bic = bic.strip().upper() or (str(parsed.bic) if parsed.bic is not None else "")
    if parsed.compact == mandate.iban:
        raise ValidationFailed(_("This is already the mandate's IBAN."), field="iban")
    MandateAmendment.objects.create(mandate=mandate, previous_iban=mandate.iban, previous_bic=mandate.bic,
                                    new_iban=parsed.compact, new_bic=new_bic)
    previous_last4 = mandate.iban[-4:]
    mandate.iban, mandate.bic = parsed.compact, new_bic
    mandate.save(update_fields=["iban", "bic", "updated_at"])
    event_emit(type="mandate.amended", creditor_id=mandate.creditor_id,
               payload=payloads.mandate_payload(mandate, mandate.status, previous_iban_last4=previous_last4),
               subjects={"mandate": mandate.pk, "customer": mandate.customer_id})
    return mandate


def mandates_expire_unused(*, today: dt.date | None = None) -> int:
    """A mandate not used for 36 months lapses (SEPA rulebook); never used counts from signature."""
    from collections_app.services import mandate_expire

    today = today or timezone.localdate()
    limit = today - MANDATE_VALIDITY
    ids = list(Mandate.objects.filter(status=Mandate.Status.ACTIVE)
               .filter(Q(last_collected_at__lt=limit) | Q(last_collected_at__isnull=True, signed_at__date__lt=limit))
               .values_list("pk", flat=True))
    count = 0
    for pk in ids:
        with transaction.atomic():
            mandate = Mandate.objects.select_for_update(skip_locked=True).filter(
                pk=pk, status=Mandate.Status.ACTIVE).first()
            if mandate is not None:
                mandate_expire(mandate=mandate)
                count += 1
    return count


# --------------------------------------------------------------------------- collection run


def _sequence_type(mandate: Mandate, first_in_run: set[int]) -> str:
    if mandate.first_collected_at is None and mandate.pk not in first_in_run:
        first_in_run.add(mandate.pk)
        return SequenceType.FRST
    return SequenceType.RCUR


def _free_collection_date(*, creditor: Creditor, start: dt.date, sequence_type: str, scheme: str,
                          version: str) -> dt.date:
    """One file per creditor, collection date and sequence type: what a later run finds for a
    date that already has its file goes to the next business day."""
    day = start
    while SepaFile.objects.filter(creditor=creditor, collection_date=day, sequence_type=sequence_type,
                                  scheme=scheme, scheme_version=version).exists():
        day = next_business_day(day, include_today=False)
    return day


def _message_id(creditor: Creditor, day: dt.date, sequence_type: str) -> str:
    return f"ENC{creditor.pk}-{day:%Y%m%d}-{sequence_type}-{secrets.token_hex(5).upper()}"[:35]


def _creditor_collect(*, creditor_id: int, today: dt.date, only_retries: bool, result: RunResult) -> list[int]:
    """Claim the creditor's due SEPA attempts and write their files, in one transaction: the
    files exist only if every attempt in them is submitted, and the other way round."""
    from collections_app.services import payment_record_failure

    with transaction.atomic():
        # One worker per creditor at a time; the other skips it (this one takes everything due).
        # FOR NO KEY UPDATE: it excludes a second collection run, but not the inserts that merely
        # reference the creditor (invoices, payments of the API) during a long run.
        creditor = Creditor.objects.select_for_update(skip_locked=True, no_key=True).filter(pk=creditor_id).first()
        if creditor is None:
            return []
        conf = collection_settings_for(creditor)
        start = add_business_days(today, conf.lead_days)
        qs = (CollectionAttempt.objects.select_for_update(skip_locked=True, of=("self",))
              .filter(creditor=creditor, method=PaymentMethod.SEPA_DD, status=CollectionAttempt.Status.SCHEDULED,
                      scheduled_for__lte=start)
              .order_by("scheduled_for", "installment_id", "pk"))
        if only_retries:
            qs = qs.filter(number__gt=1)
        groups: dict[tuple[str, str], list[tuple[CollectionAttempt, Payment, Mandate]]] = defaultdict(list)
        first_in_run: set[int] = set()
        for attempt in qs.select_related("installment"):
            plan = InstallmentPlan.objects.select_related(*PLAN_RELATED).get(pk=attempt.installment.plan_id)
            if plan.status != InstallmentPlan.Status.ACTIVE:
                attempt.status = CollectionAttempt.Status.CANCELLED
                attempt.finished_at = timezone.now()
                attempt.save(update_fields=["status", "finished_at", "updated_at"])
                continue
            mandate = (Mandate.objects.select_for_update(no_key=True).get(pk=plan.mandate_id)
                       if plan.mandate_id else None)
            refusal = _refusal(mandate, attempt.installment.currency)
            if refusal:
                payment = attempt_submit(attempt=attempt, plan=plan)
                payment_record_failure(payment=payment, reason_code=refusal, reason_message=reason_meaning(refusal))
                result.failed += 1
                continue
            sequence_type = _sequence_type(mandate, first_in_run)
            payment = attempt_submit(attempt=attempt, extra={"sequence_type": sequence_type}, plan=plan)
            groups[(sequence_type, mandate.scheme)].append((attempt, payment, mandate))
        if not only_retries:
            for payment in _one_off_debits(creditor):
                mandate = Mandate.objects.select_for_update(no_key=True).get(pk=payment.mandate_id)
                refusal = _refusal(mandate, payment.currency)
                if refusal:
                    payment_record_failure(payment=payment, reason_code=refusal,
                                           reason_message=reason_meaning(refusal))
                    result.failed += 1
                    continue
                sequence_type = _sequence_type(mandate, first_in_run)
                attempt, payment = _one_off_submit(payment=payment, creditor=creditor, day=start,
                                                   sequence_type=sequence_type)
                groups[(sequence_type, mandate.scheme)].append((attempt, payment, mandate))
        file_ids = []
        for (sequence_type, scheme), items in groups.items():
            day = _free_collection_date(creditor=creditor, start=start, sequence_type=sequence_type, scheme=scheme,
                                        version=conf.scheme_version)
            file_ids.append(_file_create(creditor=creditor, conf=conf, day=day, sequence_type=sequence_type,
                                         scheme=scheme, items=items, result=result).pk)
        return file_ids


def _refusal(mandate: Mandate | None, currency: str) -> str:
    """Why a debit cannot go into a file at all (an internal reason code), or ""."""
    if mandate is None or mandate.status != Mandate.Status.ACTIVE:
        return "MANDATE_INACTIVE"
    if currency != "EUR":
        return "CURRENCY_NOT_EUR"  # SEPA direct debits are in euros only
    return ""


def _one_off_debits(creditor: Creditor) -> list[Payment]:
    """Direct debits without an instalment (paid by SEPA on the pay page) that no file holds yet:
    collected as soon as the lead time allows."""
    return list(Payment.objects.select_for_update(skip_locked=True, of=("self",), no_key=True)
                .filter(creditor=creditor, method=PaymentMethod.SEPA_DD, installment__isnull=True,
                        mandate__isnull=False, status__in=[Payment.Status.PENDING, Payment.Status.PROCESSING],
                        collection_attempt__isnull=True)
                .order_by("pk"))


def _one_off_submit(*, payment: Payment, creditor: Creditor, day: dt.date,
                    sequence_type: str) -> tuple[CollectionAttempt, Payment]:
    from collections_app.services import payment_mark_processing

    attempt = CollectionAttempt.objects.create(
        installment=None, creditor=creditor, number=1, method=PaymentMethod.SEPA_DD,
        status=CollectionAttempt.Status.SUBMITTED, scheduled_for=day, payment=payment, sequence_type=sequence_type,
        submitted_at=timezone.now())
    if payment.status == Payment.Status.PENDING:
        payment = payment_mark_processing(payment=payment, end_to_end_id=payment.end_to_end_id or payment.uuid.hex)
    elif not payment.end_to_end_id:
        payment.end_to_end_id = payment.uuid.hex
        payment.save(update_fields=["end_to_end_id", "updated_at"])
    return attempt, payment


def _remittance(creditor: Creditor, attempt: CollectionAttempt, payment: Payment,
                plan_sizes: dict[int, int]) -> str:
    installment = attempt.installment
    if installment is None:
        reference = payment.payment_request.reference if payment.payment_request_id else f"{payment.pk}"
        return f"{creditor.name} {reference}"
    return f"{creditor.name} {installment.sequence}/{plan_sizes[installment.plan_id]} plan {installment.plan_id}"


def _file_create(*, creditor: Creditor, conf: CollectionSettings, day: dt.date, sequence_type: str, scheme: str,
                 items: list[tuple[CollectionAttempt, Payment, Mandate]], result: RunResult) -> SepaFile:
    debits = []
    amendments: list[int] = []
    pending_amendments: dict[int, MandateAmendment] = {}
    for amendment in (MandateAmendment.objects.filter(mandate__in=[m.pk for _a, _p, m in items],
                                                      sepa_file__isnull=True).order_by("-created_at")):
        pending_amendments[amendment.mandate_id] = amendment  # the oldest pending one wins
    plan_sizes = dict(Installment.objects.filter(plan__in={a.installment.plan_id for a, _p, _m in items
                                                           if a.installment_id})
                      .values_list("plan").annotate(n=Count("pk")))
    for attempt, payment, mandate in items:
        amendment = pending_amendments.pop(mandate.pk, None)
        if amendment is not None:
            amendments.append(amendment.pk)
        debits.append(pain008.DirectDebit(
            instruction_id=f"A{attempt.pk}", end_to_end_id=payment.end_to_end_id, amount=payment.amount,
            mandate_id=mandate.reference, mandate_signed_on=mandate.signed_at.date(), debtor_name=mandate.holder_name,
            debtor_iban=mandate.iban, debtor_bic=mandate.bic,
            remittance=_remittance(creditor, attempt, payment, plan_sizes),
            amendment=pain008.Amendment(original_iban=amendment.previous_iban) if amendment else None))
        if mandate.first_collected_at is None:
            mandate.first_collected_at = day
        mandate.last_collected_at = max(mandate.last_collected_at or day, day)
        mandate.save(update_fields=["first_collected_at", "last_collected_at", "updated_at"])
    message_id = _message_id(creditor, day, sequence_type)
    message = pain008.Message(
        message_id=message_id, created_at=timezone.now(), initiating_party=creditor.legal_name or creditor.name,
        batches=[pain008.Batch(
            payment_info_id=message_id, collection_date=day, sequence_type=sequence_type,
            creditor_name=creditor.legal_name or creditor.name, creditor_iban=creditor.iban,
            creditor_bic=creditor.bic, creditor_identifier=creditor.sepa_creditor_identifier, debits=debits,
            scheme=scheme, batch_booking=conf.batch_booking, currency="EUR")])
    xml = pain008.build(message, version=conf.scheme_version)  # Pain008Invalid rolls the whole creditor back
    sepa_file = SepaFile.objects.create(
        creditor=creditor, collection_date=day, sequence_type=sequence_type, scheme=scheme,
        scheme_version=conf.scheme_version, message_id=message_id,
        file_name=f"{message_id}.{conf.scheme_version}.xml", transaction_count=message.transaction_count,
        control_sum=message.control_sum, content=xml.decode("utf-8"))
    CollectionAttempt.objects.filter(pk__in=[a.pk for a, _p, _m in items]).update(
        sepa_file=sepa_file, collection_date=day)
    MandateAmendment.objects.filter(pk__in=amendments).update(sepa_file=sepa_file)
    payment_ids = [p.pk for _a, p, _m in items]
    event_emit(type="direct_debit.submitted", creditor_id=creditor.pk,
               payload={"sepa_file_id": sepa_file.pk, "file_name": sepa_file.file_name, "message_id": message_id,
                        "collection_date": day, "sequence_type": sequence_type, "scheme": scheme,
                        "scheme_version": conf.scheme_version, "transaction_count": sepa_file.transaction_count,
                        "control_sum": sepa_file.control_sum, "currency": sepa_file.currency,
                        "payment_ids": payment_ids},
               subjects={"sepa_file": sepa_file.pk, "payment": payment_ids})
    result.submitted += len(items)
    result.files.append({"id": sepa_file.pk, "file_name": sepa_file.file_name, "collection_date": day,
                         "sequence_type": sequence_type, "transactions": sepa_file.transaction_count,
                         "control_sum": sepa_file.control_sum})
    return sepa_file


def sepa_attempts_settle(*, today: dt.date | None = None) -> int:
    """A debit not rejected by the business day after its collection date is paid (the bank's
    status report has had a day to arrive; a later return reverses it)."""
    count = 0
    settled_before = add_business_days(today or timezone.localdate(), -1)
    while True:
        with transaction.atomic():
            batch = list(CollectionAttempt.objects.select_for_update(skip_locked=True, of=("self",))
                         .filter(method=PaymentMethod.SEPA_DD, status=CollectionAttempt.Status.SUBMITTED,
                                 collection_date__lt=settled_before)
                         .select_related("payment").order_by("pk")[:200])
            for attempt in batch:
                if attempt.payment.status == Payment.Status.PROCESSING:
                    attempt_mark_succeeded(attempt=attempt)
                    count += 1
        if len(batch) < 200:
            return count


def sepa_export(*, today: dt.date | None = None, only_retries: bool = False,
                creditor_ids: list[int] | None = None, write: bool = True) -> RunResult:
    """The collection run (`manage.py sepa_export`, daily): settle what is past its collection
    date, expire unused mandates, then put every SEPA attempt due by the earliest collection
    date into pain.008 files, validated, stored and written to the outgoing folder."""
    result = RunResult()
    sepa_attempts_settle(today=today)
    mandates_expire_unused(today=today)
    creditors = Creditor.objects.filter(is_active=True)
    if creditor_ids:
        creditors = creditors.filter(pk__in=creditor_ids)
    for name in (creditors.filter(Q(sepa_creditor_identifier="") | Q(iban=""))
                 .filter(instalment_plans__method=PaymentMethod.SEPA_DD,
                         instalment_plans__status=InstallmentPlan.Status.ACTIVE).distinct()
                 .values_list("name", flat=True)):
        result.errors.append(_("%(creditor)s has direct-debit plans but no SEPA creditor identifier or IBAN.")
                             % {"creditor": name})
    creditors = creditors.exclude(sepa_creditor_identifier="").exclude(iban="")
    for creditor in creditors:
        day = today or local_today(creditor.time_zone)
        if not only_retries:
            attempts_materialise(method=PaymentMethod.SEPA_DD, creditor=creditor,
                                 up_to=earliest_collection_date(creditor=creditor, today=day))
        try:
            with run_date(day):
                _creditor_collect(creditor_id=creditor.pk, today=day, only_retries=only_retries, result=result)
        except pain008.Pain008Invalid as exc:
            result.errors.append(_("%(creditor)s: the pain.008 file does not validate: %(errors)s")
                                 % {"creditor": creditor, "errors": "; ".join(exc.errors[:5])})
    if write:
        sepa_files_write_pending()
    return result


def sepa_files_write_pending() -> list[SepaFile]:
    """Write the generated files not in the outgoing folder yet: the collection run's, and any
    that a run killed between recording and writing them left behind (the write-sepa-files
    schedule passes every few minutes, so they still leave before the bank's cut-off). Files
    recorded as written whose rename a killed worker did not do are published first."""
    _sepa_files_finish_publishing()
    return [sepa_file_write(sepa_file=sepa_file)
            for sepa_file in SepaFile.objects.filter(status=SepaFile.Status.GENERATED).only("pk").order_by("pk")]


def outgoing_dir() -> Path:
    return Path(settings.SEPA_OUTGOING_DIR)


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.part")


def _publish(partial: Path, target: Path) -> None:
    try:
        os.replace(partial, target)
    except FileNotFoundError:
        pass  # another worker published it first


def _sepa_files_finish_publishing() -> None:
    """Hidden files whose SepaFile is committed as written: their worker died between the commit
    and the rename. Renamed now (the file was never visible, so the bank never took it)."""
    folder = outgoing_dir()
    if not folder.is_dir():
        return
    partials = {p.name[1:-len(".part")]: p for p in folder.glob("*/.*.part")}
    if not partials:
        return
    for file_name, written_path in SepaFile.objects.filter(file_name__in=list(partials),
                                                           status=SepaFile.Status.WRITTEN) \
            .values_list("file_name", "written_path"):
        if written_path and _partial(Path(written_path)) == partials[file_name]:
            _publish(partials[file_name], Path(written_path))


def sepa_file_write(*, sepa_file: SepaFile, again: bool = False) -> SepaFile:
    """Write the file to the outgoing drop folder for the bank channel (EBICS client or manual
    upload): written under a hidden temporary name, recorded as written, and renamed to its
    final name only once that is committed, so a reader never sees half a file and a worker
    killed in between never publishes a file twice (the bank channel may already have taken
    the first copy: a second one would debit everyone again). `again` writes a file already
    written (staff asking for it from the admin)."""
    statuses = [SepaFile.Status.GENERATED, SepaFile.Status.WRITTEN] if again else [SepaFile.Status.GENERATED]
    pk = sepa_file.pk
    with transaction.atomic():
        sepa_file = SepaFile.objects.select_for_update(skip_locked=True).filter(pk=pk, status__in=statuses).first()
        if sepa_file is None:
            return SepaFile.objects.get(pk=pk)
        folder = outgoing_dir() / str(sepa_file.creditor_id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / sepa_file.file_name
        partial = _partial(target)
        with open(partial, "wb") as handle:
            handle.write(sepa_file.content.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        sepa_file.status = SepaFile.Status.WRITTEN
        sepa_file.written_path = str(target)
        sepa_file.written_at = timezone.now()
        sepa_file.save(update_fields=["status", "written_path", "written_at", "updated_at"])
    _publish(partial, target)
    return sepa_file


# --------------------------------------------------------------------------- pre-notification


def direct_debits_prenotify(*, today: dt.date | None = None) -> int:
    """direct_debit.upcoming for each SEPA collection due within the creditor's pre-notification
    window (first collections and retries), once per instalment and attempt."""
    count = 0
    for creditor in Creditor.objects.filter(is_active=True):
        day = today or local_today(creditor.time_zone)
        horizon = day + dt.timedelta(days=collection_settings_for(creditor).pre_notification_days)
        upcoming = []
        for inst in (Installment.objects.filter(
                plan__creditor=creditor, plan__method=PaymentMethod.SEPA_DD, plan__status=InstallmentPlan.Status.ACTIVE,
                status=Installment.Status.SCHEDULED, due_date__gte=day, due_date__lte=horizon)
                .select_related("plan__mandate", "plan__customer")):
            upcoming.append((inst, 1, next_business_day(inst.due_date)))
        for attempt in (CollectionAttempt.objects.filter(
                creditor=creditor, method=PaymentMethod.SEPA_DD, status=CollectionAttempt.Status.SCHEDULED,
                number__gt=1, scheduled_for__gte=day, scheduled_for__lte=horizon)
                .select_related("installment__plan__mandate", "installment__plan__customer")):
            upcoming.append((attempt.installment, attempt.number, next_business_day(attempt.scheduled_for)))
        for inst, number, collection_day in upcoming:
            mandate = inst.plan.mandate
            if mandate is None:
                continue
            with transaction.atomic():
                if not notice_once(kind="direct_debit.upcoming", key=f"{inst.pk}:{number}"):
                    continue
                event_emit(type="direct_debit.upcoming", creditor_id=creditor.pk, payload={
                    "installment_id": inst.pk, "instalment_plan_id": inst.plan_id, "sequence": inst.sequence,
                    "attempt": number, "collection_date": collection_day, "amount": inst.amount,
                    "currency": inst.currency, "mandate_reference": mandate.reference,
                    "creditor_identifier": creditor.sepa_creditor_identifier, "iban_last4": mandate.iban[-4:],
                    **payloads.customer_fields(inst.plan.customer)},
                    subjects={"installment": inst.pk, "instalment_plan": inst.plan_id,
                              "customer": inst.plan.customer_id, "mandate": mandate.pk})
                count += 1
    return count


# --------------------------------------------------------------------------- pain.002


@dataclass
class StatusReportResult:
    message_id: str = ""
    original_message_id: str = ""
    rejected: list[dict[str, Any]] = field(default_factory=list)
    accepted: int = 0
    errors: list[str] = field(default_factory=list)
    already_imported: bool = False
    report_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message_id": self.message_id, "original_message_id": self.original_message_id,
                "rejected": self.rejected, "accepted": self.accepted, "errors": self.errors,
                "already_imported": self.already_imported, "report_id": self.report_id}


def status_report_import(*, content: bytes, filename: str = "", today: dt.date | None = None) -> StatusReportResult:
    """Import a pain.002 status report: every rejected transaction fails its payment with the
    reason code (and so goes through the retry policy). All or nothing: a report naming a
    transaction we never sent is reported and nothing of it is applied."""
    from collections_app.sepa import pain002
    from collections_app.sepa.models import StatusReport
    from collections_app.services import payment_record_failure, payment_reverse

    try:
        report = pain002.parse(content)
    except pain002.Pain002Error as exc:
        return StatusReportResult(errors=[str(exc)])
    result = StatusReportResult(message_id=report.message_id, original_message_id=report.original_message_id,
                                accepted=report.accepted)
    if StatusReport.objects.filter(message_id=report.message_id).exists():
        result.already_imported = True
        return result
    rejections = _named_rejections(report, result)
    # Whole-file or whole-block rejections name no transaction: they reject every one of it. Our
    # pain.008 files carry a single PmtInf block whose id is the message id.
    named = {r.end_to_end_id for r in rejections}
    blankets = [(block_id or report.original_message_id, reason, True)
                for block_id, reason in report.block_rejections.items()]
    if report.group_rejection is not None:
        blankets.append((report.original_message_id, report.group_rejection, False))
    for message_id, reason, is_block in blankets:
        sepa_file = SepaFile.objects.filter(message_id=message_id).first()
        if is_block and (sepa_file is None or message_id != (report.original_message_id or message_id)):
            result.errors.append(_("Unknown payment information block %(id)s in message %(msg)s.")
                                 % {"id": message_id, "msg": report.original_message_id})
            continue
        if sepa_file is None:
            result.errors.append(_("Unknown original message %(id)s.") % {"id": message_id})
            continue
        for e2e in sepa_file.attempts.values_list("payment__end_to_end_id", flat=True):
            if e2e not in named:  # a reason given for the transaction itself wins
                named.add(e2e)
                rejections.append(pain002.Rejection(end_to_end_id=e2e, reason_code=reason))
    wanted = {r.end_to_end_id for r in rejections}
    payments = {p.end_to_end_id: p for p in Payment.objects.filter(
        method=PaymentMethod.SEPA_DD, end_to_end_id__in=wanted).select_related("collection_attempt__sepa_file")}
    for index, rejection in enumerate(rejections, start=1):
        payment = payments.get(rejection.end_to_end_id)
        if payment is None:
            result.errors.append(_("Transaction %(n)d: unknown end-to-end id %(e2e)s.")
                                 % {"n": index, "e2e": rejection.end_to_end_id})
        elif (report.original_message_id and getattr(payment, "collection_attempt", None) is not None
              and payment.collection_attempt.sepa_file_id
              and payment.collection_attempt.sepa_file.message_id != report.original_message_id):
            result.errors.append(_("Transaction %(n)d: %(e2e)s was not sent in message %(msg)s.")
                                 % {"n": index, "e2e": rejection.end_to_end_id, "msg": report.original_message_id})
    if result.errors:
        return result
    with transaction.atomic(), run_date(today):
        report_row = StatusReport.objects.create(
            message_id=report.message_id, original_message_id=report.original_message_id, file_name=filename[:255],
            content=_report_text(content, report.encoding), accepted_count=report.accepted,
            rejected_count=len(rejections))
        result.report_id = report_row.pk
        for rejection in rejections:
            # attempt before payment: the order the settlement and the card runs lock them in
            CollectionAttempt.objects.select_for_update().filter(
                payment_id=payments[rejection.end_to_end_id].pk).first()
            payment = Payment.objects.select_for_update().get(pk=payments[rejection.end_to_end_id].pk)
            entry = {"end_to_end_id": rejection.end_to_end_id, "payment_id": payment.pk,
                     "reason_code": rejection.reason_code, "reason": reason_meaning(rejection.reason_code)}
            if payment.status == Payment.Status.SUCCEEDED:
                # settled before its reject arrived: the money never came, undo it like a return
                _forget_first_collection(payment)
                payment_reverse(payment=payment, reason_code=rejection.reason_code,
                                reason_message=reason_meaning(rejection.reason_code))
            elif payment.status not in (Payment.Status.PENDING, Payment.Status.PROCESSING):
                entry["skipped"] = _("payment already %(status)s") % {"status": payment.status}
                result.rejected.append(entry)
                continue
            else:
                _forget_first_collection(payment)
                payment_record_failure(payment=payment, reason_code=rejection.reason_code,
                                       reason_message=reason_meaning(rejection.reason_code))
            # one-off debits have no instalment, so no retry decision recorded the failure
            CollectionAttempt.objects.filter(payment=payment, status__in=[
                CollectionAttempt.Status.SUBMITTED, CollectionAttempt.Status.SUCCEEDED]).update(
                status=CollectionAttempt.Status.FAILED, reason_code=rejection.reason_code,
                reason_message=reason_meaning(rejection.reason_code), finished_at=timezone.now(),
                updated_at=timezone.now())
            attempt = CollectionAttempt.objects.filter(payment=payment).first()
            entry["will_retry"] = bool(attempt and attempt.will_retry)
            result.rejected.append(entry)
    return result


def _report_text(content: bytes, encoding: str) -> str:
    try:
        return content.decode(encoding, errors="replace")
    except LookupError:  # an encoding libxml2 knows under a name Python does not
        return content.decode("utf-8", errors="replace")


def _named_rejections(report, result: StatusReportResult) -> list:
    """The rejections the report names, each once. A bank that only echoes our instruction id
    (InstrId, "A" + the collection attempt's id) is matched through it."""
    from collections_app.sepa import pain002

    attempt_ids = {int(r.instruction_id[1:]) for r in report.rejections
                   if not r.end_to_end_id and r.instruction_id[:1] == "A" and r.instruction_id[1:].isascii()
                   and r.instruction_id[1:].isdigit() and len(r.instruction_id) <= 19}
    by_instruction = {f"A{pk}": e2e for pk, e2e in CollectionAttempt.objects.filter(
        pk__in=attempt_ids, payment__isnull=False).values_list("pk", "payment__end_to_end_id") if e2e}
    rejections, seen = [], set()
    for index, rejection in enumerate(report.rejections, start=1):
        e2e = rejection.end_to_end_id or by_instruction.get(rejection.instruction_id, "")
        if not e2e:
            result.errors.append(_("Transaction %(n)d: unknown instruction id %(id)s.")
                                 % {"n": index, "id": rejection.instruction_id})
        elif e2e not in seen:
            seen.add(e2e)
            rejections.append(pain002.Rejection(end_to_end_id=e2e, reason_code=rejection.reason_code,
                                                instruction_id=rejection.instruction_id))
    return rejections


def _forget_first_collection(payment: Payment) -> None:
    """A rejected FRST never reached the debtor's account: the next collection is FRST again."""
    attempt = CollectionAttempt.objects.filter(payment=payment).first()
    if attempt is None or attempt.sequence_type != SequenceType.FRST or payment.mandate_id is None:
        return
    Mandate.objects.filter(pk=payment.mandate_id, first_collected_at=attempt.collection_date).update(
        first_collected_at=None)

