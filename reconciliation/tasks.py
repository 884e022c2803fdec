"""Jobs of reconciliation (django-q2). Declared once in config/schedules.py."""
from __future__ import annotations

from reconciliation.imports import statements_import_drop_folder


def import_drop_folder() -> dict[str, int]:
    """Every 5 minutes: the files dropped in the statements folder."""
    return statements_import_drop_folder()


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
