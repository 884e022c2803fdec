"""Candidate references found in remittance information, tolerant to spaces, case and the
usual typing mistakes (O for 0, I or L for 1), and ISO 11649 RF creditor references."""
from __future__ import annotations

import re

from stdnum import iso11649

TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:[-/_.][A-Za-z0-9]+)*")
# "/" and "." also separate fields ("FACT/INV-2024-0012", "/INV/INV-2024-0012/ROC/", "REF.FA2024.0012"):
# the text is also read with them as separators.
FIELD_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
RF_RE = re.compile(r"RF\s?\d{2}(?:\s?[0-9A-Z]){1,21}", re.IGNORECASE)
SEPARATORS_RE = re.compile(r"[-/_. ]")
# The same normalisation in SQL (PostgreSQL and SQLite), indexed by migration 0002.
CANONICAL_SQL_CHARS = ("-", "/", "_", ".", " ")
MIN_LENGTH = 4
MAX_LENGTH = 64


def rf_references(text: str) -> list[str]:
    """The creditor references of valid RF references (RF18 5390 0754 7034 -> 539007547034)."""
    found = []
    for match in RF_RE.finditer(text.upper()):
        compact = match.group(0).replace(" ", "")
        # The regex is greedy over spaces: shorten until the check digits agree.
        for end in range(len(compact), 4, -1):
            if iso11649.is_valid(compact[:end]):
                found.append(compact[4:end])
                break
    return found


def _digit_fix(token: str) -> str:
    """O→0, I/L→1 inside mostly numeric tokens (references are read from paper and typed)."""
    digits = sum(c.isdigit() for c in token)
    if digits * 2 < len(token):
        return token
    return token.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def candidates(*texts: str) -> set[str]:
    """Every canonical string (upper case, no separators) that may be one of our references."""
    text = " ".join(t for t in texts if t)
    if not text:
        return set()
    found: set[str] = set()
    patterns = (TOKEN_RE, FIELD_TOKEN_RE) if ("/" in text or "." in text) else (TOKEN_RE,)
    for pattern in patterns:
        words = [SEPARATORS_RE.sub("", t.upper()) for t in pattern.findall(text)]
        # References split by spaces ("INV 2024 0012", "ABCD EFGH"): join neighbours too.
        for size in (1, 2, 3):
            for i in range(len(words) - size + 1):
                joined = "".join(words[i:i + size])
                found.update((joined, _digit_fix(joined)))
    for ref in rf_references(text):
        found.update((ref, _digit_fix(ref)))
    return {c for c in found if MIN_LENGTH <= len(c) <= MAX_LENGTH}


def canonical(value: str) -> str:
    return SEPARATORS_RE.sub("", value.upper())
