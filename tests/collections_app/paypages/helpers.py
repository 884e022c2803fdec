"""Drive the card flow through Django's test client, the way a browser would."""
from __future__ import annotations

from tests.collections_app.paypages.conftest import form_nonce, post_back_fields


def card_pay(client, payment_request, *, number="4242 4242 4242 4242", amount=None, save_card=False,
             cvc="123", follow_3ds: bool | None = None):
    """Returns (final response, submission nonce, return POST data)."""
    base = f"/pay/{payment_request.token}"
    page = client.get(f"{base}/card/")
    assert page.status_code == 200, page.content[:500]
    nonce = form_nonce(page.content.decode())
    data = {"nonce": nonce, "amount": str(amount if amount is not None else payment_request.amount_due)}
    if save_card:
        data["save_card"] = "1"
    step = client.post(f"{base}/card/", data)
    assert step.status_code == 302, step.content.decode()[:2000]
    entry_url = step["Location"]
    entry = client.get(entry_url)
    assert entry.status_code == 200
    return_url = f"{base}/card/{nonce}/return/"
    assert f'value="{return_url}"' in entry.content.decode()
    gateway = client.post("/sandbox-gateway/checkout/", {"number": number, "exp_month": "12", "exp_year": "39",
                                                        "cvc": cvc, "return_url": return_url})
    fields = post_back_fields(gateway.content.decode())
    fields.pop("return_url", None)
    back = client.post(return_url, fields)
    if follow_3ds is not None and back.status_code == 302 and "/sandbox-gateway/3ds/" in back["Location"]:
        challenge = back["Location"]
        answered = client.post(challenge, {"approve": "1" if follow_3ds else "0"})
        back = client.get(answered["Location"])
    return back, nonce, fields
