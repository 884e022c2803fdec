"""Back-office for SEPA collection: per-creditor settings, the pain.008 files (download),
pain.002 status reports (upload), mandate amendments."""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from collections_app.sepa.models import CollectionSettings, MandateAmendment, SepaFile, StatusReport
from collections_app.sepa.services import sepa_file_write, status_report_import

__all__ = ["CollectionSettingsAdmin", "SepaFileAdmin", "StatusReportAdmin", "MandateAmendmentAdmin"]


@admin.register(CollectionSettings)
class CollectionSettingsAdmin(admin.ModelAdmin):
    list_display = ["creditor", "scheme_version", "lead_days", "pre_notification_days", "card_expiry_warning_days"]
    list_filter = ["scheme_version"]
    search_fields = ["creditor__name"]
    autocomplete_fields = ["creditor"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SepaFile)
class SepaFileAdmin(ReadOnlyAdmin):
    list_display = ["file_name", "creditor", "collection_date", "sequence_type", "scheme", "scheme_version",
                    "transaction_count", "control_sum", "status", "download"]
    list_filter = ["status", "sequence_type", "scheme_version", "creditor", "collection_date"]
    search_fields = ["file_name", "message_id", "attempts__payment__end_to_end_id"]
    date_hierarchy = "collection_date"
    readonly_fields = ["creditor", "collection_date", "sequence_type", "scheme", "scheme_version", "message_id",
                       "file_name", "transaction_count", "control_sum", "currency", "status", "written_path",
                       "written_at", "created_at", "download"]
    actions = ["write_again"]

    def get_urls(self):
        return [path("<int:pk>/download/", self.admin_site.admin_view(self.download_view),
                     name="collections_app_sepafile_download")] + super().get_urls()

    @admin.display(description=_("XML"))
    def download(self, obj):
        if not obj or not obj.pk:
            return "-"
        return format_html('<a href="{}">{}</a>', reverse("admin:collections_app_sepafile_download", args=[obj.pk]),
                           _("Download"))

    def download_view(self, request, pk: int):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        sepa_file = get_object_or_404(SepaFile, pk=pk)
        response = HttpResponse(sepa_file.content.encode("utf-8"), content_type="application/xml")
        response["Content-Disposition"] = f'attachment; filename="{sepa_file.file_name}"'
        return response

    @admin.action(description=_("Write the selected files to the outgoing folder again"), permissions=["view"])
    def write_again(self, request, queryset):
        count = 0
        for sepa_file in queryset:
            sepa_file_write(sepa_file=sepa_file, again=True)
            count += 1
        self.message_user(request, _("%(count)d file(s) written.") % {"count": count}, messages.SUCCESS)


class StatusReportUploadForm(forms.Form):
    file = forms.FileField(label=_("pain.002 file"))


@admin.register(StatusReport)
class StatusReportAdmin(ReadOnlyAdmin):
    list_display = ["message_id", "original_message_id", "file_name", "rejected_count", "accepted_count",
                    "created_at"]
    search_fields = ["message_id", "original_message_id", "file_name"]
    readonly_fields = ["message_id", "original_message_id", "file_name", "rejected_count", "accepted_count",
                       "created_at"]
    change_list_template = "admin/collections_app/statusreport/change_list.html"

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view),
                     name="collections_app_statusreport_upload")] + super().get_urls()

    def upload_view(self, request):
        if not request.user.has_perm("collections_app.change_payment"):
            self.message_user(request, _("You may not import status reports."), messages.ERROR)
            return redirect("admin:collections_app_statusreport_changelist")
        form = StatusReportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            result = status_report_import(content=upload.read(), filename=upload.name)
            if result.errors:
                for error in result.errors:
                    form.add_error("file", error)
            else:
                if result.already_imported:
                    self.message_user(request, _("This report was already imported."), messages.WARNING)
                else:
                    retried = sum(1 for r in result.rejected if r.get("will_retry"))
                    self.message_user(request, _("%(n)d rejected transaction(s) recorded, %(r)d to be retried.")
                                      % {"n": len(result.rejected), "r": retried}, messages.SUCCESS)
                return redirect("admin:collections_app_statusreport_changelist")
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
                   "title": _("Import a pain.002 status report")}
        return TemplateResponse(request, "admin/collections_app/statusreport/upload.html", context)


class MandateAmendmentForm(forms.ModelForm):
    """The debtor's new account; the service keeps the previous one for the next file."""

    class Meta:
        model = MandateAmendment
        fields = ["mandate", "new_iban", "new_bic"]

    def clean(self):
        # Runs inside the admin's transaction: a later error rolls the amendment back too.
        from collections_app.errors import DomainError
        from collections_app.sepa.services import mandate_amend

        cleaned = super().clean()
        mandate = cleaned.get("mandate")
        if mandate is not None and cleaned.get("new_iban") and not self.errors:
            try:
                self.amended = mandate_amend(mandate=mandate, iban=cleaned["new_iban"], bic=cleaned.get("new_bic", ""))
            except DomainError as exc:
                field = {"bic": "new_bic"}.get(exc.field or "", "new_iban")
                raise forms.ValidationError({field: exc.message}) from exc
        return cleaned


@admin.register(MandateAmendment)
class MandateAmendmentAdmin(admin.ModelAdmin):
    list_display = ["mandate", "previous_iban", "new_iban", "sepa_file", "created_at"]
    search_fields = ["mandate__reference", "previous_iban", "new_iban"]
    list_filter = [("sepa_file", admin.EmptyFieldListFilter)]
    raw_id_fields = ["mandate"]
    form = MandateAmendmentForm

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # mandate_amend (called by the form) already wrote the amendment and its event
        obj.pk = MandateAmendment.objects.filter(mandate=form.cleaned_data["mandate"]).latest("pk").pk
