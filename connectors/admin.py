"""Back-office of the ERP connectors: invoice imports (upload, dry-run preview, progress bar,
error report, return file), column mappings, status-file cursors, accounting exports, the
monthly report, and django-import-export on customers, invoices and payments."""
from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export.admin import ImportExportMixin

from collections_app.models import Creditor, Customer, Invoice, Payment
from connectors import accounting, reports, services
from connectors.exports import export_cursor_create, status_file_write
from connectors.importing.fields import DEFAULT_HEADERS, FIELDS
from connectors.models import AccountingSettings, ColumnMapping, ExportCursor, ExportJob, ImportJob
from connectors.resources import CustomerResource, InvoiceResource, PaymentResource




@admin.register(ColumnMapping)
class ColumnMappingAdmin(admin.ModelAdmin):
    list_display = ["name", "creditor", "delimiter", "decimal_separator", "date_format", "default_currency",
                    "updated_at"]
    list_filter = ["creditor"]
    search_fields = ["name", "creditor__name"]
    readonly_fields = ["default_headers"]
    fields = ["name", "creditor", "columns", "default_headers", "delimiter", "decimal_separator", "date_format",
              "default_currency"]

    @admin.display(description=_("Recognised without a mapping"))
    def default_headers(self, obj):
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>",
            ((f"{field} ({label})", ", ".join(DEFAULT_HEADERS[field])) for field, (label, _req) in FIELDS.items())))


@admin.register(AccountingSettings)
class AccountingSettingsAdmin(admin.ModelAdmin):
    list_display = ["creditor", "bank_journal", "bank_account", "card_account", "customer_account",
                    "write_off_account", "updated_at"]
    fieldsets = [
        (None, {"fields": ["creditor"]}),
        (_("Journals"), {"fields": [("bank_journal", "bank_journal_label"), ("misc_journal", "misc_journal_label")]}),
        (_("Accounts"), {"fields": [("bank_account", "bank_account_label"), ("card_account", "card_account_label"),
                                    ("customer_account", "customer_account_label"), "auxiliary_prefix",
                                    ("write_off_account", "write_off_account_label")]}),
    ]


class ImportUploadForm(forms.ModelForm):
    upload = forms.FileField(label=_("file (CSV or XLSX)"))

    class Meta:
        model = ImportJob
        fields = ["creditor", "mapping", "mode", "dry_run"]

    def clean(self):
        data = super().clean()
        mapping, creditor = data.get("mapping"), data.get("creditor")
        if mapping and creditor and mapping.creditor_id != creditor.pk:
            self.add_error("mapping", _("The column mapping belongs to another creditor."))
        return data


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "filename", "creditor", "source", "dry_run", "status", "progress_bar", "rows_total",
                    "rows_rejected", "invoices_created", "invoices_updated", "created_at"]
    list_filter = ["status", "source", "dry_run", "mode", "creditor"]
    search_fields = ["filename", "creditor__name"]
    date_hierarchy = "created_at"
    actions = ["confirm_dry_runs", "run_now"]
    readonly_fields = ["creditor", "mapping", "source", "mode", "dry_run", "filename", "status", "progress_bar",
                       "counters", "downloads", "preview_table", "errors_table", "message", "created_by",
                       "created_at", "started_at", "finished_at"]
    fieldsets = [
        (None, {"fields": ["status", "progress_bar", "message", "downloads"]}),
        (_("Import"), {"fields": ["creditor", "mapping", "source", "mode", "dry_run", "filename", "created_by",
                                  "created_at", "started_at", "finished_at"]}),
        (_("Result"), {"fields": ["counters", "preview_table", "errors_table"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ImportUploadForm
            kwargs["fields"] = ["creditor", "mapping", "mode", "dry_run", "upload"]
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["creditor", "mapping", "upload", "mode", "dry_run"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False if obj is not None else super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data["upload"]
        job = services.import_job_create(
            creditor=form.cleaned_data["creditor"], source=ImportJob.Source.UPLOAD, filename=upload.name,
            content=upload, mapping=form.cleaned_data.get("mapping"), mode=form.cleaned_data["mode"],
            dry_run=form.cleaned_data["dry_run"], created_by=request.user)
        obj.pk = job.pk
        obj._state.adding = False
        services.import_job_enqueue(job_id=job.pk)

    def response_add(self, request, obj, post_url_continue=None):
        return redirect(reverse("admin:connectors_importjob_change", args=[obj.pk]))

    def get_urls(self):
        urls = [
            path("<int:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                 name="connectors_importjob_progress"),
            path("<int:pk>/errors.csv", self.admin_site.admin_view(self.errors_view),
                 name="connectors_importjob_errors"),
            path("<int:pk>/return.csv", self.admin_site.admin_view(self.return_view),
                 name="connectors_importjob_return"),
        ]
        return urls + super().get_urls()

    def _job(self, request, pk) -> ImportJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(ImportJob, pk=pk)

    def progress_view(self, request, pk):
        job = self._job(request, pk)
        return JsonResponse({"id": job.pk, "status": job.status, "status_label": str(job.get_status_display()),
                             "phase": job.phase, "progress": job.progress, "rows": job.rows_total,
                             "finished": job.status in ImportJob.FINISHED})

    def errors_view(self, request, pk):
        job = self._job(request, pk)
        response = HttpResponse(services.errors_csv(job.errors), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-errors.csv"'
        return response

    def return_view(self, request, pk):
        job = self._job(request, pk)
        if not job.return_file:
            raise PermissionDenied
        return FileResponse(job.return_file.open("rb"), as_attachment=True,
                            filename=f"import-{job.pk}-return.csv", content_type="text/csv")

    @admin.action(description=_("Import the selected dry runs for real"))
    def confirm_dry_runs(self, request, queryset):
        started = 0
        for job in queryset.filter(status=ImportJob.Status.PREVIEWED).exclude(file=""):
            with job.file.open("rb") as handle:
                new = services.import_job_create(creditor=job.creditor, source=job.source, filename=job.filename,
                                                 content=handle.read(), mapping=job.mapping, mode=job.mode,
                                                 created_by=request.user)
            services.import_job_enqueue(job_id=new.pk)
            started += 1
        self.message_user(request, _("%(count)s import(s) started.") % {"count": started}, messages.SUCCESS)

    @admin.action(description=_("Run the selected pending imports now"))
    def run_now(self, request, queryset):
        done = 0
        for job in queryset.filter(status=ImportJob.Status.PENDING):
            services.import_job_run(job=job)
            done += 1
        self.message_user(request, _("%(count)s import(s) run.") % {"count": done}, messages.SUCCESS)

    @admin.display(description=_("progress"))
    def progress_bar(self, obj):
        if obj.status in ImportJob.FINISHED:
            return format_html('<progress max="100" value="100"></progress> {}', obj.get_status_display())
        url = reverse("admin:connectors_importjob_progress", args=[obj.pk])
        # Polls the small JSON view once a second; reloads the page when the import is done.
        return format_html(
            '<span class="import-progress" data-url="{}"><progress max="100" value="{}"></progress> '
            '<span class="label">{} {}%</span></span>'
            "<script>(function(){{var box=document.currentScript.previousElementSibling;"
            "function poll(){{fetch(box.dataset.url,{{credentials:'same-origin'}}).then(function(r){{return r.json()}})"
            ".then(function(d){{box.querySelector('progress').value=d.progress;"
            "box.querySelector('.label').textContent=d.status_label+' '+(d.phase||'')+' '+d.progress+'% ('+d.rows+')';"
            "if(d.finished){{if(document.querySelector('.change-form'))location.reload()}}"
            "else setTimeout(poll,1000)}})}}"
            "setTimeout(poll,1000)}})()</script>",
            url, obj.progress, obj.get_status_display(), obj.progress)

    @admin.display(description=_("counts"))
    def counters(self, obj):
        items = [(_("rows"), obj.rows_total), (_("valid rows"), obj.rows_valid),
                 (_("rejected rows"), obj.rows_rejected), (_("customers created"), obj.customers_created),
                 (_("customers updated"), obj.customers_updated), (_("invoices created"), obj.invoices_created),
                 (_("invoices updated"), obj.invoices_updated), (_("invoices unchanged"), obj.invoices_unchanged),
                 (_("payment requests created"), obj.payment_requests_created)]
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", items))

    @admin.display(description=_("downloads and next step"))
    def downloads(self, obj):
        parts = []
        if obj.errors:
            parts.append(format_html('<a class="button" href="{}">{}</a>',
                                     reverse("admin:connectors_importjob_errors", args=[obj.pk]),
                                     _("Error report (CSV)")))
        if obj.return_file:
            parts.append(format_html('<a class="button" href="{}">{}</a>',
                                     reverse("admin:connectors_importjob_return", args=[obj.pk]),
                                     _("Return file (CSV)")))
        if obj.status == ImportJob.Status.PREVIEWED:
            parts.append(format_html("<em>{}</em>", _("Dry run: nothing was written. To import this file, select "
                                                      "it in the list and use “Import the selected dry runs for "
                                                      "real”.")))
        return format_html_join(" ", "{}", ((p,) for p in parts)) if parts else "—"

    @admin.display(description=_("preview (first rows)"))
    def preview_table(self, obj):
        if not obj.preview:
            return "—"
        columns = list(obj.preview[0])
        head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
        body = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", ((row.get(c, ""),) for c in columns)),) for row in obj.preview))
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)

    @admin.display(description=_("row errors"))
    def errors_table(self, obj):
        if not obj.errors:
            return "—"
        shown = obj.errors[:200]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((e["row"], e["column"], e["message"]) for e in shown))
        more = _("… and %(count)s more in the CSV report") % {"count": len(obj.errors) - len(shown)} \
            if len(obj.errors) > len(shown) else ""
        return format_html("<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
                           "<tbody>{}</tbody></table>{}", _("row"), _("column"), _("message"), rows, more)


class ExportCursorForm(forms.ModelForm):
    class Meta:
        model = ExportCursor
        fields = ["name", "creditor", "format"]


@admin.register(ExportCursor)
class ExportCursorAdmin(admin.ModelAdmin):
    form = ExportCursorForm
    list_display = ["name", "creditor", "format", "last_event_id", "waiting", "updated_at"]
    list_filter = ["format", "creditor"]
    search_fields = ["name"]
    actions = ["write_now"]

    @admin.display(description=_("changes waiting"))
    def waiting(self, obj):
        return obj.pending.count()

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        created = export_cursor_create(name=obj.name, creditor=obj.creditor, format=obj.format)
        obj.pk = created.pk
        obj._state.adding = False

    @admin.action(description=_("Write a status file now"))
    def write_now(self, request, queryset):
        written = [job for cursor in queryset if (job := status_file_write(cursor=cursor))]
        self.message_user(request, _("%(count)s status file(s) written.") % {"count": len(written)},
                          messages.SUCCESS)


class AccountingExportForm(forms.Form):
    creditor = forms.ModelChoiceField(queryset=Creditor.objects.all(), label=_("creditor"))
    start = forms.DateField(label=_("from"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("to"), widget=forms.DateInput(attrs={"type": "date"}))
    format = forms.ChoiceField(label=_("format"), choices=[("fec", _("FEC (tab-separated)")),
                                                           ("journal", _("Journal lines (CSV)"))])

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", _("The end of the period is before its start."))
        return data


class ReportForm(forms.Form):
    creditor = forms.ModelChoiceField(queryset=Creditor.objects.all(), required=False, label=_("creditor"),
                                      empty_label=_("All creditors"))
    month = forms.CharField(label=_("month"), widget=forms.DateInput(attrs={"type": "month"}))

    def clean_month(self):
        try:
            return dt.datetime.strptime(self.cleaned_data["month"], "%Y-%m").date()
        except ValueError as exc:
            raise forms.ValidationError(_("Enter a month as YYYY-MM.")) from exc


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "creditor", "cursor", "rows", "from_event_id", "to_event_id", "period_start",
                    "period_end", "path", "created_at"]
    list_filter = ["kind", "creditor"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [
            path("accounting/", self.admin_site.admin_view(self.accounting_view),
                 name="connectors_accounting_export"),
            path("report/", self.admin_site.admin_view(self.report_view), name="connectors_monthly_report"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "title": _("Exports"),
                         "links": [(reverse("admin:connectors_accounting_export"), _("Accounting export")),
                                   (reverse("admin:connectors_monthly_report"), _("Monthly financial report"))]}
        return super().changelist_view(request, extra_context)

    change_list_template = "admin/connectors/exportjob/change_list.html"

    def accounting_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = AccountingExportForm(request.GET or None)
        if form.is_bound and form.is_valid():
            data = form.cleaned_data
            name, body, _lines = accounting.accounting_export_build(
                creditor=data["creditor"], start=data["start"], end=data["end"], format=data["format"])
            content_type = ("text/tab-separated-values; charset=iso-8859-15" if data["format"] == "fec"
                            else "text/csv; charset=utf-8")
            response = HttpResponse(body, content_type=content_type)
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        context = {**self.admin_site.each_context(request), "title": _("Accounting export"), "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/connectors/accounting_export.html", context)

    def report_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.localdate()
        form = ReportForm(request.GET or {"month": today.strftime("%Y-%m")})
        report = charts = None
        if form.is_valid():
            month = form.cleaned_data["month"]
            report = reports.monthly_report(year=month.year, month=month.month,
                                            creditor=form.cleaned_data.get("creditor"))
            download = request.GET.get("download")
            stem = f"report-{month:%Y-%m}"
            if download == "csv":
                response = HttpResponse(reports.report_csv(report), content_type="text/csv; charset=utf-8")
                response["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
                return response
            if download == "pdf":
                response = HttpResponse(reports.report_pdf(report), content_type="application/pdf")
                response["Content-Disposition"] = f'attachment; filename="{stem}.pdf"'
                return response
            charts = reports.report_charts(report)
        query = request.GET.copy()
        query.pop("download", None)
        context = {**self.admin_site.each_context(request), "title": _("Monthly financial report"), "form": form,
                   "report": report, "charts": charts, "opts": self.model._meta, "query": query.urlencode()}
        return TemplateResponse(request, "admin/connectors/monthly_report.html", context)


# django-import-export on the core's own admin pages: the classes registered by collections_app
# (with whatever other modules added to them) get the import/export buttons, without editing them.
for _model, _resource in ((Customer, CustomerResource), (Invoice, InvoiceResource), (Payment, PaymentResource)):
    _base = type(admin.site._registry[_model]) if _model in admin.site._registry else admin.ModelAdmin
    if _model in admin.site._registry:
        admin.site.unregister(_model)
    admin.site.register(_model, type(f"{_base.__name__}ImportExport", (ImportExportMixin, _base),
                                     {"resource_classes": [_resource], "__module__": _base.__module__}))
