"""Jobs of reconciliation (django-q2). Declared once in config/schedules.py."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from django.conf import settings

from collections_app.errors import DomainError
from reconciliation.imports import statement_import
from reconciliation.models import BankStatement
from reconciliation.parsers import StatementParseError

logger = logging.getLogger(__name__)


def drop_folder() -> Path:
    return Path(getattr(settings, "STATEMENT_DROP_DIR", settings.DROP_DIR / "statements"))


def import_drop_folder() -> dict[str, int]:
    """Import every file dropped in the statements folder. A file is claimed by renaming it
    into processing/ (atomic: two workers never take the same file), then moved to done/ or
    to failed/ with the reason next to it."""
    root = drop_folder()
    for sub in ("processing", "done", "failed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    counts = {"imported": 0, "failed": 0}
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        claimed = root / "processing" / path.name
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            continue  # another worker took it
        try:
            statement_import(source=claimed, filename=path.name, origin=BankStatement.Source.DROP_FOLDER)
        except (StatementParseError, DomainError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            os.replace(claimed, root / "failed" / path.name)
            (root / "failed" / f"{path.name}.error.txt").write_text(message + "\n", encoding="utf-8")
            logger.warning("statement %s refused: %s", path.name, message)
            counts["failed"] += 1
            continue
        os.replace(claimed, root / "done" / path.name)
        counts["imported"] += 1
    return counts
