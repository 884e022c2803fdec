#!/usr/bin/env python3
"""End-to-end chaos run: several real `manage.py qcluster` processes on one PostgreSQL, killed
with SIGKILL at random moments and restarted, then a settle phase and invariant checks.

    .venv/bin/python scripts/chaos.py [--minutes 5] [--clusters 3] [--invoices 3000] [--seed 1]

Without DATABASE_URL it starts a throw-away PostgreSQL with scripts/pgtmp.py. Everything else
(data folders, drop folders, outboxes) lives in a temporary ENCAISSE_DATA_DIR, removed at the end
unless --keep. External parties are real and local: an HTTP receiver (webhooks and the HTTP SMS
provider) and an aiosmtpd SMTP sink record every request/message with its idempotency id.

Not part of the test suite (it is slow and random by design). Exit status 0 when every
invariant holds, 1 otherwise."""
from __future__ import annotations

import argparse
import atexit
import collections
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def log(msg: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- external parties


class Recorder:
    """Every webhook / SMS request and every email, kept in memory and in a JSONL file."""

    def __init__(self, path: Path):
        self.lock = threading.Lock()
        self.webhooks: list[dict] = []
        self.sms: list[dict] = []
        self.emails: list[dict] = []
        self.bank_files: list[dict] = []
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def add(self, kind: str, item: dict) -> None:
        with self.lock:
            getattr(self, kind).append(item)
            self.file.write(json.dumps({"kind": kind, **item}) + "\n")
            self.file.flush()


def start_http(recorder: Recorder, port: int) -> ThreadingHTTPServer:
    counter = iter(range(1, 10**9))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body leave in two writes: with Nagle's algorithm the body waits for the
        # sender's delayed ACK (~40 ms a request), which made the settle of a big run crawl.
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            headers = {k.lower(): v for k, v in self.headers.items()}
            if self.path.startswith("/sms"):
                data = json.loads(body or "{}")
                recorder.add("sms", {"idempotency_key": headers.get("idempotency-key", ""), "to": data.get("to"),
                                     "text": data.get("text"), "at": time.time()})
            else:
                recorder.add("webhooks", {"webhook_id": headers.get("webhook-id", ""), "path": self.path,
                                          "type": (json.loads(body).get("type") if body.startswith("{") else ""),
                                          "at": time.time()})
            answer = json.dumps({"ok": True, "id": f"r{next(counter)}"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a sender killed mid-request resets its connection: expected here

    server = Server(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_smtp(recorder: Recorder, port: int):
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            msg = message_from_bytes(envelope.content, policy=policy.default)
            recorder.add("emails", {"message_id": str(msg.get("Message-ID", "")),
                                    "delivery": str(msg.get("X-Encaisse-Delivery", "")),
                                    "to": sorted(envelope.rcpt_tos), "subject": str(msg.get("Subject", "")),
                                    "at": time.time()})
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- load


def cfonb_line(code: str, *, account: tuple[str, str, str], date: str, amount: Decimal | None = None,
               label: str = "", ref: str = "", entry_no: str = "", qualifier: str = "", text: str = "") -> str:
    bank, branch, acct = account
    rec = [" "] * 120

    def put(start: int, value: str) -> None:
        for i, ch in enumerate(value):
            rec[start + i] = ch

    put(0, code), put(2, bank), put(11, branch), put(16, "EUR2"), put(21, acct), put(34, date)
    if code == "04":
        put(7, "0158"), put(32, "05"), put(42, date), put(48, label[:31].ljust(31)), put(81, entry_no.rjust(7, "0"))
    if code == "05":
        put(7, "0158"), put(32, "05"), put(45, qualifier), put(48, text[:70])
    if amount is not None:
        cents = int((abs(amount) * 100).to_integral_value())
        digits = f"{cents:014d}"
        last = int(digits[-1])
        sign = "{ABCDEFGHI"[last] if amount >= 0 else "}JKLMNOPQR"[last]
        put(90, digits[:-1] + sign)
    if ref:
        put(104, ref[:16])
    return "".join(rec)


def cfonb120(account: tuple[str, str, str], day: dt.date, entries: list[dict]) -> bytes:
    d = day.strftime("%d%m%y")
    lines = [cfonb_line("01", account=account, date=d, amount=Decimal("0"))]
    for n, e in enumerate(entries, 1):
        lines.append(cfonb_line("04", account=account, date=d, amount=e["amount"], label="VIR SEPA RECU",
                                ref=e["ref"], entry_no=str(n)))
        lines.append(cfonb_line("05", account=account, date=d, qualifier="NPY", text=e["name"]))
        lines.append(cfonb_line("05", account=account, date=d, qualifier="LCC", text=e["text"]))
    total = sum((e["amount"] for e in entries), Decimal(0))
    lines.append(cfonb_line("07", account=account, date=d, amount=total))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def camt053(iban: str, day: dt.date, msg_id: str, entries: list[dict]) -> bytes:
    from xml.sax.saxutils import escape

    rows = "".join(
        f'<Ntry><Amt Ccy="EUR">{e["amount"]}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>'
        f"<BookgDt><Dt>{day}</Dt></BookgDt><AcctSvcrRef>{escape(e['ref'])}</AcctSvcrRef><NtryDtls><TxDtls>"
        f"<RltdPties><Dbtr><Nm>{escape(e['name'])}</Nm></Dbtr></RltdPties>"
        f"<RmtInf><Ustrd>{escape(e['text'])}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>" for e in entries)
    total = sum((e["amount"] for e in entries), Decimal(0))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>{msg_id}</MsgId><CreDtTm>{day}T06:00:00+01:00</CreDtTm></GrpHdr>"
        f"<Stmt><Id>{msg_id}</Id><Acct><Id><IBAN>{iban}</IBAN></Id><Ccy>EUR</Ccy></Acct>"
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<Dt><Dt>{day}</Dt></Dt></Bal>"
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{total}</Amt>'
        f"<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{day}</Dt></Dt></Bal>{rows}</Stmt></BkToCstmrStmt></Document>"
    ).encode()


class Load:
    """What was dropped, to check against afterwards."""

    def __init__(self):
        self.invoices: dict[str, Decimal] = {}  # ref -> amount
        self.due: dict[str, dt.date] = {}
        self.invoice_files: list[str] = []
        self.statement_entries: dict[str, dict] = {}  # bank ref -> entry (ref, amount, invoice)
        self.statement_files: list[str] = []
        self.sepa_plans: list[int] = []
        self.card_plans: list[int] = []


def seed_load(args, rng: random.Random, data_dir: Path, http_port: int) -> tuple[Load, dict]:
    """Rows through the product's own services, files through its drop folders."""
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.utils import timezone
    from django_q.models import Schedule

    from collections_app import services
    from collections_app.dunning.models import DunningScenario
    from collections_app.gateways.sandbox import tokenize
    from collections_app.models import Creditor, PaymentMethod
    from notifications.models import NotificationRule, NotificationTemplate, WebhookEndpoint
    from notifications.signing import secret_generate

    load = Load()
    creditor = Creditor.objects.get(name="Atelier Dupont SAS")
    today = timezone.localdate()
    # Reminders may go out at any hour of the run (the product's own scenario settings).
    DunningScenario.objects.filter(creditor=creditor).update(window_start=dt.time(0, 0), window_end=dt.time(23, 59, 59))
    # Every schedule every minute: more overlapping runs in a few minutes (the harness's database only).
    Schedule.objects.filter(name__startswith="encaisse:").update(schedule_type=Schedule.MINUTES, minutes=1,
                                                                 next_run=timezone.now())
    # Webhooks, SMS and emails to the local parties.
    endpoint = WebhookEndpoint.objects.create(name="chaos receiver", url=f"http://127.0.0.1:{http_port}/hooks/chaos",
                                              secret=secret_generate())
    wh_tpl, _ = NotificationTemplate.objects.get_or_create(key="chaos-webhook", channel="webhook", locale="fr")
    sms_tpl, _ = NotificationTemplate.objects.get_or_create(
        key="chaos-sms", channel="sms", locale="fr",
        defaults={"body_text": "Paiement de {{ payload.amount }} recu, merci."})
    for event_type in ("invoice.created", "payment.succeeded", "payment_request.paid", "reminder.sent",
                       "direct_debit.submitted", "bank_transaction.unmatched"):
        NotificationRule.objects.create(name=f"chaos webhook {event_type}", event_type=event_type, channel="webhook",
                                        template=wh_tpl, recipient="webhook", webhook_endpoint=endpoint)
    NotificationRule.objects.create(name="chaos sms payment", event_type="payment.succeeded", channel="sms",
                                    template=sms_tpl, recipient="customer")
    Group.objects.get_or_create(name="sales")
    # Invoices: CSV files in the drop folder of the demo mapping.
    n_customers = max(10, args.invoices // 10)
    offsets = [3, -3, -10, -20, 30, 1]  # due in 3 days (courtesy today), 3/10/20 days late, later, tomorrow
    rows = []
    for i in range(args.invoices):
        ref = f"CH-{i:06d}"
        c = i % n_customers
        amount = Decimal(10 + (i * 37) % 990) + Decimal(i % 100) / 100
        due = today - dt.timedelta(days=offsets[i % len(offsets)])
        issue = due - dt.timedelta(days=30)
        load.invoices[ref], load.due[ref] = amount, due
        rows.append(f"{ref};CC-{c:05d};Client Chaos {c};chaos{c}@example.com;06 12 {c % 100:02d} {c // 100 % 100:02d} 56;"
                    f"{str(amount).replace('.', ',')};{issue:%d/%m/%Y};{due:%d/%m/%Y}\n")
    folder = Path(settings.CONNECTORS_IMPORT_DIR) / "erp-demo"
    folder.mkdir(parents=True, exist_ok=True)
    per_file = 500
    for n in range(0, len(rows), per_file):
        name = f"chaos-{n // per_file:03d}.csv"
        tmp = folder / f".{name}"
        tmp.write_text("reference;customer_ref;name;email;phone;amount;issue_date;due_date\n"
                       + "".join(rows[n:n + per_file]), encoding="utf-8")
        os.replace(tmp, folder / name)
        load.invoice_files.append(name)
    # SEPA direct-debit plans due now, and card instalment plans due today.
    for k in range(args.plans):
        customer = services.customer_create(creditor=creditor, external_ref=f"DD-{k:04d}", name=f"Debiteur {k}",
                                            email=f"dd{k}@example.com", phone="+33611111111")
        invoice = services.invoice_create(creditor=creditor, customer=customer, external_ref=f"DDI-{k:04d}",
                                          amount_total=Decimal("90.00") + k, issue_date=today, due_date=today)
        request = services.payment_request_create(creditor=creditor, customer=customer, invoices=[invoice])
        if k % 2 == 0:
            mandate = services.mandate_create(creditor=creditor, customer=customer, holder_name=customer.name,
                                              iban="FR1420041010050500013M02606", signature_ip="127.0.0.1")
            schedule = services.instalment_schedule_build(total=request.amount_due, count=3,
                                                          first_due_date=today + dt.timedelta(days=1))
            plan = services.installment_plan_create(customer=customer, method=PaymentMethod.SEPA_DD,
                                                    schedule=schedule, payment_request=request, mandate=mandate)
            load.sepa_plans.append(plan.pk)
        else:
            token = tokenize(number="4242424242424242", exp_month=12, exp_year=today.year + 2, cvc="123")
            card = services.saved_card_create(customer=customer, gateway="sandbox", gateway_token=token,
                                              brand="visa", last4="4242", exp_month=12, exp_year=today.year + 2)
            schedule = services.instalment_schedule_build(total=request.amount_due, count=3, first_due_date=today)
            plan = services.installment_plan_create(customer=customer, method=PaymentMethod.CARD, schedule=schedule,
                                                    payment_request=request, saved_card=card)
            load.card_plans.append(plan.pk)
    # Statements (dropped later, once invoices exist): full payments of ~40 % of the invoices, some partial.
    refs = sorted(load.invoices)
    paid = rng.sample(refs, k=int(len(refs) * 0.4))
    entries = []
    for j, ref in enumerate(paid):
        amount = load.invoices[ref] if j % 10 else (load.invoices[ref] / 2).quantize(Decimal("0.01"))
        bank_ref = f"CHX{j:07d}"
        entries.append({"ref": bank_ref, "amount": amount, "name": f"CLIENT {ref}", "text": f"Facture {ref}",
                        "invoice": ref})
        load.statement_entries[bank_ref] = {"amount": amount, "invoice": ref}
    statement_jobs = []
    chunk = max(1, len(entries) // 4)
    parts = [entries[i:i + chunk] for i in range(0, len(entries), chunk)]
    account = ("30006", "00001", "12345678901")  # the demo creditor's IBAN FR76 30006 00001 12345678901 89
    for n, part in enumerate(parts):
        day = today - dt.timedelta(days=len(parts) - n)
        if n % 2:
            statement_jobs.append((f"chaos-{n}.cfonb.txt", cfonb120(account, day, part)))
        else:
            statement_jobs.append((f"chaos-{n}.camt053.xml", camt053(creditor.iban, day, f"CHAOS-{n}", part)))
    # The same first statement again under another name (a bank resending it): must create nothing.
    statement_jobs.append(("chaos-0-again.camt053.xml", statement_jobs[0][1]))
    return load, {"statements": statement_jobs, "creditor_id": creditor.pk}


def drop_statements(jobs: list[tuple[str, bytes]], load: Load) -> None:
    from django.conf import settings

    folder = Path(settings.STATEMENT_DROP_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in jobs:
        tmp = folder / f".{name}"
        tmp.write_bytes(content)
        os.replace(tmp, folder / name)
        load.statement_files.append(name)


# --------------------------------------------------------------------------- workers


class Clusters:
    def __init__(self, count: int, env: dict, logdir: Path):
        self.env, self.logdir, self.procs, self.started = env, logdir, [None] * count, 0
        self.lock = threading.Lock()  # the random killer and the claim killer restart clusters

    def start(self, i: int) -> None:
        self.started += 1
        out = open(self.logdir / f"qcluster-{i}-{self.started}.log", "wb")  # noqa: SIM115
        self.procs[i] = subprocess.Popen([PY, "manage.py", "qcluster"], cwd=ROOT, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, i: int) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole cluster: sentinel, pusher, workers, monitor
            proc.wait()

    def stop_all(self, timeout: float = 60) -> None:
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for i, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(i)
            try:  # stray children of a cluster stopped gracefully
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------- web tier (--web)


class WebTier:
    """gunicorn with sync workers, as in production; its workers are SIGKILLed at random while
    an integrator's calls are in flight (the master starts new ones)."""

    def __init__(self, workers: int, env: dict, logdir: Path, port: int):
        self.port = port
        out = open(logdir / "gunicorn.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [PY, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers), "--bind",
             f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "2"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        import httpx

        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/schema/", timeout=5)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("gunicorn did not start (see gunicorn.log)")

    def workers(self) -> list[int]:
        pids = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as stat:
                        if int(stat.read().rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                            pids.append(int(pid))
                except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                    continue
        return pids

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@dataclass
class ApiCall:
    key: str
    path: str
    body: dict
    answers: list[int] = field(default_factory=list)  # every status seen (0: connection lost)
    trace: list[str] = field(default_factory=list)  # each try: its answer and how long it took
    final: tuple[int, str] | None = None


def api_calls(n: int, customer_id: int, rng: random.Random) -> list[ApiCall]:
    """What an ERP sends: customers, payment requests and bulk invoice imports (the slow ones,
    so that kills land in the middle of their work), each with its own Idempotency-Key."""
    calls = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            calls.append(ApiCall(f"web-c-{i}", "/api/v1/customers/",
                                 {"external_ref": f"WEB-C{i:05d}", "name": f"Client Web {i}",
                                  "email": f"web{i}@example.org"}))
        elif kind == 1:
            calls.append(ApiCall(f"web-pr-{i}", "/api/v1/payment-requests/",
                                 {"customer": customer_id, "reference": f"WEB-PR{i:05d}",
                                  "amount": f"{rng.randint(100, 9999)}.{rng.randint(0, 99):02d}", "currency": "EUR"}))
        else:
            rows = rng.randint(50, 400)
            calls.append(ApiCall(f"web-imp-{i}", "/api/v1/invoice-imports/", {"mode": "all_or_nothing", "invoices": [
                {"external_ref": f"WEB-I{i:05d}-{j:03d}", "customer_ref": f"WEB-IC{(i + j) % 40:03d}",
                 "name": f"Client Import {(i + j) % 40}", "amount": f"{10 + j}.50", "due_date": "2026-12-31"}
                for j in range(rows)]}))
    return calls


def api_client(calls: Iterator[ApiCall], lock: threading.Lock, port: int, raw_key: str) -> None:
    """An integrator that retries each call with the same key until it has an answer (a lost
    connection, a 5xx or a 409 'in progress' are tried again), as our API documentation says."""
    import httpx

    headers = {"Authorization": f"Api-Key {raw_key}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as client:
        while True:
            with lock:
                call = next(calls, None)
            if call is None:
                return
            deadline = time.monotonic() + 600  # a slow answer is not the invariant; a key stuck is
            while time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = client.post(call.path, json=call.body, headers={"Idempotency-Key": call.key})
                except httpx.HTTPError as exc:
                    call.answers.append(0)
                    call.trace.append(f"{type(exc).__name__} after {time.monotonic() - sent:.1f}s")
                    time.sleep(0.2)
                    continue
                call.answers.append(response.status_code)
                call.trace.append(f"{response.status_code} after {time.monotonic() - sent:.1f}s")
                in_progress = response.status_code == 409 and "idempotency_request_in_progress" in response.text
                if response.status_code >= 500 or in_progress:
                    time.sleep(0.3)
                    continue
                call.final = (response.status_code, response.text)
                break


def web_killer(stop: threading.Event, rng: random.Random, web: WebTier, kills: list[int]) -> None:
    while not stop.wait(rng.uniform(0.3, 2.0)):
        pids = web.workers()
        if pids:
            try:
                os.kill(rng.choice(pids), signal.SIGKILL)
                kills[0] += 1
            except ProcessLookupError:
                pass


def check_web(calls: list[ApiCall], port: int, raw_key: str, kills: int) -> list[tuple[str, bool, str]]:
    import httpx

    from collections_app.models import Customer, IdempotencyRecord, Invoice, PaymentRequest

    results = []
    unanswered = [(c.key, c.trace[-4:]) for c in calls if c.final is None]
    refused = [(c.key, c.final[0], c.final[1][:120]) for c in calls if c.final and c.final[0] >= 300]
    lost = sum(a == 0 for c in calls for a in c.answers)
    waits = sum(a == 409 for c in calls for a in c.answers)
    spent = {c.key: sum(float(t.rsplit(" after ", 1)[1].rstrip("s")) for t in c.trace) for c in calls}
    slowest = max(spent.items(), key=lambda kv: kv[1], default=("", 0.0))
    results.append(("web: every API call answered 2xx in the end, retried with its key",
                    not unanswered and not refused,
                    f"{len(calls)} calls, {kills} gunicorn workers killed, {lost} connections lost, {waits} "
                    f"'in progress' answers, slowest {slowest[0]} {slowest[1]:.0f} s in its tries; "
                    f"unanswered {unanswered[:5]}, refused {refused[:3]}"))
    customers = collections.Counter(Customer.objects.filter(external_ref__startswith="WEB-C")
                                    .values_list("external_ref", flat=True))
    requests = collections.Counter(PaymentRequest.objects.filter(reference__startswith="WEB-PR")
                                   .values_list("reference", flat=True))
    invoices = collections.Counter(Invoice.objects.filter(external_ref__startswith="WEB-I")
                                   .values_list("external_ref", flat=True))
    wanted_invoices = {row["external_ref"] for c in calls if "invoices" in c.body for row in c.body["invoices"]}
    links = collections.Counter(PaymentRequest.invoices.through.objects.filter(invoice__external_ref__startswith="WEB-I")
                                .values_list("invoice__external_ref", flat=True))
    twice = [k for counter in (customers, requests, invoices, links) for k, v in counter.items() if v > 1]
    missing = ({c.body["external_ref"] for c in calls if "external_ref" in c.body} - set(customers)) \
        | ({c.body["reference"] for c in calls if "reference" in c.body} - set(requests)) \
        | (wanted_invoices - set(invoices)) | (wanted_invoices - set(links))
    results.append(("web: each call's objects exist exactly once (customers, payment requests, imported invoices "
                    "with one pay link each)", not twice and not missing,
                    f"customers {len(customers)}, payment requests {len(requests)}, invoices {len(invoices)}; "
                    f"twice {twice[:5]}, missing {sorted(missing)[:5]}"))
    different = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Api-Key {raw_key}"},
                      timeout=60) as client:
        for call in calls:
            if call.final is None:
                continue
            again = client.post(call.path, json=call.body, headers={"Idempotency-Key": call.key})
            if again.headers.get("Idempotent-Replayed") != "true" or again.text != call.final[1]:
                different.append(call.key)
    stuck = IdempotencyRecord.objects.filter(key__startswith="web-", state="in_progress").count()
    results.append(("web: a key sent again replays the answer the client got; no key left in progress",
                    not different and not stuck, f"different {different[:5]}, in progress {stuck}"))
    return results


def holders(folders: list[Path], clusters: Clusters) -> dict[int, str]:
    """Which cluster (index) has a file of these folders open right now (a drop-folder scan
    holds its claimed file open and locked while it works on it): {cluster: file name}."""
    groups = {proc.pid: i for i, proc in enumerate(clusters.procs) if proc is not None and proc.poll() is None}
    prefixes = tuple(str(f) + "/" for f in folders)
    found: dict[int, str] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            i = groups.get(os.getpgid(int(pid)))
            if i is None or i in found:
                continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(prefixes):
                    found[i] = Path(target).name
                    break
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return found


def claim_killer(stop: threading.Event, rng: random.Random, clusters: Clusters, folders: list[Path],
                 budget: int, kills: list[int], spare: int = 0) -> None:
    """--kill-on-claim: SIGKILL the cluster that is working on a claimed drop-folder file (a
    statement being imported, an invoice file becoming a job), at a random point of that work."""
    while not stop.is_set() and kills[0] < budget:
        found = {i: name for i, name in holders(folders, clusters).items() if i >= spare}
        if not found:
            stop.wait(0.02)
            continue
        i, name = rng.choice(sorted(found.items()))
        time.sleep(rng.uniform(0, 0.4))
        with clusters.lock:
            clusters.kill(i)
            kills[0] += 1
            log(f"killed cluster {i} working on {name}")
            time.sleep(rng.uniform(0, 1.0))
            clusters.start(i)
        stop.wait(rng.uniform(1, 4))


def pump(stop: threading.Event, rng: random.Random) -> None:
    """Besides the schedules: enqueue random jobs every second or two, so runs overlap."""
    from django.db import connection
    from django_q.tasks import async_task

    from config.schedules import SCHEDULES

    funcs = [s["func"] for s in SCHEDULES if "purge" not in s["func"]]
    try:
        while not stop.is_set():
            async_task(rng.choice(funcs), q_options={"task_name": "chaos-pump"})
            stop.wait(rng.uniform(0.5, 2.0))
    finally:
        connection.close()


def bank_channel(stop: threading.Event, outgoing: Path, bank: Path, recorder: Recorder) -> None:
    """The EBICS client's part: takes every complete pain.008 file out of the outgoing folder."""
    bank.mkdir(parents=True, exist_ok=True)
    while True:
        last = stop.is_set()
        for path in sorted(outgoing.glob("*/*.xml")) if outgoing.is_dir() else []:
            target = bank / f"{len(recorder.bank_files):05d}-{path.name}"
            try:
                os.rename(path, target)
            except FileNotFoundError:
                continue
            recorder.add("bank_files", {"name": path.name, "stored_as": target.name, "at": time.time()})
        if last:
            return
        stop.wait(0.3)


# --------------------------------------------------------------------------- settle


def settle(max_passes: int = 12) -> list[str]:
    """Run every schedule's function, and the recoveries with the clock moved past their
    thresholds (through their own `now` arguments), until nothing is left to do."""
    from django.utils import timezone
    from django.utils.module_loading import import_string

    from collections_app.dunning.services import reminders_recover_stuck
    from collections_app.retries.services import card_charges_run
    from config.schedules import SCHEDULES
    from connectors.services import import_jobs_recover, import_jobs_write_missing_return_files
    from notifications.sender import deliveries_recover_stuck, deliveries_send_due

    notes = []
    previous = None
    for n in range(max_passes):
        later = timezone.now() + dt.timedelta(hours=1)
        deliveries_recover_stuck(now=later)
        reminders_recover_stuck(now=later)
        import_jobs_recover(now=later)
        import_jobs_write_missing_return_files(now=later)
        card_charges_run(now=later)  # card charges whose worker died between claim and gateway answer
        for item in SCHEDULES:
            try:
                import_string(item["func"])()
            except Exception as exc:  # noqa: BLE001 - reported
                notes.append(f"settle pass {n}: {item['name']} raised {exc!r}")
        deliveries_send_due(now=timezone.now() + dt.timedelta(days=4))  # retries due later, fast-forwarded
        state = work_left()
        log(f"settle pass {n}: {state}")
        if not any(state.values()) and state == previous:
            break
        if not any(state.values()):
            previous = state
            continue
        previous = state
    return notes


def work_left() -> dict[str, int]:
    from django.conf import settings

    from collections_app.dunning.models import Reminder
    from collections_app.retries.models import CollectionAttempt
    from collections_app.sepa.models import SepaFile
    from connectors.models import ImportJob
    from notifications.models import Delivery, Event
    from reconciliation.models import BankTransaction

    def files(folder: Path) -> int:
        return len([p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]) if folder.is_dir() else 0

    inv = Path(settings.CONNECTORS_IMPORT_DIR) / "erp-demo"
    st = Path(settings.STATEMENT_DROP_DIR)
    return {
        "events_pending": Event.objects.filter(dispatched_at__isnull=True).count(),
        "deliveries_open": Delivery.objects.filter(status__in=["pending", "sending"]).count(),
        "reminders_open": Reminder.objects.filter(status__in=["claimed", "sending"]).count(),
        "import_jobs_open": ImportJob.objects.filter(status__in=["pending", "running"]).count(),
        "invoice_files_waiting": files(inv) + files(inv / "processing"),
        "statement_files_waiting": files(st) + files(st / "processing"),
        "transactions_new": BankTransaction.objects.filter(status="new").count(),
        "sepa_files_unwritten": SepaFile.objects.filter(status="generated").count(),
        "card_charges_in_flight": CollectionAttempt.objects.filter(method="card", status="submitted",
                                                                   payment__status="pending").count(),
    }


# --------------------------------------------------------------------------- invariants


def check(load: Load, rec: Recorder, creditor_id: int, in_flight_max: int) -> list[tuple[str, bool, str]]:
    """in_flight_max: how many sends can have been cut in the middle (kills x workers per cluster):
    only those may end with an unknown outcome; anything beyond was lost, not interrupted."""
    from django.conf import settings
    from django.db.models import Count, Sum
    from django_q.models import OrmQ, Task

    from collections_app.dunning.models import Reminder
    from collections_app.models import Installment, Invoice, Payment, PaymentAllocation, PaymentRequest
    from collections_app.retries.models import CollectionAttempt
    from collections_app.sepa.models import SepaFile
    from connectors.models import ImportJob
    from notifications.models import Delivery, Event
    from reconciliation.models import BankStatement, BankTransaction, Match

    results: list[tuple[str, bool, str]] = []

    def res(name: str, ok: bool, detail: str = "") -> None:
        results.append((name, ok, detail))

    # 1. invoices of the files: exactly once each, one pay link each
    counts = dict(Invoice.objects.filter(creditor_id=creditor_id, external_ref__in=list(load.invoices))
                  .values_list("external_ref").annotate(n=Count("pk")))
    missing = [r for r in load.invoices if r not in counts]
    wrong_amount = list(Invoice.objects.filter(creditor_id=creditor_id, external_ref__in=list(load.invoices))
                        .values_list("external_ref", "amount_total"))
    wrong_amount = [r for r, a in wrong_amount if a != load.invoices[r]]
    res("invoices imported exactly once", not missing and all(v == 1 for v in counts.values()) and not wrong_amount,
        f"{len(counts)}/{len(load.invoices)} present, missing {missing[:5]}, wrong amounts {wrong_amount[:5]}")
    req_per_inv = (PaymentRequest.objects.filter(invoices__external_ref__in=list(load.invoices),
                                                 creditor_id=creditor_id)
                   .values("invoices__external_ref").annotate(n=Count("pk")).filter(n__gt=1))
    res("one payment request per imported invoice", not req_per_inv.exists(), f"{list(req_per_inv[:5])}")
    jobs = ImportJob.objects.filter(filename__in=load.invoice_files)
    per_file = collections.Counter(jobs.filter(invoices_created__gt=0).values_list("filename", flat=True))
    unfinished = jobs.exclude(status__in=ImportJob.FINISHED).count()
    failed = list(jobs.filter(status__in=["failed", "partial"]).values_list("filename", "status", "message")[:5])
    res("each invoice file imported by one job, all jobs finished",
        all(per_file[f] <= 1 for f in load.invoice_files) and not unfinished and not failed,
        f"jobs creating invoices per file {dict(per_file)}, unfinished {unfinished}, failed {failed}")

    # 2. bank transactions: once per natural key, none lost
    tx = collections.Counter(BankTransaction.objects.filter(bank_reference__in=list(load.statement_entries))
                             .values_list("bank_reference", flat=True))
    # CFONB keeps the entry number as bank reference, camt the AcctSvcrRef; count by amount+text too
    by_text = collections.Counter(BankTransaction.objects.filter(remittance_info__contains="Facture CH-")
                                  .values_list("remittance_info", "amount"))
    dup_text = {k: v for k, v in by_text.items() if v > 1}
    res("bank transactions stored once per natural key",
        not dup_text and BankTransaction.objects.values("natural_key").annotate(n=Count("pk")).filter(n__gt=1).count() == 0
        and len(by_text) == len(load.statement_entries),
        f"{len(by_text)}/{len(load.statement_entries)} transfers stored, duplicates {list(dup_text.items())[:3]}, "
        f"statements {BankStatement.objects.count()}")
    st = Path(settings.STATEMENT_DROP_DIR)
    done = sorted(p.name for p in (st / "done").iterdir()) if (st / "done").is_dir() else []
    failed_st = sorted(p.name for p in (st / "failed").iterdir()) if (st / "failed").is_dir() else []
    res("every statement file processed (done/, none failed or left)",
        len(done) == len(load.statement_files) and not failed_st,
        f"done {len(done)}/{len(load.statement_files)}, failed {failed_st}")

    # 3. no invoice over-allocated, amount_paid == allocations
    all_alloc = dict(PaymentAllocation.objects.values_list("invoice").annotate(s=Sum("amount")))
    bad = []
    for inv in Invoice.objects.all().only("pk", "external_ref", "amount_total", "amount_paid", "amount_written_off",
                                          "status"):
        a = all_alloc.get(inv.pk, Decimal("0"))
        if a > inv.amount_total or a != inv.amount_paid:
            bad.append((inv.external_ref, str(inv.amount_total), str(inv.amount_paid), str(a)))
    res("no invoice over-allocated; amount_paid = sum of allocations", not bad, f"{len(bad)} bad: {bad[:5]}")

    # 4. each matched transfer allocated exactly once
    matched = BankTransaction.objects.filter(remittance_info__contains="Facture CH-", status="matched")
    no_match = matched.exclude(matches__status="active").count()
    multi = (Match.objects.filter(status="active").values("transaction").annotate(n=Count("pk")).filter(n__gt=1)
             .count())
    pay_per_invoice = collections.Counter()
    mismatched = []
    for m in Match.objects.filter(status="active", transaction__remittance_info__contains="Facture CH-") \
            .select_related("transaction", "payment", "excess_payment"):
        got = (PaymentAllocation.objects.filter(payment__in=[p for p in (m.payment_id, m.excess_payment_id) if p])
               .aggregate(s=Sum("amount"))["s"] or Decimal(0))
        paid = (m.payment.amount if m.payment_id else 0) + (m.excess_payment.amount if m.excess_payment_id else 0)
        if m.payment is None or paid != m.amount or m.amount != m.transaction.amount or got > paid:
            mismatched.append((m.transaction.bank_reference, str(m.amount), str(m.transaction.amount), str(got)))
        ref = m.transaction.remittance_info.split("Facture ")[-1].split()[0]
        pay_per_invoice[ref] += 1
    twice = {k: v for k, v in pay_per_invoice.items() if v > 1}
    res("each matched transfer allocated exactly once", not no_match and not multi and not twice and not mismatched,
        f"matched {matched.count()}, without active match {no_match}, with several {multi}, "
        f"invoices paid by several transfers {list(twice.items())[:5]}, amount mismatches {mismatched[:3]}")

    # 5. deliveries: at most once per (event, endpoint/recipient) at the receivers; none lost
    by_id = collections.Counter(w["webhook_id"] for w in rec.webhooks)
    dup_wh = {k: v for k, v in by_id.items() if v > 1}
    uuid_of = {f"msg_{d.hex}": (e, ep) for d, e, ep in Delivery.objects.filter(channel="webhook")
               .values_list("uuid", "event_id", "webhook_endpoint_id")}
    per_event = collections.Counter(uuid_of.get(w["webhook_id"]) for w in rec.webhooks)
    dup_event = {k: v for k, v in per_event.items() if v > 1 and k is not None}
    res("webhooks received at most once per delivery (webhook-id) and per (event, endpoint)",
        not dup_wh and not dup_event, f"{len(rec.webhooks)} requests, {len(by_id)} ids, duplicated ids "
        f"{list(dup_wh.items())[:5]}, duplicated (event, endpoint) {list(dup_event.items())[:5]}")
    by_mid = collections.Counter(m["message_id"] for m in rec.emails)
    dup_mail = {k: v for k, v in by_mid.items() if v > 1}
    by_subj = collections.Counter((tuple(m["to"]), m["subject"]) for m in rec.emails)
    dup_subj = {k: v for k, v in by_subj.items() if v > 1}
    res("emails received at most once per Message-ID", not dup_mail,
        f"{len(rec.emails)} emails, duplicated ids {list(dup_mail.items())[:5]}; same recipient+subject more than "
        f"once (informative: two payments of one amount share a subject): {len(dup_subj)}")
    by_key = collections.Counter(s["idempotency_key"] for s in rec.sms)
    dup_sms = {k: v for k, v in by_key.items() if v > 1}
    res("SMS received at most once per idempotency key", not dup_sms,
        f"{len(rec.sms)} SMS, duplicated {list(dup_sms.items())[:5]}")
    sent_ids = set()  # what each sent delivery looks like at its receiver (file deliveries have none)
    for u, ch in Delivery.objects.filter(status="sent").exclude(channel="file").values_list("uuid", "channel"):
        sent_ids.add(f"msg_{u.hex}" if ch == "webhook" else (f"<delivery-{u}@encaisse>" if ch == "email" else str(u)))
    received = set(by_id) | set(by_mid) | set(by_key)
    lost = sorted(sent_ids - received)
    open_ = Delivery.objects.filter(status__in=["pending", "sending"]).count()
    interrupted = Delivery.objects.filter(status="dead", last_error__startswith="interrupted")
    int_received = sum(1 for d in interrupted if f"msg_{d.uuid.hex}" in by_id or f"<delivery-{d.uuid}@encaisse>"
                       in by_mid or str(d.uuid) in by_key)
    other_dead = list(Delivery.objects.filter(status="dead").exclude(last_error__startswith="interrupted")
                      .values_list("channel", "last_error")[:5])
    res("every delivery finished: sent ones received, none pending/sending, only sends in flight at a kill "
        "left to a human (interrupted ≤ kills × workers)",
        not lost and not open_ and interrupted.count() <= in_flight_max,
        f"sent {len(sent_ids)}, sent but never received {len(lost)} {lost[:3]}, open {open_}, "
        f"interrupted (dead letter, outcome unknown: by design left to a human replay) {interrupted.count()} "
        f"of which received {int_received} (at most {in_flight_max} can have been in flight), other dead letters (refused for good: informative) {other_dead}")

    # 6. reminders: none for an invoice paid before it was sent; at most once per invoice and step
    late = []
    for r in Reminder.objects.filter(status__in=["sent", "sending", "unknown"], invoice__isnull=False,
                                     invoice__paid_at__isnull=False).select_related("invoice"):
        if r.invoice.paid_at < (r.sending_started_at or r.sent_at):
            late.append((r.invoice.external_ref, r.step_id, str(r.invoice.paid_at), str(r.sending_started_at)))
    # a payment request without invoices (a debt on its own, e.g. created through the API) is reminded itself
    for r in Reminder.objects.filter(status__in=["sent", "sending", "unknown"], invoice__isnull=True,
                                     payment_request__paid_at__isnull=False).select_related("payment_request"):
        if r.payment_request.paid_at < (r.sending_started_at or r.sent_at):
            late.append((r.payment_request.reference, r.step_id, str(r.payment_request.paid_at),
                         str(r.sending_started_at)))
    rem_mail = collections.Counter()
    uuids = {f"<delivery-{u}@encaisse>": ("invoice", inv, step) if inv else ("request", request, step)
             for u, inv, request, step in
             Reminder.objects.values_list("uuid", "invoice_id", "payment_request_id", "step_id")}
    for m in rec.emails:
        if m["message_id"] in uuids:
            rem_mail[uuids[m["message_id"]]] += 1
    dup_rem = {k: v for k, v in rem_mail.items() if v > 1}
    stuck_rem = Reminder.objects.filter(status__in=["claimed", "sending"]).count()
    unknown_rem = Reminder.objects.filter(status="unknown").count()
    res("no reminder for an invoice (or request) already paid; each step at most once per debt; none stuck or lost",
        not late and not dup_rem and not stuck_rem and unknown_rem <= in_flight_max,
        f"reminders {dict(Reminder.objects.values_list('status').annotate(n=Count('pk')))}, emails of reminders "
        f"{sum(rem_mail.values())}, paid before sent {late[:5]}, duplicated {list(dup_rem.items())[:5]}, "
        f"stuck {stuck_rem}")

    # 7. outbox
    pending = Event.objects.filter(dispatched_at__isnull=True)
    res("every outbox event dispatched", not pending.exists(),
        f"{Event.objects.count()} events, pending {pending.count()}: "
        f"{list(pending.values_list('type', 'dispatch_attempts', 'last_error')[:3])}")

    # 8. SEPA: no debit twice, none lost; card charged once per instalment
    e2e = collections.Counter()
    for content in SepaFile.objects.values_list("content", flat=True):
        for part in content.split("<EndToEndId>")[1:]:
            e2e[part.split("<")[0]] += 1
    on_disk = collections.Counter()
    out = Path(settings.SEPA_OUTGOING_DIR)
    disk_files = [p for p in out.rglob("*.xml")] if out.is_dir() else []  # still there, and taken by the bank
    disk_files += [p for p in (Path(settings.DATA_DIR) / "bank").glob("*.xml")]
    for p in disk_files:
        for part in p.read_text("utf-8").split("<EndToEndId>")[1:]:
            on_disk[part.split("<")[0]] += 1
    twice_db = {k: v for k, v in e2e.items() if v > 1}
    twice_disk = {k: v for k, v in on_disk.items() if v > 1}
    inst = Installment.objects.filter(plan_id__in=load.sepa_plans + load.card_plans)
    multi_attempt = (CollectionAttempt.objects.filter(installment__in=inst).exclude(status__in=["failed", "cancelled"])
                     .values("installment").annotate(n=Count("pk")).filter(n__gt=1).count())
    from collections_app.sepa.services import earliest_collection_date
    from collections_app.models import Creditor
    from django.utils import timezone

    horizon = earliest_collection_date(creditor=Creditor.objects.get(pk=creditor_id), today=timezone.localdate())
    due_sepa = inst.filter(plan_id__in=load.sepa_plans, due_date__lte=horizon)
    not_submitted = due_sepa.exclude(attempts__status__in=["submitted", "succeeded"]).count()
    unwritten = SepaFile.objects.filter(status="generated").count()
    res("no SEPA debit in two files (DB and outgoing folder), every due debit in a written file",
        not twice_db and not twice_disk and not not_submitted and not unwritten
        and len(disk_files) == SepaFile.objects.filter(status="written").count(),
        f"files {SepaFile.objects.count()} (on disk {len(disk_files)}), debits {sum(e2e.values())}, twice in DB "
        f"{list(twice_db.items())[:3]}, twice on disk {list(twice_disk.items())[:3]}, due not submitted "
        f"{not_submitted}/{due_sepa.count()}, unwritten {unwritten}, instalments with several live attempts "
        f"{multi_attempt}")
    card_due = inst.filter(plan_id__in=load.card_plans, due_date__lte=timezone.localdate())
    charged = collections.Counter(Payment.objects.filter(installment__in=card_due, status="succeeded")
                                  .values_list("installment_id", flat=True))
    res("each due card instalment charged exactly once",
        all(charged.get(i, 0) == 1 for i in card_due.values_list("pk", flat=True)) and not multi_attempt,
        f"due {card_due.count()}, charges {dict(collections.Counter(charged.values()))}")

    # 8b. status files for the ERP: each status event exported exactly once, nothing left hidden
    import csv
    import io

    from connectors.exports import is_status_event
    from connectors.models import ExportCursor, ImportJob as Job, PendingStatusEvent

    for cursor in ExportCursor.objects.all():
        folder = Path(settings.CONNECTORS_EXPORT_DIR) / cursor.name
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        hidden = [p.name for p in files if p.name.startswith(".")]
        exported = collections.Counter()
        for p in files:
            if not p.name.startswith(".") and p.suffix == ".csv":
                exported.update(int(r["event_id"]) for r in csv.DictReader(io.StringIO(p.read_text("utf-8"))))
        expected = {pk for pk, t, c in Event.objects.filter(pk__gt=cursor.start_after_event_id)
                    .values_list("pk", "type", "creditor_id")
                    if is_status_event(t) and cursor.creditor_id in (None, c)}
        twice = {k: v for k, v in exported.items() if v > 1}
        missing = expected - set(exported)
        left = PendingStatusEvent.objects.filter(cursor=cursor).count()
        res(f"status files of cursor {cursor.name}: each status event exported exactly once",
            not twice and not missing and not hidden and not left and set(exported) <= expected,
            f"{len(exported)} exported of {len(expected)}, twice {list(twice.items())[:5]}, missing "
            f"{sorted(missing)[:5]}, hidden files left {hidden[:3]}, still queued {left}")
    no_return = list(Job.objects.filter(filename__in=load.invoice_files, status="succeeded", return_file="")
                     .values_list("filename", flat=True))
    res("every imported invoice file has its return file", not no_return, f"without {no_return}")

    # 9. jobs
    running = {"import jobs": ImportJob.objects.filter(status="running").count(),
               "deliveries sending": Delivery.objects.filter(status="sending").count(),
               "reminders sending": Reminder.objects.filter(status="sending").count()}
    res("no job left running forever", not any(running.values()), f"{running}")
    fails = collections.Counter()
    for func, result in Task.objects.filter(success=False).values_list("func", "result"):
        fails[(func, (str(result) or "").strip().splitlines()[-1][:160] if result else "")] += 1
    res("no django-q task failed", not fails, "; ".join(f"{n}x {f}: {r}" for (f, r), n in fails.most_common(8)))
    res("info: queue", True, f"OrmQ left {OrmQ.objects.count()}, tasks ok "
        f"{Task.objects.filter(success=True).count()}")
    return results


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=4.0, help="how long workers are killed (default 4)")
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="Q_WORKERS of each cluster")
    parser.add_argument("--invoices", type=int, default=3000)
    parser.add_argument("--plans", type=int, default=40, help="SEPA and card instalment plans due now")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"))
    parser.add_argument("--kill-on-claim", type=int, default=0, metavar="N",
                        help="besides the random kills, up to N kills of a cluster while it works on a claimed "
                             "drop-folder file (statement import, invoice file scan)")
    parser.add_argument("--spare", type=int, default=0, metavar="N",
                        help="the first N clusters are never killed: their schedulers (which fire 30 s after a "
                             "cluster starts) and queues run normally beside the clusters being killed")
    parser.add_argument("--web", type=int, default=0, metavar="N",
                        help="also run gunicorn with N sync workers, killed at random while an integrator's API "
                             "calls (with Idempotency-Keys) are in flight")
    parser.add_argument("--api-calls", type=int, default=150, help="with --web: how many API calls")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data folder and logs")
    args = parser.parse_args()

    if not os.environ.get("DATABASE_URL"):
        # A throw-away PostgreSQL, exactly as the tests get it.
        return subprocess.call([PY, str(ROOT / "scripts" / "pgtmp.py"), "--", PY, *sys.argv])

    seed = args.seed if args.seed is not None else random.randrange(10**6)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="encaisse-chaos-"))
    data_dir, logdir = work / "data", work / "logs"
    data_dir.mkdir(), logdir.mkdir()
    http_port, smtp_port = free_port(), free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "chaos",
           "ENCAISSE_DATA_DIR": str(data_dir), "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
           "EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port), "EMAIL_USE_TLS": "",
           "SMS_BACKEND": "http", "SMS_HTTP_URL": f"http://127.0.0.1:{http_port}/sms",
           "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "Q_WORKERS": str(args.workers), "LOG_LEVEL": "WARNING",
           "CONNECTORS_IMPORT_DIR": "", "CONNECTORS_EXPORT_DIR": ""}
    os.environ.update(env)
    log(f"seed {seed}; work dir {work}; {args.clusters} clusters x {args.workers} workers; kill for {args.minutes} min")
    recorder = Recorder(logdir / "received.jsonl")
    http = start_http(recorder, http_port)
    smtp = start_smtp(recorder, smtp_port)

    for cmd in (["migrate", "--noinput", "-v", "0"], ["createcachetable"], ["seed_demo"], ["setup_schedules"]):
        subprocess.run([PY, "manage.py", *cmd], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection

    load, extra = seed_load(args, rng, data_dir, http_port)
    connection.close()
    log(f"load: {len(load.invoices)} invoices in {len(load.invoice_files)} CSV files, "
        f"{len(load.statement_entries)} transfers in {len(extra['statements'])} statements, "
        f"{len(load.sepa_plans)} SEPA + {len(load.card_plans)} card plans")

    from django.conf import settings

    web, web_threads, web_kills, calls, raw_key = None, [], [0], [], ""
    if args.web:
        from collections_app.api.auth import api_key_create
        from collections_app.models import Creditor, Customer

        creditor = Creditor.objects.get(pk=extra["creditor_id"])
        _key, raw_key = api_key_create(name="chaos ERP", creditor=creditor)
        calls = api_calls(args.api_calls, Customer.objects.filter(creditor=creditor).order_by("pk").first().pk,
                          random.Random(seed + 3))
        connection.close()
        web = WebTier(args.web, {**env, "ALLOWED_HOSTS": "127.0.0.1,localhost"}, logdir, free_port())
        atexit.register(web.stop)  # whatever happens next
        log(f"web: gunicorn with {args.web} workers on port {web.port}; {len(calls)} API calls")

    bank_stop = threading.Event()
    bank = threading.Thread(target=bank_channel, args=(bank_stop, Path(settings.SEPA_OUTGOING_DIR),
                                                       Path(settings.DATA_DIR) / "bank", recorder), daemon=True)
    bank.start()
    clusters = Clusters(args.clusters, env, logdir)
    for i in range(args.clusters):
        clusters.start(i)
    stop = threading.Event()
    pumper = threading.Thread(target=pump, args=(stop, random.Random(seed + 1)), daemon=True)
    pumper.start()
    claim_kills = [0]
    if args.kill_on_claim:
        folders = [Path(settings.STATEMENT_DROP_DIR) / "processing",
                   Path(settings.CONNECTORS_IMPORT_DIR) / "erp-demo" / "processing"]
        threading.Thread(target=claim_killer, args=(stop, random.Random(seed + 2), clusters, folders,
                                                    args.kill_on_claim, claim_kills, args.spare), daemon=True).start()
    if web is not None:
        pending, lock = iter(calls), threading.Lock()
        web_threads = [threading.Thread(target=api_client, args=(pending, lock, web.port, raw_key), daemon=True)
                       for _ in range(3)]
        for thread in web_threads:
            thread.start()
        threading.Thread(target=web_killer, args=(stop, random.Random(seed + 4), web, web_kills), daemon=True).start()
    kills = 0
    dropped = False
    end = time.monotonic() + args.minutes * 60
    started = time.monotonic()
    try:
        while time.monotonic() < end:
            time.sleep(rng.uniform(*args.kill_every))
            if not dropped:
                from collections_app.models import Invoice

                n = Invoice.objects.filter(external_ref__startswith="CH-").count()
                connection.close()
                if n >= len(load.invoices) * 0.9 or time.monotonic() - started > args.minutes * 30:
                    drop_statements(extra["statements"], load)
                    dropped = True
                    log(f"statements dropped ({n} invoices in)")
            i = rng.randrange(min(args.spare, args.clusters - 1), args.clusters)
            with clusters.lock:
                clusters.kill(i)
                kills += 1
                time.sleep(rng.uniform(0, 1.5))
                clusters.start(i)
        if not dropped:
            drop_statements(extra["statements"], load)
        stop.set()
        with clusters.lock:
            kills += claim_kills[0]
        log(f"{kills} clusters killed ({claim_kills[0]} while on a drop-folder file); "
            "letting the clusters run 45 s without kills")
        time.sleep(45)
        # the integrator's calls that are still going on finish (each gives up 600 s after its first try)
        until = time.monotonic() + 1200
        for thread in web_threads:
            thread.join(max(1.0, until - time.monotonic()))
        if web is not None:
            log(f"web: {web_kills[0]} gunicorn workers killed; {sum(c.final is not None for c in calls)} of "
                f"{len(calls)} API calls answered")
    finally:
        stop.set()
        clusters.stop_all()
    log("clusters stopped; settling")
    notes = settle()
    bank_stop.set()
    bank.join(10)
    results = check(load, recorder, extra["creditor_id"], in_flight_max=kills * args.workers)
    if web is not None:
        results += check_web(calls, web.port, raw_key, web_kills[0])
        web.stop()
    http.shutdown()
    smtp.stop()
    print("\n=== chaos run report (seed %d, %d kills) ===" % (seed, kills))
    for note in notes:
        print("  note:", note)
    failed = 0
    for name, ok, detail in results:
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {name}\n      {detail}")
    print(f"=== {len(results) - failed} passed, {failed} failed; logs in {logdir if args.keep else '(removed)'} ===")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
