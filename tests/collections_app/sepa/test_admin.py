"""Finance staff in the back-office: download files, import a pain.002, edit retry policies,
read an instalment's attempts."""
from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from collections_app.retries.models import CollectionAttempt, RetryPolicy
from collections_app.sepa.models import SepaFile, StatusReport
from collections_app.sepa.services import sepa_export
from tests.collections_app.collection_helpers import pain002, sepa_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = get_user_model().objects.create_superuser("boss", "boss@example.fr", "pw")
    client.force_login(user)
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def exported(customer):
    plan = sepa_plan(customer, first_due=dt.date(2026, 12, 1))
    sepa_export(today=dt.date(2026, 11, 30))
    return plan


def test_files_are_listed_and_downloadable(staff, exported):
    sepa_file = SepaFile.objects.get()
    listing = staff.get(reverse("admin:collections_app_sepafile_changelist"))
    assert listing.status_code == 200 and sepa_file.file_name in listing.content.decode()
    download = staff.get(reverse("admin:collections_app_sepafile_download", args=[sepa_file.pk]))
    assert download.status_code == 200 and download["Content-Type"] == "application/xml"
    assert sepa_file.file_name in download["Content-Disposition"]
    assert download.content.decode() == sepa_file.content


def test_status_report_upload_refuses_a_bad_report_and_imports_a_good_one(staff, exported):
    sepa_file = SepaFile.objects.get()
    url = reverse("admin:collections_app_statusreport_upload")
    bad = SimpleUploadedFile("bad.xml", pain002(message_id="B1", original_message_id=sepa_file.message_id,
                                                rejected=[("NOPE", "AM04")]))
    response = staff.post(url, {"file": bad})
    assert response.status_code == 200 and "unknown end-to-end id NOPE" in response.content.decode()
    assert not StatusReport.objects.exists()
    e2e = CollectionAttempt.objects.get().payment.end_to_end_id
    good = SimpleUploadedFile("good.xml", pain002(message_id="G1", original_message_id=sepa_file.message_id,
                                                  rejected=[(e2e, "AM04")]))
    response = staff.post(url, {"file": good})
    assert response.status_code == 302 and StatusReport.objects.get().rejected_count == 1


def test_retry_policy_is_edited_with_reason_codes(staff, creditor):
    url = reverse("admin:collections_app_retrypolicy_add")
    data = {"creditor": creditor.pk, "method": "sepa_dd", "max_retries": 3, "interval": 4,
            "interval_unit": "calendar_days", "retry_codes": "AM04, MS03, ZZ99", "notify_debtor": "on",
            "final_suspend": "on"}
    response = staff.post(url, data)
    assert response.status_code == 200 and "Unknown reason code(s): ZZ99" in response.content.decode()
    response = staff.post(url, {**data, "retry_codes": "AM04, MS03"})
    assert response.status_code == 302
    policy = RetryPolicy.objects.get()
    assert policy.retry_codes == ["AM04", "MS03"] and policy.max_retries == 3
    response = staff.post(url.replace("add", "add"), {**data, "max_retries": 4, "retry_codes": ""})
    assert response.status_code == 200  # at most 3 new attempts


def test_instalment_page_shows_its_attempts(staff, exported):
    installment = exported.installments.get(sequence=1)
    page = staff.get(reverse("admin:collections_app_installment_change", args=[installment.pk]))
    body = page.content.decode()
    assert page.status_code == 200 and "Submitted" in body and "FRST" in body


def test_mandate_amendment_from_the_admin(staff, exported):
    from tests.collections_app.collection_helpers import DEBTOR_IBANS

    url = reverse("admin:collections_app_mandateamendment_add")
    response = staff.post(url, {"mandate": exported.mandate_id, "new_iban": "FR00 BAD", "new_bic": ""})
    assert response.status_code == 200 and "Invalid IBAN" in response.content.decode()
    response = staff.post(url, {"mandate": exported.mandate_id, "new_iban": DEBTOR_IBANS[1], "new_bic": ""})
    assert response.status_code == 302
    exported.mandate.refresh_from_db()
    assert exported.mandate.iban == DEBTOR_IBANS[1]
    amendment = exported.mandate.amendments.get()
    assert amendment.previous_iban != amendment.new_iban and amendment.sepa_file is None


def test_collect_again_admin_action(staff, customer):
    from collections_app import services
    from tests.collections_app.collection_helpers import card_plan
    from collections_app.retries.services import card_charges_run

    plan = card_plan(customer, first_due=dt.date(2026, 11, 30), number="4000000000009987")
    card_charges_run(today=dt.date(2026, 11, 30))
    services.installment_plan_resume(plan=plan)
    first = plan.installments.get(sequence=1)
    response = staff.post(reverse("admin:collections_app_installment_changelist"),
                          {"action": "collect_again", "_selected_action": [first.pk]}, follow=True)
    assert "1 new attempt(s) scheduled." in response.content.decode()
    assert CollectionAttempt.objects.filter(installment=first, number=2, status="scheduled").exists()


@pytest.mark.parametrize("model", ["sepafile", "statusreport", "mandateamendment", "collectionsettings",
                                   "retrypolicy", "collectionattempt", "installment"])
def test_every_page_renders(staff, exported, model):
    listing = staff.get(reverse(f"admin:collections_app_{model}_changelist"))
    assert listing.status_code == 200
    if model in ("collectionsettings", "retrypolicy", "mandateamendment"):
        assert staff.get(reverse(f"admin:collections_app_{model}_add")).status_code == 200
    if model == "collectionattempt":
        attempt = CollectionAttempt.objects.get()
        page = staff.get(reverse("admin:collections_app_collectionattempt_change", args=[attempt.pk]))
        assert page.status_code == 200
