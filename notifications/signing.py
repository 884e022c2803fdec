"""Standard Webhooks signatures (https://www.standardwebhooks.com/), through the reference
`standardwebhooks` library: `whsec_` secrets, `webhook-id` / `webhook-timestamp` /
`webhook-signature` headers. During a secret rotation both the new and the previous
secret sign, space-separated, so receivers verify with either while they switch."""
from __future__ import annotations

import base64
import datetime as dt
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def secret_generate() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_secrets(endpoint, *, now: dt.datetime) -> list[str]:
    keys = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > now:
        keys.append(endpoint.previous_secret)
    return keys


def webhook_headers(*, secrets_: list[str], msg_id: str, timestamp: dt.datetime, body: str) -> dict[str, str]:
    # The library reads the timestamp as UTC whatever its tzinfo: give it UTC.
    utc = timestamp.astimezone(dt.timezone.utc)
    signature = " ".join(Webhook(s).sign(msg_id=msg_id, timestamp=utc, data=body) for s in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(utc.timestamp())), "webhook-signature": signature,
            "content-type": "application/json"}
