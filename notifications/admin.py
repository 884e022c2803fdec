from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from notifications.models import Event, EventHandlerRun, EventSubject
from notifications.selectors import event_timeline


def render_timeline(kind: str, object_id: int | None) -> str:
    """HTML table of the events about one object, newest first (used by every admin timeline)."""
    if not object_id:
        return "-"
    events = list(event_timeline(kind=kind, object_id=object_id))
    if not events:
        return _("No events yet.")
    rows = format_html_join(
        "", "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
        ((e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"), e.type, _summary(e)) for e in events),
    )
    return format_html('<table class="encaisse-timeline"><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr>'
                       "</thead><tbody>{}</tbody></table>", _("When"), _("Event"), _("Details"), rows)


def _summary(event: Event) -> str:
    p = event.payload
    parts = []
    for key in ("status", "amount", "amount_paid", "amount_due", "method", "reason_code", "reason"):
        if p.get(key) not in (None, "", []):
            parts.append(f"{key}={p[key]}")
    if p.get("currency") and any(k in p for k in ("amount", "amount_due")):
        parts.append(p["currency"])
    return " · ".join(parts)


class EventSubjectInline(admin.TabularInline):
    model = EventSubject
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "object_id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "occurred_at", "creditor_id", "dispatched_at", "dispatch_attempts"]
    list_filter = ["type", ("dispatched_at", admin.EmptyFieldListFilter)]
    search_fields = ["type", "uuid"]
    date_hierarchy = "occurred_at"
    readonly_fields = ["uuid", "type", "occurred_at", "creditor_id", "payload", "dispatched_at",
                       "dispatch_attempts", "last_error"]
    inlines = [EventSubjectInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EventHandlerRun)
class EventHandlerRunAdmin(admin.ModelAdmin):
    list_display = ["event", "handler", "handled_at"]
    list_filter = ["handler"]
    readonly_fields = ["event", "handler", "handled_at"]

    def has_add_permission(self, request):
        return False


# --- notifications and webhooks (issue 7) -------------------------------------------------
import json  # noqa: E402

from django import forms  # noqa: E402
from django.contrib import messages  # noqa: E402
from django.core.exceptions import PermissionDenied, ValidationError  # noqa: E402
from django.shortcuts import get_object_or_404, redirect  # noqa: E402
from django.template.response import TemplateResponse  # noqa: E402
from django.urls import path, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from notifications import catalog, services  # noqa: E402
from notifications.models import (  # noqa: E402
    DeadLetter,
    Delivery,
    DeliveryAttempt,
    NotificationRule,
    NotificationTemplate,
    WebhookEndpoint,
)
from notifications.rules import event_envelope, rule_validate, sample_payload  # noqa: E402
from notifications.sms import sms_info  # noqa: E402
from notifications.templating import TemplateRefused, render_template, template_check  # noqa: E402

EVENT_TYPE_CHOICES = [(name, name) for name in catalog.CATALOG]


class NotificationTemplateForm(forms.ModelForm):
    class Meta:
        model = NotificationTemplate
        fields = ["key", "channel", "locale", "subject", "body_text", "body_html", "body_json"]

    def clean(self):
        data = super().clean()
        for name in ("subject", "body_text", "body_html", "body_json"):
            try:
                template_check(data.get(name) or "", html=name == "body_html")
            except TemplateRefused as exc:
                self.add_error(name, str(exc))
        return data


class PreviewForm(forms.Form):
    event = forms.ModelChoiceField(queryset=Event.objects.none(), required=False, label=_("Recent event"),
                                   help_text=_("Empty: a sample payload."))
    event_type = forms.ChoiceField(choices=EVENT_TYPE_CHOICES, required=False, label=_("Sample of event type"))
    recipient = forms.CharField(required=False, label=_("Send a test to"),
                                help_text=_("Email address or phone number (email and SMS templates)."))
    endpoint = forms.ModelChoiceField(queryset=WebhookEndpoint.objects.all(), required=False,
                                      label=_("Webhook endpoint"))
    outbox_name = forms.SlugField(required=False, label=_("ERP outbox folder"))

    def __init__(self, *args, event_types: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        qs = Event.objects.order_by("-id")
        if event_types:
            qs = qs.filter(type__in=event_types)
        self.fields["event"].queryset = Event.objects.filter(pk__in=list(qs.values_list("pk", flat=True)[:50]))


@admin.register(NotificationTemplate)
class NotificationTemplateAdmin(admin.ModelAdmin):
    form = NotificationTemplateForm
    list_display = ["key", "channel", "locale", "subject", "sms_length", "updated_at"]
    list_filter = ["channel", "locale"]
    search_fields = ["key", "subject", "body_text"]
    readonly_fields = ["sms_length", "preview_link"]
    fieldsets = [(None, {"fields": ["key", "channel", "locale", "preview_link"]}),
                 (_("Email"), {"fields": ["subject", "body_text", "body_html"],
                               "description": _("The text body is also the SMS text. Available: payload.<field> "
                                                "(docs/events.md), event.type/id/occurred_at, recipient.name; "
                                                "filters money, as_date, json.")}),
                 (_("SMS"), {"fields": ["sms_length"]}),
                 (_("Webhook / JSON file"), {"fields": ["body_json"]})]

    @admin.display(description=_("SMS length (sample)"))
    def sms_length(self, obj):
        if not obj or not obj.pk or obj.channel != "sms":
            return "-"
        try:
            text = render_template(obj, event={"type": "sample"}, payload=sample_payload(""), recipient={},
                                   locale=obj.locale).body_text
        except Exception as exc:  # shown, not raised: the template may be half-written
            return str(exc)
        info = sms_info(text)
        return _("%(chars)s characters, %(enc)s, %(seg)s segment(s)") % {"chars": info.characters,
                                                                          "enc": info.encoding,
                                                                          "seg": info.segments}

    @admin.display(description=_("Preview and test send"))
    def preview_link(self, obj):
        if not obj or not obj.pk:
            return _("Save first.")
        return format_html('<a class="button" href="{}">{}</a>',
                           reverse("admin:notifications_notificationtemplate_preview", args=[obj.pk]),
                           _("Preview / test send"))

    def get_urls(self):
        return [path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view),
                     name="notifications_notificationtemplate_preview")] + super().get_urls()

    def preview_view(self, request, pk: int):
        template = get_object_or_404(NotificationTemplate, pk=pk)
        if not self.has_view_permission(request, template):
            raise PermissionDenied
        event_types = list(template.rules.values_list("event_type", flat=True).distinct())
        form = PreviewForm(request.POST or request.GET or None, event_types=event_types,
                           initial={"event_type": event_types[0] if event_types else None})
        event, payload, event_data, rendered, error, info, sent = None, None, None, None, "", None, None
        if form.is_bound and form.is_valid():
            event = form.cleaned_data["event"]
        event_type = (form.cleaned_data.get("event_type") if form.is_bound and form.is_valid() else None) \
            or (event_types[0] if event_types else next(iter(catalog.CATALOG)))
        if event is None:
            event = Event.objects.filter(type__in=event_types).order_by("-id").first() if event_types else None
        if event is not None:
            event_data, payload = event_envelope(event), event.payload
        else:
            payload = sample_payload(event_type)
            event_data = {"id": 0, "type": event_type, "occurred_at": timezone.now().isoformat()}
        try:
            rendered = render_template(template, event=event_data, payload=payload,
                                       recipient={"name": "Test", "locale": template.locale},
                                       locale=template.locale)
            if template.channel == "sms":
                info = sms_info(rendered.body_text)
        except Exception as exc:
            error = str(exc)
        if request.method == "POST" and form.is_valid():
            if not self.has_change_permission(request, template):
                raise PermissionDenied
            try:
                sent = services.template_test_send(
                    template=template, recipient=form.cleaned_data["recipient"], event=event,
                    event_type=event_type, endpoint=form.cleaned_data["endpoint"],
                    outbox_name=form.cleaned_data["outbox_name"])
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                level = messages.SUCCESS if sent.status == Delivery.Status.SENT else messages.WARNING
                messages.add_message(request, level, _("Test delivery #%(id)s: %(status)s %(error)s") % {
                    "id": sent.pk, "status": sent.get_status_display(), "error": sent.last_error})
        pretty_json = ""
        if rendered and rendered.body_json:
            pretty_json = json.dumps(json.loads(rendered.body_json), indent=2, ensure_ascii=False)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": template,
                   "title": _("Preview of %(t)s") % {"t": template}, "form": form, "event": event,
                   "rendered": rendered, "error": error, "sms": info, "pretty_json": pretty_json,
                   "sent": sent, "payload_json": json.dumps(payload, indent=2, ensure_ascii=False)}
        return TemplateResponse(request, "admin/notifications/template_preview.html", context)


class NotificationRuleForm(forms.ModelForm):
    event_type = forms.ChoiceField(choices=EVENT_TYPE_CHOICES, label=_("event type"))

    class Meta:
        model = NotificationRule
        fields = ["name", "is_active", "event_type", "creditor_id", "match", "conditions", "channel", "template",
                  "recipient", "addresses", "staff_group", "webhook_endpoint", "outbox_name"]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            data["conditions"] = rule_validate(
                event_type=data.get("event_type", ""), channel=data.get("channel", ""),
                template=data.get("template"), recipient=data.get("recipient", ""),
                conditions=data.get("conditions"), addresses=data.get("addresses", ""),
                staff_group=data.get("staff_group"), webhook_endpoint=data.get("webhook_endpoint"),
                outbox_name=data.get("outbox_name", ""))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, errors)
        return data


@admin.register(NotificationRule)
class NotificationRuleAdmin(admin.ModelAdmin):
    form = NotificationRuleForm
    list_display = ["name", "event_type", "channel", "recipient", "template", "is_active", "creditor_id"]
    list_filter = ["is_active", "channel", "recipient", "event_type"]
    search_fields = ["name", "event_type", "addresses", "outbox_name"]
    autocomplete_fields = ["template"]
    actions = ["activate", "deactivate"]

    @admin.action(description=_("Activate the selected rules"), permissions=["change"])
    def activate(self, request, queryset):
        queryset.update(is_active=True)

    @admin.action(description=_("Deactivate the selected rules"), permissions=["change"])
    def deactivate(self, request, queryset):
        queryset.update(is_active=False)


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label=_("URL"), max_length=500, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "description", "creditor_id", "disable_after_failures"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        services.endpoint_url_validate(url)
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["name", "url", "status", "consecutive_failures", "disabled_reason", "creditor_id"]
    list_filter = ["status"]
    search_fields = ["name", "url"]
    readonly_fields = ["status", "disabled_reason", "disabled_at", "consecutive_failures", "secret_hint",
                       "previous_secret_expires_at", "created_at", "updated_at"]
    actions = ["rotate_secret", "enable", "disable", "ping"]

    @admin.display(description=_("signing secret"))
    def secret_hint(self, obj):
        return f"{obj.secret[:10]}…" if obj and obj.secret else "-"

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in WebhookEndpointForm.Meta.fields if k in form.cleaned_data}
        if change:
            services.endpoint_update(endpoint=obj, **fields)
            return
        created = services.endpoint_create(**fields)
        obj.pk, obj.secret = created.pk, created.secret
        obj.refresh_from_db()
        messages.warning(request, _("Signing secret of %(name)s, shown only now: %(secret)s") % {
            "name": created.name, "secret": created.secret})

    @admin.action(description=_("Rotate the signing secret (the old one stays valid 24 h)"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            endpoint = services.endpoint_rotate_secret(endpoint=endpoint)
            messages.warning(request, _("New signing secret of %(name)s, shown only now: %(secret)s") % {
                "name": endpoint.name, "secret": endpoint.secret})

    @admin.action(description=_("Enable"), permissions=["change"])
    def enable(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_enable(endpoint=endpoint)

    @admin.action(description=_("Disable"), permissions=["change"])
    def disable(self, request, queryset):
        for endpoint in queryset:
            services.endpoint_disable(endpoint=endpoint, reason=f"disabled by {request.user}")

    @admin.action(description=_("Send a test ping"), permissions=["change"])
    def ping(self, request, queryset):
        for endpoint in queryset:
            d = services.endpoint_ping(endpoint=endpoint)
            level = messages.SUCCESS if d.status == Delivery.Status.SENT else messages.ERROR
            messages.add_message(request, level, f"{endpoint.name}: {d.get_status_display()} "
                                                 f"{d.last_status_code or ''} {d.last_error}")


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ["number", "started_at", "outcome", "status_code", "latency_ms", "response_excerpt", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "channel", "recipient", "status", "attempts", "last_status_code",
                    "last_latency_ms", "rule", "event", "next_attempt_at"]
    list_filter = ["status", "channel", "is_test", ("rule", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["recipient", "=uuid", "=event__id", "subject"]
    date_hierarchy = "created_at"
    list_select_related = ["rule", "event"]
    inlines = [DeliveryAttemptInline]
    actions = ["replay"]
    exclude = ["attempt_id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "attempt_id"]

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Replay (send again, same content and webhook-id)"), permissions=["change"])
    def replay(self, request, queryset):
        done = 0
        for delivery in queryset:
            try:
                services.delivery_replay(delivery=delivery)
                done += 1
            except ValidationError as exc:
                messages.error(request, f"#{delivery.pk}: {'; '.join(exc.messages)}")
        if done:
            messages.success(request, _("%(n)s deliveries will be sent again within a minute.") % {"n": done})


@admin.register(DeadLetter)
class DeadLetterAdmin(DeliveryAdmin):
    list_display = ["id", "dead_at", "channel", "recipient", "attempts", "last_status_code", "last_error", "rule",
                    "event"]
    list_filter = ["channel", ("rule", admin.RelatedOnlyFieldListFilter)]
    date_hierarchy = "dead_at"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Delivery.Status.DEAD, is_test=False)
