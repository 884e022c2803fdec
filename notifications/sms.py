"""SMS sending behind a small backend interface, chosen by the SMS_BACKEND setting.

- "console" (default): prints the message (development);
- "file": appends JSON lines to var/sms-outbox.jsonl (demo, tests);
- "http": the generic HTTP provider: POSTs JSON {"to", "from", "text"} to SMS_HTTP_URL with
  HTTP basic auth SMS_HTTP_USERNAME / SMS_HTTP_PASSWORD, and reads {"id": ...} back.
  Most SMS gateways (and self-hosted ones) accept this shape or sit behind one that does.
  An `Idempotency-Key` header names the message (the delivery's or reminder's uuid, the same
  on every retry): a provider that honours it sends a retried message once, e.g. when its
  answer was lost to a timeout after it had accepted the message.

Numbers are sent in E.164 form (national numbers read as SMS_DEFAULT_REGION's, "FR" by default).

GSM-7 vs UCS-2 segment counting lives here too, so templates can show it.
"""
from __future__ import annotations

import json
import logging
import sys
import uuid
from dataclasses import dataclass

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")


class SmsError(RuntimeError):
    def __init__(self, message: str, *, status_code: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.status_code = status_code
        # The provider refused the message itself (bad number, bad credentials): retrying cannot help.
        self.permanent = permanent


@dataclass(frozen=True)
class SmsInfo:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # in encoding units (GSM-7 extended characters count twice)
    segments: int


def sms_info(text: str) -> SmsInfo:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text):
        units = sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
        segments = 1 if units <= 160 else -(-units // 153)
        return SmsInfo("GSM-7", units, segments)
    units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)
    segments = 1 if units <= 70 else -(-units // 67)
    return SmsInfo("UCS-2", units, segments)


@dataclass(frozen=True)
class SmsResult:
    provider_id: str
    status_code: int | None = None


class ConsoleBackend:
    def send(self, *, to: str, text: str, sender: str, idempotency_key: str = "") -> SmsResult:
        sys.stdout.write(f"[SMS from {sender} to {to}] {text}\n")
        return SmsResult(provider_id=f"console-{uuid.uuid4()}")


class FileBackend:
    def send(self, *, to: str, text: str, sender: str, idempotency_key: str = "") -> SmsResult:
        path = settings.DATA_DIR / "sms-outbox.jsonl"
        provider_id = f"file-{uuid.uuid4()}"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"id": provider_id, "to": to, "from": sender, "text": text}) + "\n")
        return SmsResult(provider_id=provider_id)


class HttpBackend:
    timeout = 10.0

    def send(self, *, to: str, text: str, sender: str, idempotency_key: str = "") -> SmsResult:
        if not settings.SMS_HTTP_URL:
            raise SmsError("SMS_HTTP_URL is not set")
        auth = (settings.SMS_HTTP_USERNAME, settings.SMS_HTTP_PASSWORD) if settings.SMS_HTTP_USERNAME else None
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        try:
            response = httpx.post(settings.SMS_HTTP_URL, json={"to": to, "from": sender, "text": text},
                                  auth=auth, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise SmsError(f"SMS provider unreachable: {exc}") from exc
        if response.status_code >= 300:
            code = response.status_code
            raise SmsError(f"SMS provider answered {code}: {response.text[:200]}", status_code=code,
                           permanent=400 <= code < 500 and code not in (408, 429))
        try:
            provider_id = str(response.json().get("id", ""))
        except ValueError:
            provider_id = ""
        return SmsResult(provider_id=provider_id, status_code=response.status_code)


BACKENDS = {"console": ConsoleBackend, "file": FileBackend, "http": HttpBackend}


def get_backend():
    name = settings.SMS_BACKEND or "console"
    try:
        return BACKENDS[name]()
    except KeyError as exc:
        raise SmsError(f"unknown SMS_BACKEND {name!r}") from exc


def phone_e164(raw: str, region: str | None = None) -> str:
    """The E.164 form providers want ("+33612345678") of what customers and ERPs write
    ("06 12 34 56 78", "0033 6 12 34 56 78", "+33 (0)6…"); SmsError, permanent, when it is no
    valid phone number: better refused here than sent to a wrong number."""
    import phonenumbers  # its metadata takes a while to load: not at start-up

    try:
        number = phonenumbers.parse(raw, region or settings.SMS_DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise SmsError(f"invalid phone number {raw!r}: {exc}", permanent=True) from None
    if not phonenumbers.is_valid_number(number):
        raise SmsError(f"invalid phone number {raw!r}", permanent=True)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def send_sms(*, to: str, text: str, sender: str | None = None, idempotency_key: str = "") -> SmsResult:
    if not to:
        raise SmsError("no phone number", permanent=True)
    return get_backend().send(to=phone_e164(to), text=text, sender=sender or settings.SMS_SENDER,
                              idempotency_key=idempotency_key)
