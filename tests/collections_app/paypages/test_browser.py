"""End to end in real headless Chromium (Debian's /usr/bin/chromium driven by Playwright),
against Django's live server. Each page is saved as a screenshot in test-artifacts/paypages/."""
from __future__ import annotations

import datetime as dt
import io
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from collections_app.models import PaymentRequest
from tests.factories import CustomerFactory, make_request

# Playwright's sync API runs an event loop in this thread, next to the ORM calls of the test.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(django_settings.BASE_DIR) / "test-artifacts" / "paypages"
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server, settings):
    settings.PAYPAGE_RATE_LIMIT = (10_000, 60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A phone-sized screen: the pages are mobile first.
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=1)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    yield tab
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_labelled(page) -> None:
    """Every field a person fills in has a label that screen readers announce."""
    unlabelled = page.evaluate("""() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
        .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label')).map(el => el.name)""")
    assert unlabelled == []


def open_pay_page(page, live_server, request: PaymentRequest, suffix: str = "") -> None:
    page.goto(f"{live_server.url}/pay/{request.token}/{suffix}")


def fill_card(page, number: str) -> None:
    page.get_by_label("Card number").fill(number)
    page.get_by_label("Expiry month (MM)").fill("12")
    page.get_by_label("Expiry year (YY)").fill("39")
    page.get_by_label("Security code (CVC)").fill("123")


@pytest.fixture
def english(creditor):
    return CustomerFactory(creditor=creditor, name="John Smith", locale="en")


def test_pay_in_full_by_sandbox_card(page, live_server, english):
    request = make_request(english, amount="120.00")
    open_pay_page(page, live_server, request)
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_test_id("balance").inner_text() == "120.00 EUR"
    shot(page, "01-pay-page-en")
    page.get_by_role("link", name="Pay by card").click()
    page.wait_for_url("**/card/")
    assert_labelled(page)
    shot(page, "02-card-amount")
    page.get_by_role("button", name="Continue to card details").click()
    page.wait_for_url("**/card/*/")
    fill_card(page, "4242 4242 4242 4242")
    assert_labelled(page)
    shot(page, "03-card-details")
    page.get_by_role("button", name="Pay 120.00 EUR").click()
    page.wait_for_url("**/done/**")
    assert "your payment succeeded" in page.locator("h1").inner_text()
    shot(page, "04-card-success")
    request.refresh_from_db()
    assert request.status == "paid"


def test_declined_card_then_success_with_another_card(page, live_server, english):
    request = make_request(english, amount="80.00")
    open_pay_page(page, live_server, request, "card/")
    page.get_by_role("button", name="Continue to card details").click()
    fill_card(page, "4000 0000 0000 0002")
    page.get_by_role("button", name="Pay 80.00 EUR").click()
    page.wait_for_url("**/done/**")
    assert page.get_by_test_id("decline").inner_text() == "Your bank declined the payment."
    shot(page, "05-card-declined")
    page.get_by_role("link", name="Try again with another card").click()
    page.wait_for_url("**/card/")
    page.get_by_role("button", name="Continue to card details").click()
    fill_card(page, "5555 5555 5555 4444")
    page.get_by_role("button", name="Pay 80.00 EUR").click()
    page.wait_for_url("**/done/**")
    assert "your payment succeeded" in page.locator("h1").inner_text()
    shot(page, "06-second-card-success")
    request.refresh_from_db()
    assert request.status == "paid"
    assert sorted(request.payments.values_list("status", flat=True)) == ["failed", "succeeded"]


def test_3d_secure_challenge_step(page, live_server, english):
    request = make_request(english, amount="45.00")
    open_pay_page(page, live_server, request, "card/")
    page.get_by_role("button", name="Continue to card details").click()
    fill_card(page, "4000 0000 0000 3220")
    page.get_by_role("button", name="Pay 45.00 EUR").click()
    page.wait_for_url("**/sandbox-gateway/3ds/**")
    assert "3-D Secure" in page.locator("h1").inner_text()
    shot(page, "07-3ds-challenge")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/done/**")
    assert "your payment succeeded" in page.locator("h1").inner_text()
    shot(page, "08-3ds-success")
    request.refresh_from_db()
    assert request.status == "paid"


def test_sepa_mandate_signed_and_plan_scheduled(page, live_server, english):
    request = make_request(english, amount="150.00")
    open_pay_page(page, live_server, request, "instalments/")
    page.get_by_label("Number of instalments").select_option("3")
    page.get_by_label("SEPA direct debit").check()
    page.get_by_role("button", name="See the schedule").click()
    page.wait_for_url("**count=3**")
    assert page.get_by_test_id("schedule").locator("tbody tr").count() == 3
    assert_labelled(page)
    shot(page, "09-instalments-sepa-schedule")
    page.get_by_role("link", name="Confirm and sign the direct debit mandate").click()
    page.wait_for_url("**/sepa/?instalment_count=3")
    assert english.creditor.sepa_creditor_identifier in page.locator(".mandate").inner_text()
    assert_labelled(page)
    page.get_by_label("IBAN").fill("FR76 3000 6000 0112 3456 7890 188")  # a typo: clear error, nothing signed
    page.get_by_label("I have read the mandate").check()
    page.get_by_role("button", name="Sign the mandate").click()
    page.locator("#iban-error").wait_for()
    assert "check digits do not match" in page.locator("#iban-error").inner_text()
    assert page.get_by_label("IBAN").get_attribute("aria-invalid") == "true"
    shot(page, "10-sepa-invalid-iban")
    page.get_by_label("IBAN").fill("FR14 2004 1010 0505 0001 3M02 606")
    page.get_by_label("I have read the mandate").check()
    page.get_by_role("button", name="Sign the mandate").click()
    page.wait_for_url("**/done/**")
    assert page.get_by_test_id("debits").locator("tbody tr").count() == 3
    shot(page, "11-sepa-mandate-signed")
    plan = request.instalment_plans.get()
    assert (plan.method, plan.status) == ("sepa_dd", "active")
    assert plan.mandate.signature_user_agent and plan.mandate.signature_ip == "127.0.0.1"


def test_bank_transfer_page_with_a_scannable_epc_qr_code(page, live_server, english):
    import zxingcpp
    from PIL import Image

    request = make_request(english, amount="99.90")
    open_pay_page(page, live_server, request)
    page.get_by_role("link", name="Pay by bank transfer").click()
    page.wait_for_url("**/transfer/")
    assert page.get_by_test_id("reference").inner_text() == request.short_reference
    shot(page, "12-bank-transfer")
    qr_image = page.get_by_test_id("epc-qr")
    # The click returns once the new page is committed, not once its images are in.
    page.wait_for_load_state("load")
    page.wait_for_function("() => { const img = document.querySelector('[data-testid=epc-qr]');"
                           " return img.complete && img.naturalWidth > 0; }")
    # Decode what the screen shows, like a banking app's camera would.
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr_image.screenshot())))
    assert len(decoded) == 1
    lines = decoded[0].text.split("\n")
    assert lines[0] == "BCD" and lines[3] == "SCT"
    assert lines[6] == english.creditor.iban
    assert Decimal(lines[7].removeprefix("EUR")) == Decimal("99.90")
    assert lines[10] == request.short_reference


def test_instalments_3x_by_card(page, live_server, english):
    request = make_request(english, amount="90.00")
    open_pay_page(page, live_server, request)
    page.get_by_role("link", name="Pay in up to 3 instalments").click()
    page.wait_for_url("**/instalments/")
    page.get_by_label("Number of instalments").select_option("3")
    page.get_by_label("Card (first instalment today)").check()
    page.get_by_role("button", name="See the schedule").click()
    page.wait_for_url("**count=3**")
    shot(page, "13-instalments-card-schedule")
    page.get_by_role("button", name="Confirm and pay the first instalment").click()
    fill_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name="Pay 30.00 EUR").click()
    page.wait_for_url("**/done/**")
    rows = page.get_by_test_id("instalments").locator("tbody tr")
    assert rows.count() == 3 and "Paid" in rows.nth(0).inner_text()
    shot(page, "14-instalments-card-first-paid")
    plan = request.instalment_plans.get()
    assert plan.saved_card is not None and plan.installments.filter(status="paid").count() == 1


def test_expired_link_page(page, live_server, english):
    request = make_request(english, amount="30.00")
    PaymentRequest.objects.filter(pk=request.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    open_pay_page(page, live_server, request)
    assert page.locator("h1").inner_text() == "This payment link has expired"
    shot(page, "15-expired-link")
    page.goto(f"{live_server.url}/pay/{'x' * 43}/")
    assert "This payment link has expired" not in page.content()


def test_french_and_english_with_the_switch(page, live_server, creditor):
    french = CustomerFactory(creditor=creditor, name="Marie Lefèvre", locale="fr")
    request = make_request(french, amount="1234.50")
    open_pay_page(page, live_server, request, "transfer/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.locator("h1").inner_text() == "Virement bancaire"
    assert page.get_by_test_id("amount").inner_text() == "1234,50 EUR"
    shot(page, "16-transfer-fr")
    page.get_by_role("link", name="English").click()
    page.wait_for_url("**lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Bank transfer"
    assert page.get_by_test_id("amount").inner_text() == "1234.50 EUR"
    shot(page, "17-transfer-en")
    page.get_by_role("link", name="Français").click()
    page.wait_for_url("**lang=fr")
    assert page.locator("html").get_attribute("lang") == "fr"


def test_keyboard_only_payment(page, live_server, english):
    request = make_request(english, amount="25.00")
    open_pay_page(page, live_server, request, "card/")
    page.keyboard.press("Tab")  # skip link
    page.get_by_role("button", name="Continue to card details").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Card number").focus()
    page.keyboard.type("4242424242424242")
    page.keyboard.press("Tab")
    page.keyboard.type("12")
    page.keyboard.press("Tab")
    page.keyboard.type("39")
    page.keyboard.press("Tab")
    page.keyboard.type("123")
    page.keyboard.press("Enter")
    page.wait_for_url("**/done/**")
    request.refresh_from_db()
    assert request.status == "paid"


def test_customer_portal_and_paid_request_page(page, live_server, english):
    paid = make_request(english, amount="60.00")
    open_pay_page(page, live_server, paid, "card/")
    page.get_by_label("Save this card for later payments and instalments").check()
    page.get_by_role("button", name="Continue to card details").click()
    fill_card(page, "4242 4242 4242 4242")
    page.get_by_role("button", name="Pay 60.00 EUR").click()
    page.wait_for_url("**/done/**")
    open_pay_page(page, live_server, paid)
    assert page.locator("h1").inner_text() == "This payment request is paid"
    shot(page, "18-paid-request")
    other = make_request(english, amount="42.00")
    page.goto(f"{live_server.url}/portal/{english.portal_token}/")
    assert page.get_by_role("link", name=f"Pay {other.reference}").is_visible()
    assert "•••• 4242" in page.locator("main").inner_text()
    shot(page, "19-portal")
    page.get_by_role("button", name="Remove the card ending in 4242").click()
    assert page.get_by_role("status").inner_text() == "The card ending in 4242 was removed."
    shot(page, "20-portal-card-removed")
    assert english.saved_cards.get().status == "removed"
    page.get_by_role("link", name=f"Pay {other.reference}").click()
    page.wait_for_url(f"**/pay/{other.token}/")
    assert page.get_by_test_id("balance").inner_text() == "42.00 EUR"
