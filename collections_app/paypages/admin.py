"""Back-office for the pay pages: operators send the pay link now (email or SMS) and print
its QR code; pay-page submissions are readable for support. The foundation's payment-request
admin is extended here, not rewritten."""
from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from collections_app.admin import PaymentRequestAdmin as BasePaymentRequestAdmin
from collections_app.errors import DomainError
from collections_app.models import PaymentRequest
from collections_app.paypages import qr
from collections_app.paypages.models import PaySubmission
from collections_app.paypages.services import pay_link_send

__all__ = ["PaySubmissionAdmin", "PaymentRequestAdmin"]


class PaymentRequestAdmin(BasePaymentRequestAdmin):
    actions = [*BasePaymentRequestAdmin.actions, "send_link_by_email", "send_link_by_sms"]
    readonly_fields = [*BasePaymentRequestAdmin.readonly_fields, "qr_codes"]

    def get_urls(self):
        return [path("<int:pk>/qr.<str:fmt>", self.admin_site.admin_view(self.qr_view),
                     name="collections_app_paymentrequest_qr"), *super().get_urls()]

    def qr_view(self, request, pk: int, fmt: str):
        if not self.has_view_permission(request) or fmt not in qr.FORMATS:
            raise Http404
        payment_request = get_object_or_404(PaymentRequest, pk=pk)
        body, content_type = qr.render(qr.pay_link_qr(payment_request), fmt)
        response = HttpResponse(body, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="pay-link-{payment_request.short_reference}.{fmt}"'
        return response

    @admin.display(description=_("QR code of the pay link"))
    def qr_codes(self, obj):
        if not obj or not obj.pk:
            return "-"
        name = "admin:collections_app_paymentrequest_qr"
        return format_html('<a href="{}">PNG</a> · <a href="{}">SVG</a>', reverse(name, args=[obj.pk, "png"]),
                           reverse(name, args=[obj.pk, "svg"]))

    def _send(self, request, queryset, channel: str):
        sent = 0
        for payment_request in queryset.select_related("customer"):
            try:
                recipient = pay_link_send(payment_request=payment_request, channel=channel,
                                          sent_by=request.user.get_username())
                sent += 1
                self.message_user(request, _("%(ref)s: pay link sent to %(to)s.")
                                  % {"ref": payment_request.reference, "to": recipient}, messages.SUCCESS)
            except DomainError as exc:
                self.message_user(request, f"{payment_request}: {exc.message}", messages.ERROR)
        return sent

    @admin.action(description=_("Send the pay link now by email"), permissions=["view"])
    def send_link_by_email(self, request, queryset):
        self._send(request, queryset, "email")

    @admin.action(description=_("Send the pay link now by SMS"), permissions=["view"])
    def send_link_by_sms(self, request, queryset):
        self._send(request, queryset, "sms")


admin.site.unregister(PaymentRequest)
admin.site.register(PaymentRequest, PaymentRequestAdmin)


@admin.register(PaySubmission)
class PaySubmissionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "payment_request", "kind", "amount", "currency", "status", "decline_code"]
    list_filter = ["status", "kind"]
    search_fields = ["payment_request__reference", "payment_request__short_reference",
                     "payment_request__customer__name"]
    readonly_fields = [f.name for f in PaySubmission._meta.fields if f.name != "nonce"]
    exclude = ["nonce"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
