from collections_app.api.auth import api_key_create
from collections_app.models import Creditor
from notifications.management.base import JsonCommand


class Command(JsonCommand):
    help = "Create an API key. The key is printed once and never stored in clear."

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--creditor", type=int, help="restrict the key to this creditor id")

    def run(self, **options):
        creditor = Creditor.objects.get(pk=options["creditor"]) if options.get("creditor") else None
        api_key, raw = api_key_create(name=options["name"], creditor=creditor)
        summary = (f"API key {api_key.name!r} created (prefix {api_key.prefix}).\n"
                   f"Key (shown once, keep it safe): {raw}\n"
                   f"Use it as: Authorization: Api-Key {raw}")
        return summary, {"id": api_key.pk, "name": api_key.name, "prefix": api_key.prefix, "key": raw}
