from config.schedules import setup_schedules
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Create or update every django-q2 schedule of the platform (idempotent)."

    def run(self, **options):
        result = setup_schedules()
        summary = "\n".join(f"{key}: {', '.join(names) or '-'}" for key, names in result.items())
        return summary, result
