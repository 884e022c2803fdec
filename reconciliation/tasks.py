"""Jobs of reconciliation (django-q2). Declared once in config/schedules.py."""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import IO

from django.conf import settings

from collections_app.dropfolders import abandoned, lock_claimed
from collections_app.errors import DomainError
from reconciliation.imports import statement_import
from reconciliation.models import BankStatement
from reconciliation.parsers import StatementParseError

logger = logging.getLogger(__name__)


def drop_folder() -> Path:
    return Path(getattr(settings, "STATEMENT_DROP_DIR", settings.DROP_DIR / "statements"))


def _claim(path: Path, processing: Path) -> tuple[Path, IO[bytes]] | None:
    claimed = processing / path.name
    if claimed.exists():  # a namesake is still being worked on
        claimed = processing / f"{path.name}.{secrets.token_hex(4)}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None  # another worker took it
    handle = lock_claimed(claimed)
    return (claimed, handle) if handle else None


def import_drop_folder() -> dict[str, int]:
    """Import every file dropped in the statements folder. A file is claimed by renaming it
    into processing/ (atomic: two workers never take the same file) and locked while it is
    imported, then moved to done/ or to failed/ with the reason next to it. Files that a dead
    worker left in processing/ are imported first (importing a file twice creates nothing)."""
    root = drop_folder()
    processing = root / "processing"
    for sub in ("processing", "done", "failed"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    counts = {"imported": 0, "failed": 0}
    work: list[tuple[Path, IO[bytes], str]] = []
    for leftover, handle in abandoned(processing):
        logger.warning("statement %s was left half imported by a dead worker: importing it again", leftover.name)
        work.append((leftover, handle, _original_name(leftover)))
    for path in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        taken = _claim(path, processing)
        if taken is not None:
            work.append((*taken, path.name))
    for claimed, handle, name in work:
        with handle:
            try:
                statement_import(source=claimed, filename=name, origin=BankStatement.Source.DROP_FOLDER)
            except (StatementParseError, DomainError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                os.replace(claimed, root / "failed" / name)
                (root / "failed" / f"{name}.error.txt").write_text(message + "\n", encoding="utf-8")
                logger.warning("statement %s refused: %s", name, message)
                counts["failed"] += 1
                continue
            os.replace(claimed, root / "done" / name)
            counts["imported"] += 1
    return counts


def _original_name(claimed: Path) -> str:
    """processing/<name> or processing/<name>.<8 hex> (a namesake was in processing/)."""
    stem, _dot, suffix = claimed.name.rpartition(".")
    if stem and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix):
        return stem
    return claimed.name


def match_new_transactions() -> dict[str, int]:
    """Every 5 minutes: transactions stored but never matched (the import's worker died between
    storing and matching) are matched now. Chunks are claimed with SKIP LOCKED, so a matching
    still running elsewhere is not disturbed."""
    from reconciliation.matching import transactions_match

    return transactions_match(only_new=True)


def match_statements(statement_ids: list[int]) -> dict[str, int]:
    """The matching of a big upload, after the request that stored it has answered."""
    from reconciliation.matching import transactions_match

    return transactions_match(statement_ids=statement_ids, only_new=True)
