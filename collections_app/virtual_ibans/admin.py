from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from collections_app.errors import DomainError
from collections_app.virtual_ibans.models import VirtualIBAN, VirtualIBANRange
from collections_app.virtual_ibans.services import virtual_iban_deactivate, virtual_iban_range_check

__all__ = ["VirtualIBANRangeAdmin", "VirtualIBANAdmin"]


@admin.register(VirtualIBANRange)
class VirtualIBANRangeAdmin(admin.ModelAdmin):
    list_display = ["creditor", "country", "bank_code", "branch_code", "account_prefix", "account_length",
                    "allocation_mode", "next_number", "sample_iban", "is_active"]
    list_filter = ["allocation_mode", "is_active", "country"]
    search_fields = ["creditor__name", "bank_code", "account_prefix"]
    readonly_fields = ["next_number", "sample_iban"]

    @admin.display(description=_("first IBAN of the range"))
    def sample_iban(self, obj):
        if not obj.pk:
            return "-"
        try:
            return virtual_iban_range_check(range=obj)
        except DomainError as exc:
            return exc.message

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        original_clean = form.clean

        def clean(form_self):
            data = original_clean(form_self)
            candidate = VirtualIBANRange(**{k: v for k, v in data.items() if k in {
                "country", "bank_code", "branch_code", "account_prefix", "account_length"}})
            try:
                virtual_iban_range_check(range=candidate)
            except DomainError as exc:
                raise ValidationError(exc.message) from exc
            return data

        form.clean = clean
        return form


@admin.register(VirtualIBAN)
class VirtualIBANAdmin(admin.ModelAdmin):
    list_display = ["iban", "customer", "payment_request", "creditor", "status", "created_at"]
    list_filter = ["status", "creditor"]
    search_fields = ["iban", "customer__name", "customer__external_ref", "payment_request__reference"]
    readonly_fields = ["range", "creditor", "customer", "payment_request", "number", "iban", "status",
                       "deactivated_at", "created_at", "updated_at"]
    actions = ["deactivate"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Deactivate (never allocated again)"), permissions=["change"])
    def deactivate(self, request, queryset):
        done = 0
        for viban in queryset:
            try:
                virtual_iban_deactivate(virtual_iban=viban)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{viban}: {exc.message}", messages.ERROR)
        if done:
            self.message_user(request, _("%(count)d virtual IBAN(s) deactivated.") % {"count": done})
