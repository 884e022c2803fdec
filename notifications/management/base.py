"""Base for every management command of the platform: a human summary, and with --json one
JSON object on the last line; a non-zero exit on failure. It lives in the bottom layer so
that every app may use it."""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder


class JsonCommand(BaseCommand):
    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
        self.add_command_arguments(parser)

    def add_command_arguments(self, parser) -> None:  # override
        pass

    def run(self, **options: Any) -> tuple[str, dict[str, Any]]:  # override: (summary, data)
        raise NotImplementedError

    def progress_enabled(self, options: dict[str, Any]) -> bool:
        return not options.get("json") and sys.stderr.isatty()

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options.get("json")
        try:
            summary, data = self.run(**options)
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            if as_json:
                self.stdout.write(json.dumps({"ok": False, "error": message, "type": type(exc).__name__}))
            if isinstance(exc, CommandError):
                raise
            raise CommandError(message) from exc
        if summary:
            self.stdout.write(summary)
        if as_json:
            self.stdout.write(json.dumps({"ok": True, **data}, cls=DjangoJSONEncoder))
