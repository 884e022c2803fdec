from django.conf import settings

from notifications.catalog import render_markdown
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Write docs/events.md from the event catalog."

    def run(self, **options):
        path = settings.BASE_DIR / "docs" / "events.md"
        path.write_text(render_markdown(), encoding="utf-8")
        return f"Wrote {path}", {"path": str(path)}
