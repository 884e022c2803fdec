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
