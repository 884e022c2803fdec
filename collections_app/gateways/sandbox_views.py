"""The sandbox gateway's own web pages: the card form's target and the 3-D Secure challenge.

They stand for the gateway's servers: Encaisse's pay pages never see the card number or the
CVC, only the token these pages post back to the merchant's return URL.
"""
from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from collections_app.gateways.sandbox import SandboxError, SandboxGateway, _decode, challenge_result_encode, tokenize


def _safe_return_url(value: str) -> str | None:
    # Only paths on this site: the sandbox is not an open redirector.
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return None


@csrf_exempt  # posted from the merchant's page, like any gateway's hosted fields
@sensitive_post_parameters("number", "cvc", "exp_month", "exp_year")
@require_POST
def checkout(request):
    return_url = _safe_return_url(request.POST.get("return_url", ""))
    if return_url is None:
        return HttpResponseBadRequest("return_url must be a path on this site")
    try:
        token = tokenize(number=request.POST.get("number", ""),
                         exp_month=int(request.POST.get("exp_month") or 0),
                         exp_year=int(request.POST.get("exp_year") or 0),
                         cvc=request.POST.get("cvc", "").strip())
        fields = {"token": token}
    except SandboxError as exc:
        fields = {"error": exc.code}
    except ValueError:
        fields = {"error": "invalid_expiry"}
    # The card data stops here: what goes back to the merchant is the token or an error code.
    return render(request, "sandbox_gateway/post_back.html", {"action": return_url, "fields": fields})


@csrf_exempt
@require_http_methods(["GET", "POST"])
def challenge(request, challenge: str):
    try:
        data = _decode("ch", challenge)
    except SandboxError:
        return HttpResponseBadRequest("unknown challenge")
    if request.method == "GET":
        return render(request, "sandbox_gateway/challenge.html",
                      {"amount": data["a"], "currency": data["c"]})
    result = SandboxGateway().complete_challenge(challenge=challenge, approve=request.POST.get("approve") == "1")
    return_url = _safe_return_url(data["u"]) or "/"
    separator = "&" if "?" in return_url else "?"
    return HttpResponseRedirect(f"{return_url}{separator}{urlencode({'result': challenge_result_encode(result)})}")


urlpatterns = [
    path("checkout/", checkout, name="sandbox-checkout"),
    path("3ds/<str:challenge>/", challenge, name="sandbox-challenge"),
]
