"""Back-office of reconciliation: statements (upload), bank accounts, matching rules and the
review queue (ranked suggestions, one-click match, split across invoices, unmatch)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from collections_app.admin import run_service_action
from collections_app.errors import DomainError
from collections_app.models import Customer, Invoice
from notifications.admin import render_timeline
from reconciliation.imports import inline_match_max, statement_import
from reconciliation.models import BankAccount, BankStatement, BankTransaction, Match, MatchingRule, Suggestion
from reconciliation.parsers import StatementParseError
from reconciliation.services import (
    bank_account_review,
    suggestion_accept,
    transaction_ignore,
    transaction_match_manual,
    transaction_unmatch,
)


class StatementUploadForm(forms.Form):
    file = forms.FileField(label=_("Statement file"),
                           help_text=_("camt.052, camt.053, camt.054, MT940, MT942 or CFONB 120, or a ZIP or "
                                       "gzip of them: the format is detected."))


@admin.register(BankAccount)
class BankAccountAdmin(admin.ModelAdmin):
    list_display = ["__str__", "iban", "creditor", "currency", "write_off_tolerance", "overpayment", "needs_review",
                    "is_active"]
    list_filter = ["needs_review", "is_active", "creditor", "overpayment"]
    search_fields = ["name", "iban", "account_id"]
    readonly_fields = ["needs_review"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and obj.needs_review and obj.creditor_id:
            # Choosing the creditor of an account created by an import is its review.
            bank_account_review(account=obj, creditor=obj.creditor)


@admin.register(MatchingRule)
class MatchingRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "position", "is_active", "matched_count"]
    list_editable = ["position", "is_active"]
    readonly_fields = ["matched_count"]

    def has_add_permission(self, request):
        return False  # the four kinds exist once; they are ordered and switched on or off here

    def changelist_view(self, request, extra_context=None):
        from reconciliation.matching import matching_rules_ensure

        matching_rules_ensure()
        return super().changelist_view(request, extra_context)


class TransactionInline(admin.TabularInline):
    model = BankTransaction
    extra = 0
    fields = ["booking_date", "direction", "amount", "currency", "counterparty_name", "remittance_info", "status"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(BankStatement)
class BankStatementAdmin(admin.ModelAdmin):
    list_display = ["__str__", "format", "bank_account", "filename", "transaction_count", "duplicate_count",
                    "has_warnings", "source", "imported_at"]
    list_filter = ["format", "source", "bank_account", "imported_at"]
    search_fields = ["filename", "statement_id", "bank_account__iban", "file_sha256"]
    readonly_fields = [f.name for f in BankStatement._meta.fields]
    inlines = [TransactionInline]
    change_list_template = "admin/reconciliation/statement_change_list.html"

    @admin.display(boolean=True, description=_("warnings"))
    def has_warnings(self, obj):
        return bool(obj.warnings)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="reconciliation_upload")] + \
            super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "upload_url": reverse("admin:reconciliation_upload")}
        return super().changelist_view(request, extra_context)

    def upload_view(self, request):
        if not request.user.has_perm("reconciliation.add_bankstatement") and not request.user.is_superuser:
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                result = statement_import(source=upload, filename=upload.name, user=request.user,
                                          inline_match_max=inline_match_max())
            except (StatementParseError, DomainError) as exc:
                form.add_error("file", getattr(exc, "message", str(exc)))
            else:
                if result.already_imported:
                    self.message_user(request, _("This file was already imported: nothing new."), messages.WARNING)
                elif "queued" in result.matching:
                    self.message_user(request, _("%(created)d transaction(s) imported (%(duplicates)d duplicate(s) "
                                                 "skipped); they are being matched in the background: the review "
                                                 "queue fills in as it goes.")
                                      % {"created": result.created, "duplicates": result.duplicates},
                                      messages.SUCCESS)
                else:
                    self.message_user(request, _("%(created)d transaction(s) imported (%(duplicates)d duplicate(s) "
                                                 "skipped); matched %(matched)d, to review %(unmatched)d.")
                                      % {"created": result.created, "duplicates": result.duplicates,
                                         "matched": result.matching.get("matched", 0),
                                         "unmatched": result.matching.get("unmatched", 0)}, messages.SUCCESS)
                for warning in result.warnings:
                    self.message_user(request, warning, messages.WARNING)
                return HttpResponseRedirect(reverse("admin:reconciliation_banktransaction_changelist")
                                            + "?status__exact=unmatched")
        context = {**self.admin_site.each_context(request), "form": form, "title": _("Import a bank statement"),
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/reconciliation/upload.html", context)


class SuggestionInline(admin.TabularInline):
    model = Suggestion
    extra = 0
    fields = ["score", "invoice", "customer", "reason", "accept"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = _("suggestions (best first)")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=_("match"))
    def accept(self, obj):
        if obj.transaction.status != BankTransaction.Status.UNMATCHED:
            return "-"
        url = reverse("admin:reconciliation_accept_suggestion", args=[obj.pk])
        # A submit button of the change form itself (which carries the CSRF token), posted elsewhere.
        return format_html('<button type="submit" class="button" formaction="{}">{}</button>', url, _("Match"))


class MatchInline(admin.TabularInline):
    model = Match
    fk_name = "transaction"
    extra = 0
    fields = ["customer", "payment", "excess_payment", "amount", "written_off", "rule", "status", "created_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class SplitForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.all(), label=_("Customer"))
    lines = forms.CharField(
        label=_("Split"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One invoice per line: invoice number and amount (e.g. INV-001 120.00). "
                    "What is left goes to the customer's credit balance."))

    def clean(self):
        data = super().clean()
        customer = data.get("customer")
        parsed = []
        for number, line in enumerate((data.get("lines") or "").splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise forms.ValidationError(_("Line %(n)d: give an invoice number and an amount.") % {"n": number})
            invoice = Invoice.objects.filter(customer=customer, external_ref=parts[0]).first()
            if invoice is None:
                raise forms.ValidationError(_("Line %(n)d: no invoice %(ref)s for this customer.")
                                            % {"n": number, "ref": parts[0]})
            try:
                amount = Decimal(parts[1].replace(",", "."))
            except InvalidOperation:
                raise forms.ValidationError(_("Line %(n)d: invalid amount.") % {"n": number}) from None
            parsed.append((invoice, amount))
        data["parsed_lines"] = parsed
        return data


@admin.register(BankTransaction)
class BankTransactionAdmin(admin.ModelAdmin):
    list_display = ["booking_date", "signed_amount", "currency", "counterparty_name", "remittance_info",
                    "status", "best_suggestion", "bank_account"]
    list_filter = ["status", "direction", "is_reversal", "bank_account", "matched_rule", "booking_date"]
    search_fields = ["counterparty_name", "counterparty_iban", "remittance_info", "end_to_end_id", "bank_reference",
                     "credited_iban", "structured_reference"]
    date_hierarchy = "booking_date"
    readonly_fields = [f.name for f in BankTransaction._meta.fields if f.name != "id"] + ["timeline"]
    inlines = [SuggestionInline, MatchInline]
    actions = ["ignore", "unmatch", "rematch"]
    change_form_template = "admin/reconciliation/transaction_change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("amount"), ordering="amount")
    def signed_amount(self, obj):
        return f"{'-' if obj.direction == BankTransaction.Direction.DEBIT else '+'}{obj.amount}"

    @admin.display(description=_("best suggestion"))
    def best_suggestion(self, obj):
        best = obj.suggestions.select_related("invoice").first()
        return f"{best.invoice} ({best.score}%)" if best else "-"

    @admin.display(description=_("Timeline"))
    def timeline(self, obj):
        return render_timeline("bank_transaction", obj.pk if obj else None)

    def get_urls(self):
        return [
            path("suggestion/<int:pk>/accept/", self.admin_site.admin_view(self.accept_view),
                 name="reconciliation_accept_suggestion"),
            path("<int:pk>/split/", self.admin_site.admin_view(self.split_view), name="reconciliation_split"),
        ] + super().get_urls()

    def _back(self, tx_id):
        return HttpResponseRedirect(reverse("admin:reconciliation_banktransaction_change", args=[tx_id]))

    def accept_view(self, request, pk):
        suggestion = get_object_or_404(Suggestion, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, suggestion.transaction):
            return self._back(suggestion.transaction_id)
        try:
            suggestion_accept(suggestion=suggestion, user=request.user)
            self.message_user(request, _("Matched to %(invoice)s.") % {"invoice": suggestion.invoice},
                              messages.SUCCESS)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return self._back(suggestion.transaction_id)

    def split_view(self, request, pk):
        tx = get_object_or_404(BankTransaction, pk=pk)
        form = SplitForm(request.POST or None)
        if request.method == "POST" and self.has_change_permission(request, tx) and form.is_valid():
            try:
                transaction_match_manual(transaction_=tx, customer=form.cleaned_data["customer"],
                                         lines=form.cleaned_data["parsed_lines"], user=request.user)
            except DomainError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(request, _("Transaction matched."), messages.SUCCESS)
                return self._back(tx.pk)
        context = {**self.admin_site.each_context(request), "form": form, "original": tx, "opts": self.model._meta,
                   "title": _("Match and split %(tx)s") % {"tx": tx}}
        return TemplateResponse(request, "admin/reconciliation/split.html", context)

    @admin.action(description=_("Ignore (not about collections)"), permissions=["change"])
    def ignore(self, request, queryset):
        run_service_action(self, request, queryset, lambda t: transaction_ignore(transaction_=t, user=request.user),
                           _("%(count)d transaction(s) ignored."))

    @admin.action(description=_("Unmatch (reverse the allocation)"), permissions=["change"])
    def unmatch(self, request, queryset):
        run_service_action(self, request, queryset,
                           lambda t: transaction_unmatch(transaction_=t, user=request.user),
                           _("%(count)d transaction(s) unmatched."))

    @admin.action(description=_("Run the matching rules again"), permissions=["change"])
    def rematch(self, request, queryset):
        from reconciliation.matching import transactions_match

        counts = transactions_match(transaction_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, _("Matched %(matched)d, still to review %(unmatched)d.")
                          % {"matched": counts.get("matched", 0), "unmatched": counts.get("unmatched", 0)})


