"""Sending one delivery through its channel. No database writes here: the sender records
the result. Each function returns a SendResult; `permanent` means retrying cannot help."""
from __future__ import annotations

import datetime as dt
import json
import os
import smtplib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from notifications import sms, ssrf
from notifications.signing import signing_secrets, webhook_headers

EXCERPT = 1000
WEBHOOK_TIMEOUT = 10.0
USER_AGENT = "Encaisse-Webhooks/1.0"


@dataclass
class SendResult:
    ok: bool
    status_code: int | None = None
    latency_ms: int | None = None
    response_excerpt: str = ""
    error: str = ""
    permanent: bool = False
    disable_endpoint: bool = False
    provider_message_id: str = ""


def http_client() -> httpx.Client:
    # Redirects are not followed: a redirect to an internal address would bypass the SSRF guard.
    return httpx.Client(timeout=WEBHOOK_TIMEOUT, follow_redirects=False, headers={"user-agent": USER_AGENT})


def webhook_message_id(delivery) -> str:
    """The webhook-id: stable across retries and replays of one delivery, so receivers can deduplicate."""
    return f"msg_{delivery.uuid.hex}"


def send_webhook(delivery, *, client: httpx.Client, now: dt.datetime) -> SendResult:
    endpoint = delivery.webhook_endpoint
    if endpoint is None:
        return SendResult(ok=False, permanent=True, error="the webhook endpoint was deleted")
    try:
        target = ssrf.url_check(endpoint.url)
    except ssrf.UnsafeUrl as exc:
        # A name that does not resolve may be a passing DNS failure; a private address is a refusal.
        return SendResult(ok=False, permanent="cannot resolve" not in str(exc), error=str(exc))
    body = delivery.body_json
    headers = webhook_headers(secrets_=signing_secrets(endpoint, now=now), msg_id=webhook_message_id(delivery),
                              timestamp=now, body=body)
    headers["host"] = target.host_header
    extensions = {"sni_hostname": target.sni_hostname} if target.scheme == "https" else {}
    started = time.perf_counter()
    try:
        response = client.post(target.url, content=body.encode(), headers=headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return SendResult(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}"[:EXCERPT])
    latency = _ms(started)
    excerpt = response.text[:EXCERPT]
    if 200 <= response.status_code < 300:
        return SendResult(ok=True, status_code=response.status_code, latency_ms=latency, response_excerpt=excerpt)
    gone = response.status_code == 410  # Standard Webhooks: the receiver asks us to stop.
    return SendResult(ok=False, status_code=response.status_code, latency_ms=latency, response_excerpt=excerpt,
                      error=f"HTTP {response.status_code}", permanent=gone, disable_endpoint=gone)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def email_connection():
    return get_connection(fail_silently=False, timeout=30)


def send_email(delivery, *, connection=None) -> SendResult:
    message = EmailMultiAlternatives(
        subject=delivery.subject, body=delivery.body_text or "", from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.recipient], connection=connection or email_connection(),
        # Stable per delivery: a mail client or ESP that sees it twice can tell.
        headers={"Message-ID": f"<delivery-{delivery.uuid}@encaisse>", "X-Encaisse-Delivery": str(delivery.uuid)})
    if delivery.body_html:
        message.attach_alternative(delivery.body_html, "text/html")
    started = time.perf_counter()
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        return SendResult(ok=False, latency_ms=_ms(started), permanent=True, error=f"recipient refused: {exc}")
    except Exception as exc:  # SMTP, network and ESP (anymail) errors: retry later
        from anymail.exceptions import AnymailRecipientsRefused

        return SendResult(ok=False, latency_ms=_ms(started), permanent=isinstance(exc, AnymailRecipientsRefused),
                          error=f"{type(exc).__name__}: {exc}"[:EXCERPT])
    status = getattr(message, "anymail_status", None)
    provider_id = str(getattr(status, "message_id", "") or "") if status else ""
    return SendResult(ok=True, latency_ms=_ms(started), provider_message_id=provider_id[:200])


def send_sms(delivery) -> SendResult:
    started = time.perf_counter()
    try:
        # The same key on every retry and replay of this message (see notifications.sms).
        result = sms.send_sms(to=delivery.recipient, text=delivery.body_text, idempotency_key=str(delivery.uuid))
    except sms.SmsError as exc:
        return SendResult(ok=False, latency_ms=_ms(started), status_code=getattr(exc, "status_code", None),
                          permanent=getattr(exc, "permanent", False), error=str(exc)[:EXCERPT])
    return SendResult(ok=True, latency_ms=_ms(started), status_code=result.status_code,
                      provider_message_id=result.provider_id[:200])


def outbox_path(delivery) -> Path:
    """One file per delivery, named from it: writing it again (a retry) replaces the same file."""
    created = delivery.created_at.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    kind = "event"
    try:
        kind = json.loads(delivery.body_json).get("type", kind)
    except (ValueError, AttributeError):
        pass
    return Path(settings.OUTBOX_DIR) / delivery.recipient / f"{created}-{kind}-{delivery.pk}.json"


def send_file(delivery) -> SendResult:
    path = outbox_path(delivery)
    started = time.perf_counter()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write aside then rename: an ERP polling the folder never reads half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(delivery.body_json)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        return SendResult(ok=False, latency_ms=_ms(started), error=f"{type(exc).__name__}: {exc}")
    return SendResult(ok=True, latency_ms=_ms(started), response_excerpt=str(path))
