"""Demo reminder scenarios for the demo creditor. Idempotent: running it again changes nothing."""
from __future__ import annotations

from django.db import transaction

from collections_app.dunning.models import DunningRule, DunningScenario
from collections_app.dunning.services import scenario_create
from collections_app.models import Creditor

FR_SIGN = "\n\n{{ payload.creditor_name }}"
EN_SIGN = FR_SIGN


def _texts(fr_subject: str, fr_intro: str, en_subject: str, en_intro: str, late_fee_fr: str = "",
           late_fee_en: str = "") -> dict:
    fr_body = (
        "Bonjour {{ recipient.name }},\n\n" + fr_intro + "\n\n"
        "Facture {{ payload.invoice_external_ref }} · échéance {{ payload.due_date|as_date|date:'j F Y' }}\n"
        "Reste à payer : {{ payload.amount_due|money:payload.currency }}\n"
        "{% if payload.late_fee_text %}{{ payload.late_fee_text }}\n{% endif %}\n"
        "Payer en ligne : {{ payload.pay_url }}\n"
        "Référence courte (par téléphone ou virement) : {{ payload.short_reference }}\n"
        "QR code : {{ payload.qr_url }}" + FR_SIGN)
    en_body = (
        "Hello {{ recipient.name }},\n\n" + en_intro + "\n\n"
        "Invoice {{ payload.invoice_external_ref }} · due {{ payload.due_date|as_date|date:'j F Y' }}\n"
        "Amount remaining: {{ payload.amount_due|money:payload.currency }}\n"
        "{% if payload.late_fee_text %}{{ payload.late_fee_text }}\n{% endif %}\n"
        "Pay online: {{ payload.pay_url }}\n"
        "Short reference (phone or transfer): {{ payload.short_reference }}\n"
        "QR code: {{ payload.qr_url }}" + EN_SIGN)
    return {
        "fr": {"subject": fr_subject, "body_text": fr_body, "late_fee_text": late_fee_fr,
               "sms_text": "{{ payload.creditor_name }} : facture {{ payload.invoice_external_ref }}, reste "
                           "{{ payload.amount_due|money:payload.currency }}. Payer : {{ payload.pay_url }}"},
        "en": {"subject": en_subject, "body_text": en_body, "late_fee_text": late_fee_en,
               "sms_text": "{{ payload.creditor_name }}: invoice {{ payload.invoice_external_ref }}, "
                           "{{ payload.amount_due|money:payload.currency }} remaining. Pay: {{ payload.pay_url }}"},
    }


STANDARD_STEPS = [
    {"offset_days": -3, "channel": "email", "name": "Courtesy", "templates": _texts(
        "Votre facture {{ payload.invoice_external_ref }} arrive à échéance",
        "Votre facture arrive à échéance dans {{ payload.days_until_due }} jours.",
        "Your invoice {{ payload.invoice_external_ref }} is due soon",
        "Your invoice is due in {{ payload.days_until_due }} days.")},
    {"offset_days": 3, "channel": "email", "name": "First reminder", "templates": _texts(
        "Rappel : facture {{ payload.invoice_external_ref }}",
        "Sauf erreur de notre part, votre facture reste impayée.",
        "Reminder: invoice {{ payload.invoice_external_ref }}",
        "Unless we are mistaken, your invoice is still unpaid.")},
    {"offset_days": 10, "channel": "both", "name": "Second reminder", "templates": _texts(
        "Deuxième rappel : facture {{ payload.invoice_external_ref }}",
        "Votre facture est en retard de {{ payload.days_overdue }} jours.",
        "Second reminder: invoice {{ payload.invoice_external_ref }}",
        "Your invoice is {{ payload.days_overdue }} days overdue.",
        "Des pénalités de retard (3 fois le taux d'intérêt légal) et une indemnité forfaitaire de 40 € "
        "pourront être appliquées.",
        "Late payment penalties and a fixed recovery fee of €40 may apply.")},
    {"offset_days": 20, "channel": "email", "name": "Formal notice", "templates": _texts(
        "Mise en demeure : facture {{ payload.invoice_external_ref }}",
        "Malgré nos relances, votre facture reste impayée. Sans règlement sous 8 jours, le dossier sera "
        "transmis au recouvrement.",
        "Final notice: invoice {{ payload.invoice_external_ref }}",
        "Despite our reminders your invoice is still unpaid. Without payment within 8 days the file will "
        "be passed to collection.",
        "Indemnité forfaitaire pour frais de recouvrement : 40 €.", "Fixed recovery fee: €40.")},
]

KEY_ACCOUNT_STEPS = [
    {"offset_days": 7, "channel": "email", "name": "Gentle reminder", "templates": _texts(
        "Facture {{ payload.invoice_external_ref }} : petit rappel",
        "Nous n'avons pas encore reçu le règlement de cette facture.",
        "Invoice {{ payload.invoice_external_ref }}: a gentle reminder",
        "We have not yet received payment of this invoice.")},
    {"offset_days": 21, "channel": "email", "name": "Second reminder", "templates": _texts(
        "Facture {{ payload.invoice_external_ref }} : deuxième rappel",
        "Votre facture est en retard de {{ payload.days_overdue }} jours ; votre chargé de compte vous "
        "contactera.",
        "Invoice {{ payload.invoice_external_ref }}: second reminder",
        "Your invoice is {{ payload.days_overdue }} days overdue; your account manager will call you.")},
]


ESCALATION_RULE = "Recouvrement : relances épuisées"


def _seed_team_alert() -> int:
    """The "alert the team" of an escalation is a notification rule on dunning.escalated."""
    from django.contrib.auth.models import Group

    from notifications.models import NotificationRule, NotificationTemplate

    if NotificationRule.objects.filter(name=ESCALATION_RULE).exists():
        return 0
    template, _ = NotificationTemplate.objects.get_or_create(
        key="dunning-escalated-team", channel="email", locale="fr", defaults={
            "subject": "Relances épuisées : {{ payload.invoice_external_ref }} · {{ payload.customer_name }}",
            "body_text": "Toutes les relances de la facture {{ payload.invoice_external_ref }} "
                         "({{ payload.customer_name }}, {{ payload.customer_external_ref }}) sont parties sans "
                         "paiement. Reste dû : {{ payload.amount_due|money:payload.currency }}. Action prévue : "
                         "{{ payload.action }}.\n"})
    NotificationRule.objects.create(
        name=ESCALATION_RULE, event_type="dunning.escalated", template=template, channel="email",
        conditions=[{"field": "action", "op": "in", "value": ["alert_team", "litigation"]}],
        recipient="staff_group", staff_group=Group.objects.get_or_create(name="finance")[0])
    return 1


@transaction.atomic
def seed() -> dict[str, int]:
    created = {"scenarios": 0, "rules": 0, "team_alerts": _seed_team_alert()}
    creditor = Creditor.objects.filter(name="Atelier Dupont SAS").first()
    if creditor is None:
        return created
    if not DunningScenario.objects.filter(creditor=creditor, name="Relance standard").exists():
        scenario_create(creditor=creditor, name="Relance standard", steps=STANDARD_STEPS, is_default=True,
                        escalation=DunningScenario.Escalation.ALERT_TEAM, escalation_after_days=10)
        created["scenarios"] += 1
    key = DunningScenario.objects.filter(creditor=creditor, name="Grands comptes").first()
    if key is None:
        key = scenario_create(creditor=creditor, name="Grands comptes", steps=KEY_ACCOUNT_STEPS,
                              escalation=DunningScenario.Escalation.LITIGATION, escalation_after_days=14,
                              window_start="10:00", window_end="17:00")
        created["scenarios"] += 1
    if not DunningRule.objects.filter(creditor=creditor, scenario=key).exists():
        DunningRule.objects.create(creditor=creditor, scenario=key, priority=10, tag="key account")
        created["rules"] += 1
    return created
