"""Back-office for retry policies and the collection attempts timeline of each instalment."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from collections_app.models import Installment
from collections_app.retries.models import DEFAULT_RETRY_CODES, CollectionAttempt, RetryPolicy
from collections_app.retries.reasons import CARD_REASONS, SEPA_REASONS, reason_meaning
from collections_app.sepa.admin import ReadOnlyAdmin
from notifications.admin import render_timeline

__all__ = ["RetryPolicyAdmin", "CollectionAttemptAdmin"]


class RetryPolicyForm(forms.ModelForm):
    retry_codes = forms.CharField(
        label=_("reason codes that retry"), required=False,
        help_text=_("Comma-separated. SEPA: %(sepa)s. Card: %(card)s.")
        % {"sepa": ", ".join(SEPA_REASONS), "card": ", ".join(CARD_REASONS)})

    class Meta:
        model = RetryPolicy
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        codes = self.instance.retry_codes if self.instance.pk else DEFAULT_RETRY_CODES.get(
            self.initial.get("method") or "sepa_dd", [])
        self.initial["retry_codes"] = ", ".join(codes)

    def clean_retry_codes(self) -> list[str]:
        raw = [c.strip() for c in (self.cleaned_data.get("retry_codes") or "").replace(";", ",").split(",")]
        codes = list(dict.fromkeys(c for c in raw if c))
        known = set(SEPA_REASONS) | set(CARD_REASONS)
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise forms.ValidationError(_("Unknown reason code(s): %(codes)s") % {"codes": ", ".join(unknown)})
        return codes


@admin.register(RetryPolicy)
class RetryPolicyAdmin(admin.ModelAdmin):
    form = RetryPolicyForm
    list_display = ["creditor", "method", "max_retries", "interval", "interval_unit", "codes", "final_suspend",
                    "final_alert_team", "final_send_pay_link"]
    list_filter = ["method", "interval_unit", "creditor"]
    search_fields = ["creditor__name"]
    autocomplete_fields = ["creditor"]
    fieldsets = [
        (None, {"fields": ["creditor", "method"]}),
        (_("Retries"), {"fields": ["max_retries", "interval", "interval_unit", "retry_codes", "notify_debtor"]}),
        (_("When every attempt failed"), {"fields": ["final_suspend", "final_alert_team", "final_send_pay_link"]}),
    ]

    @admin.display(description=_("reason codes that retry"))
    def codes(self, obj):
        return ", ".join(obj.retry_codes or [])


@admin.register(CollectionAttempt)
class CollectionAttemptAdmin(ReadOnlyAdmin):
    list_display = ["id", "installment", "number", "method", "status", "scheduled_for", "collection_date",
                    "sequence_type", "reason_code", "will_retry", "sepa_file"]
    list_filter = ["status", "method", "will_retry", "sequence_type", "creditor", "scheduled_for"]
    search_fields = ["installment__plan__customer__name", "payment__end_to_end_id", "reason_code",
                     "installment__plan__mandate__reference"]
    readonly_fields = [f.name for f in CollectionAttempt._meta.fields] + ["meaning"]
    date_hierarchy = "scheduled_for"

    @admin.display(description=_("meaning"))
    def meaning(self, obj):
        return reason_meaning(obj.reason_code) if obj.reason_code else "-"


class CollectionAttemptInline(admin.TabularInline):
    model = CollectionAttempt
    extra = 0
    can_delete = False
    fields = ["number", "method", "status", "scheduled_for", "collection_date", "sequence_type", "payment",
              "reason_code", "reason_message", "will_retry", "sepa_file"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


if not admin.site.is_registered(Installment):
    @admin.register(Installment)
    class InstallmentAdmin(admin.ModelAdmin):
        """An instalment with every collection attempt and its events (read-only)."""

        list_display = ["__str__", "plan", "sequence", "due_date", "amount", "currency", "status"]
        list_filter = ["status", "plan__method", "due_date"]
        search_fields = ["plan__customer__name", "plan__customer__external_ref"]
        readonly_fields = ["plan", "sequence", "due_date", "amount", "currency", "status", "paid_at", "timeline"]
        inlines = [CollectionAttemptInline]
        actions = ["collect_again"]

        @admin.action(description=_("Collect the selected failed instalments again"), permissions=["view"])
        def collect_again(self, request, queryset):
            from collections_app.admin import run_service_action
            from collections_app.retries.services import installment_collect_again

            if not request.user.has_perm("collections_app.change_installmentplan"):
                self.message_user(request, _("You may not change instalment plans."), messages.ERROR)
                return
            run_service_action(self, request, queryset, lambda i: installment_collect_again(installment=i),
                               _("%(count)d new attempt(s) scheduled."))

        def has_add_permission(self, request):
            return False

        def has_change_permission(self, request, obj=None):
            return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

        def has_delete_permission(self, request, obj=None):
            return False

        @admin.display(description=_("Timeline"))
        def timeline(self, obj):
            return render_timeline("installment", obj.pk if obj else None)
