"""Back-office of reminders: scenarios with their steps, templates per language, assignment
rules, overrides, pauses; a preview of the next reminders, statistics per step, and each
invoice's reminders next to its timeline of payments and retries."""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from collections_app.admin import InvoiceAdmin, PaymentRequestAdmin
from collections_app.dunning import selectors, services
from collections_app.dunning.models import (
    DunningEscalation,
    DunningOverride,
    DunningPause,
    DunningRule,
    DunningScenario,
    DunningStep,
    DunningStepTemplate,
    Reminder,
)
from collections_app.errors import DomainError


def _table(headers, rows) -> str:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((c if c is not None else "–",) for c in row)),) for row in rows))
    return format_html('<table class="encaisse-dunning"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                       head, body)


class DunningStepInline(admin.TabularInline):
    model = DunningStep
    extra = 0
    fields = ["offset_days", "channel", "name"]
    show_change_link = True


@admin.register(DunningScenario)
class DunningScenarioAdmin(admin.ModelAdmin):
    list_display = ["name", "creditor", "is_default", "is_active", "step_count", "escalation"]
    list_filter = ["creditor", "is_active", "is_default", "escalation"]
    search_fields = ["name", "creditor__name"]
    inlines = [DunningStepInline]
    readonly_fields = ["statistics", "next_reminders"]
    fieldsets = [
        (None, {"fields": ["creditor", "name", "is_default", "is_active"]}),
        (_("Send window (customer's time zone)"), {"fields": ["window_start", "window_end", "weekdays",
                                                              "skip_non_business_days"]}),
        (_("After the last step"), {"fields": ["escalation", "escalation_after_days"]}),
        (_("Statistics"), {"fields": ["paid_within_days", "statistics"]}),
        (_("Next reminders"), {"fields": ["next_reminders"]}),
    ]

    @admin.display(description=_("steps"))
    def step_count(self, obj):
        return obj.steps.count()

    @admin.display(description=_("Sent and paid after, per step"))
    def statistics(self, obj):
        if not obj or not obj.pk:
            return "-"
        rows = selectors.scenario_statistics(scenario=obj)
        return _table([_("step"), _("days"), _("channel"), _("sent"), _("skipped"), _("failed"),
                       _("paid within N days"), _("rate")],
                      [(r["step"], r["offset_days"], r["channel"], r["sent"], r["skipped"], r["failed"],
                        r["paid_after"], f"{r['paid_rate']:.0%}" if r["paid_rate"] is not None else None)
                       for r in rows])

    @admin.display(description=_("Next 7 days"))
    def next_reminders(self, obj):
        if not obj or not obj.pk:
            return "-"
        items = selectors.dunning_preview(today=timezone.localdate(), scenario_id=obj.pk, limit=50)
        if not items:
            return _("Nothing planned in the next 7 days.")
        return _table([_("date"), _("invoice"), _("customer"), _("step"), _("channel"), _("amount due"),
                       _("note")],
                      [(i["date"], i["invoice"], i["customer"], f"J{i['step_offset_days']:+d}", i["channel"],
                        f"{i['amount_due']} {i['currency']}",
                        (_("paused: %s") % i["reason"]) if i["action"] == "paused" else "")
                       for i in items])


class DunningStepTemplateInline(admin.StackedInline):
    model = DunningStepTemplate
    extra = 0
    fields = ["locale", "subject", "body_text", "sms_text", "late_fee_text"]


@admin.register(DunningStep)
class DunningStepAdmin(admin.ModelAdmin):
    list_display = ["__str__", "scenario", "offset_days", "channel"]
    list_filter = ["scenario__creditor", "scenario", "channel"]
    inlines = [DunningStepTemplateInline]


@admin.register(DunningRule)
class DunningRuleAdmin(admin.ModelAdmin):
    list_display = ["priority", "creditor", "tag", "min_amount", "max_amount", "scenario"]
    list_filter = ["creditor", "scenario"]
    search_fields = ["tag", "scenario__name"]


@admin.register(DunningOverride)
class DunningOverrideAdmin(admin.ModelAdmin):
    list_display = ["__str__", "customer", "invoice", "scenario", "excluded", "note"]
    list_filter = ["excluded", "scenario"]
    search_fields = ["customer__name", "customer__external_ref", "invoice__external_ref"]
    raw_id_fields = ["customer", "invoice"]


@admin.action(description=_("End the selected pauses (reminders resume)"))
def end_pauses(modeladmin, request, queryset):
    done = 0
    for pause in queryset:
        try:
            services.pause_end(pause=pause)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{pause}: {exc.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, _("%(count)d pause(s) ended.") % {"count": done}, messages.SUCCESS)


@admin.register(DunningPause)
class DunningPauseAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "customer", "invoice", "until", "status", "created_at"]
    list_filter = ["kind", "status"]
    search_fields = ["customer__name", "customer__external_ref", "invoice__external_ref", "note"]
    raw_id_fields = ["customer", "invoice"]
    readonly_fields = ["status", "created_at", "ended_at"]
    actions = [end_pauses]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        try:
            saved = services.pause_create(customer=obj.customer, invoice=obj.invoice, kind=obj.kind,
                                          until=obj.until, note=obj.note)
        except DomainError as exc:
            from django.core.exceptions import ValidationError

            raise ValidationError(exc.message) from exc
        obj.pk = saved.pk


READONLY_REMINDER = ["invoice", "payment_request", "scenario", "step", "status", "step_date", "run_date", "channel", "channels_done",
                     "locale", "email", "phone", "amount_due", "currency", "subject", "body_text", "sms_text",
                     "skip_reason", "attempts", "error", "claimed_at", "sending_started_at", "sent_at"]


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ["__str__", "scenario", "status", "skip_reason", "amount_due", "currency", "step_date",
                    "sent_at"]
    list_filter = ["status", "scenario", "channel", "skip_reason", "run_date"]
    search_fields = ["invoice__external_ref", "invoice__customer__name", "payment_request__reference",
                     "payment_request__customer__name", "email", "phone"]
    date_hierarchy = "claimed_at"
    readonly_fields = READONLY_REMINDER
    fields = READONLY_REMINDER

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DunningEscalation)
class DunningEscalationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "scenario", "action", "run_date", "created_at"]
    list_filter = ["action", "scenario"]
    search_fields = ["invoice__external_ref", "invoice__customer__name", "payment_request__reference"]
    readonly_fields = ["invoice", "payment_request", "scenario", "action", "run_date", "created_at"]

    def has_add_permission(self, request):
        return False


class ReminderInline(admin.TabularInline):
    model = Reminder
    extra = 0
    fields = ["step", "step_date", "status", "skip_reason", "channel", "amount_due", "sent_at", "error"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True
    verbose_name_plural = _("Reminders (the timeline below also shows payments and retries)")

    def has_add_permission(self, request, obj=None):
        return False


# The invoice (and request) page lists its reminders next to the event timeline (reminders,
# payments, retries).
InvoiceAdmin.inlines = [*InvoiceAdmin.inlines, ReminderInline]
PaymentRequestAdmin.inlines = [*PaymentRequestAdmin.inlines, ReminderInline]
