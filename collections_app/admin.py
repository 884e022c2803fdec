"""Back-office for finance staff and operators. Statuses are read-only here: they change
through admin actions that call the same services as the API."""
from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from collections_app import services
from collections_app.api.auth import api_key_create, api_key_revoke
from collections_app.errors import DomainError, ValidationFailed
from collections_app.models import (
    ApiKey,
    Creditor,
    Customer,
    IdempotencyRecord,
    Installment,
    InstallmentPlan,
    Invoice,
    Mandate,
    Payment,
    PaymentAllocation,
    PaymentRequest,
    Refund,
    SavedCard,
)
from notifications.admin import render_timeline


def run_service_action(modeladmin, request, queryset, func, success_message):
    done = 0
    for obj in queryset:
        try:
            func(obj)
            done += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, success_message % {"count": done}, messages.SUCCESS)


class TimelineMixin:
    timeline_kind: str = ""

    @admin.display(description=_("Timeline"))
    def timeline(self, obj):
        return render_timeline(self.timeline_kind, obj.pk if obj else None)


@admin.register(Creditor)
class CreditorAdmin(admin.ModelAdmin):
    list_display = ["name", "sepa_creditor_identifier", "iban", "country", "time_zone", "is_active"]
    list_filter = ["is_active", "country", "default_currency"]
    search_fields = ["name", "legal_name", "registration_number", "iban", "sepa_creditor_identifier", "email"]
    fieldsets = [
        (None, {"fields": ["name", "legal_name", "registration_number", "vat_number", "is_active"]}),
        (_("Bank"), {"fields": ["iban", "bic", "sepa_creditor_identifier"]}),
        (_("Contact"), {"fields": ["email", "phone", "website", "address_line1", "address_line2", "postal_code",
                                   "city", "country"]}),
        (_("Defaults"), {"fields": ["time_zone", "default_currency", "default_locale", "pay_link_validity_days"]}),
        (_("Pay page"), {"fields": ["allow_partial_payments", "min_partial_amount", "allow_instalments",
                                    "max_instalments", "min_instalment_amount", "instalment_methods"]}),
    ]


class InvoiceInline(admin.TabularInline):
    model = Invoice
    extra = 0
    fields = ["external_ref", "amount_total", "amount_paid", "currency", "due_date", "status"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(TimelineMixin, admin.ModelAdmin):
    timeline_kind = "customer"
    list_display = ["name", "external_ref", "creditor", "email", "phone", "credit_balance", "open_balance"]
    list_filter = ["creditor", "locale", "is_business"]
    search_fields = ["name", "company_name", "external_ref", "email", "phone", "mandates__iban"]
    readonly_fields = ["credit_balance", "open_balance", "portal_link", "timeline", "created_at", "updated_at"]
    inlines = [InvoiceInline]
    fieldsets = [
        (None, {"fields": ["creditor", "external_ref", "name", "company_name", "is_business"]}),
        (_("Contact"), {"fields": ["email", "phone", "locale", "time_zone", "address_line1", "postal_code", "city",
                                   "country"]}),
        (_("Collections"), {"fields": ["tags", "currency", "credit_balance", "open_balance", "portal_link",
                                       "notes"]}),
        (_("Timeline"), {"fields": ["timeline"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["creditor", "external_ref"] if obj else fields

    @admin.display(description=_("Open balance"))
    def open_balance(self, obj):
        from collections_app.selectors import customer_open_balance

        return customer_open_balance(customer=obj) if obj.pk else "-"

    @admin.display(description=_("Customer portal"))
    def portal_link(self, obj):
        from django.conf import settings

        if not obj.pk:
            return "-"
        url = f"{settings.PUBLIC_BASE_URL}/portal/{obj.portal_token}/"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in services.CUSTOMER_FIELDS if name in form.cleaned_data}
        try:
            if change:
                services.customer_update(customer=obj, **fields)
            else:
                saved = services.customer_create(creditor=form.cleaned_data["creditor"],
                                                 external_ref=form.cleaned_data["external_ref"],
                                                 **{k: v for k, v in fields.items() if k != "name"},
                                                 name=form.cleaned_data["name"])
                obj.pk = saved.pk
        except DomainError as exc:
            raise _admin_error(exc) from exc


def _admin_error(exc: DomainError):
    from django.core.exceptions import ValidationError

    return ValidationError(exc.message)


class AllocationInline(admin.TabularInline):
    model = PaymentAllocation
    extra = 0
    fields = ["payment", "invoice", "amount", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(TimelineMixin, admin.ModelAdmin):
    timeline_kind = "invoice"
    list_display = ["external_ref", "customer", "amount_total", "amount_paid", "amount_due_display", "currency",
                    "due_date", "status"]
    list_filter = ["status", "creditor", "currency", "due_date"]
    search_fields = ["external_ref", "customer__name", "customer__external_ref", "customer__email",
                     "payment_requests__short_reference", "payment_requests__reference"]
    date_hierarchy = "due_date"
    raw_id_fields = ["customer"]
    readonly_fields = ["status", "amount_paid", "amount_written_off", "amount_due_display", "paid_at", "timeline",
                       "created_at", "updated_at"]
    inlines = [AllocationInline]
    actions = ["cancel_invoices", "write_off_invoices"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return fields + ["creditor", "customer", "external_ref", "currency", "issue_date"] if obj else fields

    @admin.display(description=_("Amount due"))
    def amount_due_display(self, obj):
        return obj.amount_due if obj.pk else "-"

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if change:
                services.invoice_update(invoice=obj, amount_total=data.get("amount_total"),
                                        due_date=data.get("due_date"), description=data.get("description"))
            else:
                saved = services.invoice_create(creditor=data["creditor"], customer=data["customer"],
                                                external_ref=data["external_ref"], amount_total=data["amount_total"],
                                                currency=data["currency"], issue_date=data["issue_date"],
                                                due_date=data["due_date"], description=data.get("description", ""))
                obj.pk = saved.pk
        except DomainError as exc:
            raise _admin_error(exc) from exc

    @admin.action(description=_("Cancel the selected invoices"), permissions=["change"])
    def cancel_invoices(self, request, queryset):
        run_service_action(self, request, queryset, lambda i: services.invoice_cancel(invoice=i),
                           _("%(count)d invoice(s) cancelled."))

    @admin.action(description=_("Write off the remaining balance"), permissions=["change"])
    def write_off_invoices(self, request, queryset):
        run_service_action(self, request, queryset, lambda i: services.invoice_write_off(invoice=i),
                           _("%(count)d invoice(s) written off."))


@admin.register(PaymentRequest)
class PaymentRequestAdmin(TimelineMixin, admin.ModelAdmin):
    timeline_kind = "payment_request"
    list_display = ["reference", "short_reference", "customer", "amount", "amount_paid", "currency", "status",
                    "expires_at"]
    list_filter = ["status", "creditor", "currency"]
    search_fields = ["reference", "short_reference", "customer__name", "customer__email", "customer__external_ref",
                     "invoices__external_ref"]
    raw_id_fields = ["customer", "invoices"]
    readonly_fields = ["short_reference", "pay_link", "status", "amount_paid", "amount_due_display", "paid_at",
                       "timeline", "created_at", "updated_at"]
    actions = ["cancel_requests"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj:
            fields += ["creditor", "customer", "invoices", "reference", "currency", "amount"]
        return fields

    @admin.display(description=_("Amount due"))
    def amount_due_display(self, obj):
        return obj.amount_due if obj.pk else "-"

    @admin.display(description=_("Pay link"))
    def pay_link(self, obj):
        if not obj.pk:
            return "-"
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', obj.pay_url, obj.pay_url)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()  # only descriptive and pay-page settings are editable
            return
        data = form.cleaned_data
        try:
            saved = services.payment_request_create(
                creditor=data["creditor"], customer=data["customer"], invoices=list(data.get("invoices") or []),
                amount=data.get("amount"), currency=data.get("currency"), reference=data.get("reference") or None,
                allowed_methods=data.get("allowed_methods") or None, expires_at=data.get("expires_at"),
                description=data.get("description", ""), allow_partial=data.get("allow_partial"),
                min_partial_amount=data.get("min_partial_amount"), allow_instalments=data.get("allow_instalments"),
                max_instalments=data.get("max_instalments"))
            obj.pk = saved.pk
        except DomainError as exc:
            raise _admin_error(exc) from exc

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    @admin.action(description=_("Cancel the selected payment requests"), permissions=["change"])
    def cancel_requests(self, request, queryset):
        run_service_action(self, request, queryset, lambda r: services.payment_request_cancel(payment_request=r),
                           _("%(count)d payment request(s) cancelled."))


class ReadOnlyStatusAdmin(admin.ModelAdmin):
    """Objects created by the platform itself (payments, refunds, mandates): read here, act through actions."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)


@admin.register(Payment)
class PaymentAdmin(TimelineMixin, ReadOnlyStatusAdmin):
    timeline_kind = "payment"
    list_display = ["id", "customer", "method", "amount", "currency", "status", "attempt", "reason_code",
                    "created_at"]
    list_filter = ["status", "method", "creditor", "currency"]
    search_fields = ["customer__name", "customer__email", "gateway_reference", "end_to_end_id",
                     "payment_request__reference", "payment_request__short_reference", "mandate__iban"]
    date_hierarchy = "created_at"
    inlines = [AllocationInline]
    readonly_fields = ["timeline"]


@admin.register(Refund)
class RefundAdmin(ReadOnlyStatusAdmin):
    list_display = ["id", "payment", "amount", "currency", "status", "reason", "created_at"]
    list_filter = ["status", "currency"]
    search_fields = ["payment__customer__name", "payment__gateway_reference", "gateway_reference", "reason"]


@admin.register(Mandate)
class MandateAdmin(TimelineMixin, ReadOnlyStatusAdmin):
    timeline_kind = "mandate"
    list_display = ["reference", "customer", "holder_name", "iban", "status", "signed_at", "last_collected_at"]
    list_filter = ["status", "scheme", "creditor"]
    search_fields = ["reference", "iban", "holder_name", "customer__name", "customer__email"]
    readonly_fields = ["timeline"]
    actions = ["cancel_mandates"]

    @admin.action(description=_("Cancel the selected mandates"), permissions=["view"])
    def cancel_mandates(self, request, queryset):
        if not request.user.has_perm("collections_app.change_mandate"):
            self.message_user(request, _("You may not cancel mandates."), messages.ERROR)
            return
        run_service_action(self, request, queryset, lambda m: services.mandate_cancel(mandate=m),
                           _("%(count)d mandate(s) cancelled."))


@admin.register(SavedCard)
class SavedCardAdmin(ReadOnlyStatusAdmin):
    list_display = ["customer", "brand", "last4", "exp_month", "exp_year", "status"]
    list_filter = ["status", "brand"]
    search_fields = ["customer__name", "customer__email", "last4"]


class InstallmentInline(admin.TabularInline):
    model = Installment
    extra = 0
    fields = ["sequence", "due_date", "amount", "currency", "status", "paid_at"]
    readonly_fields = ["status", "paid_at"]


@admin.register(InstallmentPlan)
class InstallmentPlanAdmin(TimelineMixin, admin.ModelAdmin):
    timeline_kind = "instalment_plan"
    list_display = ["id", "customer", "method", "total_amount", "currency", "recurrence_months", "status", "origin",
                    "created_at"]
    list_filter = ["status", "method", "origin", "creditor", ("recurrence_months", admin.EmptyFieldListFilter)]
    search_fields = ["customer__name", "customer__email", "customer__external_ref", "payment_request__reference"]
    raw_id_fields = ["customer", "payment_request", "mandate", "saved_card"]
    readonly_fields = ["status", "total_amount", "timeline", "created_at", "updated_at"]
    inlines = [InstallmentInline]
    actions = ["cancel_plans", "suspend_plans", "resume_plans"]

    def has_change_permission(self, request, obj=None):
        # Plans are created here (negotiated by an operator), then changed only by actions.
        if obj is not None and request.method == "POST" and "action" not in request.POST:
            return False
        return super().has_change_permission(request, obj)

    @admin.action(description=_("Cancel the selected plans"), permissions=["change"])
    def cancel_plans(self, request, queryset):
        run_service_action(self, request, queryset, lambda p: services.installment_plan_cancel(plan=p),
                           _("%(count)d plan(s) cancelled."))

    @admin.action(description=_("Suspend the selected plans"), permissions=["change"])
    def suspend_plans(self, request, queryset):
        run_service_action(self, request, queryset,
                           lambda p: services.installment_plan_suspend(plan=p, reason="suspended by staff"),
                           _("%(count)d plan(s) suspended."))

    @admin.action(description=_("Resume the selected plans"), permissions=["change"])
    def resume_plans(self, request, queryset):
        run_service_action(self, request, queryset, lambda p: services.installment_plan_resume(plan=p),
                           _("%(count)d plan(s) resumed."))

    def save_model(self, request, obj, form, change):
        pass  # created by installment_plan_create in save_related, once the schedule is known

    def construct_change_message(self, request, form, formsets, add=False):
        # The instalments were written by installment_plan_create, not saved by the formset.
        return super().construct_change_message(request, form, [], add)

    def save_related(self, request, form, formsets, change):
        if change:
            return
        data = form.cleaned_data
        lines = []
        for inline_form in formsets[0].forms if formsets else []:
            cleaned = getattr(inline_form, "cleaned_data", None) or {}
            if cleaned and not cleaned.get("DELETE") and cleaned.get("due_date") and cleaned.get("amount"):
                lines.append((cleaned["due_date"], cleaned["amount"]))
        lines.sort()
        try:
            if data.get("recurrence_months"):
                # A recurring payment: the first line gives the first collection (date and amount).
                if not lines:
                    raise ValidationFailed(_("Give the first collection as the first instalment line."),
                                           field="schedule")
                plan = services.recurring_plan_create(
                    customer=data["customer"], method=data["method"], amount=data.get("recurring_amount") or lines[0][1],
                    first_due_date=lines[0][0], every_months=data["recurrence_months"], ends_on=data.get("ends_on"),
                    mandate=data.get("mandate"), saved_card=data.get("saved_card"),
                    origin=InstallmentPlan.Origin.OPERATOR, created_by=request.user, currency=data.get("currency"))
                form.instance.pk = form.instance.id = plan.pk
                return
            plan = services.installment_plan_create(
                customer=data["customer"], method=data["method"], schedule=lines,
                payment_request=data.get("payment_request"), mandate=data.get("mandate"),
                saved_card=data.get("saved_card"), origin=InstallmentPlan.Origin.OPERATOR, created_by=request.user,
                currency=data.get("currency"))
        except DomainError as exc:
            raise _admin_error(exc) from exc
        # The admin goes on with form.instance (log entry, redirect): point it at the plan.
        form.instance.pk = form.instance.id = plan.pk


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "creditor", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["creditor", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "creditor", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_keys"]

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        key, raw = api_key_create(name=form.cleaned_data["name"], creditor=form.cleaned_data.get("creditor"))
        obj.pk = key.pk
        obj.prefix = key.prefix
        self.message_user(request, format_html(
            _("API key created. Copy it now, it will not be shown again: <code>{}</code>"), raw), messages.WARNING)

    @admin.action(description=_("Revoke the selected keys"), permissions=["change"])
    def revoke_keys(self, request, queryset):
        for key in queryset:
            api_key_revoke(api_key=key)
        self.message_user(request, _("Keys revoked."), messages.SUCCESS)


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["key", "api_key", "path", "state", "response_status", "created_at"]
    list_filter = ["state"]
    search_fields = ["key", "path"]
    readonly_fields = ["api_key", "key", "method", "path", "request_hash", "state", "response_status",
                       "response_content_type", "created_at"]
    exclude = ["response_body"]

    def has_add_permission(self, request):
        return False
from collections_app.paypages.admin import *  # noqa: E402,F401,F403
from collections_app.virtual_ibans.admin import *  # noqa: E402,F401,F403

from collections_app.sepa.admin import *  # noqa: E402,F401,F403
from collections_app.retries.admin import *  # noqa: E402,F401,F403
from collections_app.dunning import admin as _dunning_admin  # noqa: E402,F401
