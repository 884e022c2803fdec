"""Candidate references found in remittance information, tolerant to spaces, case and the
usual typing mistakes (O for 0, I or L for 1), and ISO 11649 RF creditor references."""
from __future__ import annotations

import re

from stdnum import iban, iso11649, numdb

from collections_app.models import SHORT_REFERENCE_ALPHABET, SHORT_REFERENCE_LENGTH

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

# What only looks like a reference once its separators are gone, written as a word of its own:
# a date ("2026-04-15" is not invoice 2026-0415), an amount ("12 345,00 EUR" is not invoice
# 12345) and an IBAN, whose groups of four would otherwise be joined into numbers.
_BOUNDED = r"(?<![A-Za-z0-9.,-])(?:{})(?![A-Za-z0-9]|[-/.,][A-Za-z0-9])"
DATE_RE = re.compile(_BOUNDED.format(
    r"(?:19|20)\d\d([-/.])(?:0[1-9]|1[0-2])\1(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0[1-9]|[12]\d|3[01])([-/.])(?:0[1-9]|1[0-2])\2(?:(?:19|20)\d\d|\d\d)"))
AMOUNT_RE = re.compile(_BOUNDED.format(
    r"\d{1,3}(?:[.'\u00a0\u202f]\d{3})+[.,]\d\d"
    r"|\d{1,3}(?: \d{3})+[.,]\d\d(?=\s?(?:EUR|€))"
    r"|\d+[.,]\d\d"), re.IGNORECASE)
IBAN_LENGTHS = {country: 4 + sum(int(n) for n in re.findall(r"(\d+)!", properties.get("bban", "")))
                for _size, country, _same, properties, _children in numdb.get("iban").prefixes}
IBAN_RE = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d\d(?: ?[A-Z0-9]){11,30}", re.IGNORECASE)
# A reference glued to the words around it ("REGLEMENTFA202600123DUPONT"): runs of letters
# and of digits; an invoice prefix is rarely longer than GLUED_PREFIX letters.
RUN_RE = re.compile(r"[A-Z]+|[0-9]+")
GLUED_PREFIX = 6
GLUED_RUNS = 4
# Payment requests' short references glued to a label ("REFS5KZ6FRQ") are windows of a word.
SHORT_ALPHABET = frozenset(SHORT_REFERENCE_ALPHABET)
SHORT_GLUED_MAX = 24
_TYPOS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_TYPO_LETTERS = frozenset("OIL")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


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


def _without_ibans(text: str) -> str:
    def replace(match: re.Match) -> str:
        value = match.group(0)
        length = IBAN_LENGTHS.get(value[:2].upper())
        if length is None:
            return value
        # The regex is greedy: take the country's length (without spaces), keep what follows.
        end, count = 0, 0
        while end < len(value) and count < length:
            count += value[end] != " "
            end += 1
        if count == length and iban.is_valid(value[:end]):
            return " " + value[end:]
        return value
    return IBAN_RE.sub(replace, text)


def _digit_fix(token: str) -> set[str]:
    """O→0, I/L→1 inside mostly numeric tokens (references are read from paper and typed),
    also after a letter prefix ("FACOOO123" for FAC000123, "INV000L234" for INV0001234)."""
    fixed = {token}
    if _TYPO_LETTERS.isdisjoint(token) or token.isalpha():
        return fixed
    digits = sum(c.isdigit() for c in token)
    if digits * 2 >= len(token):
        fixed.add(token.translate(_TYPOS))
    prefix = len(token) - len(token.lstrip(_LETTERS))
    start = prefix  # the O, I and L just before the number may belong to it
    while start > 1 and token[start - 1] in _TYPO_LETTERS:
        start -= 1
    for keep in range(start, prefix + 1):
        rest = token[keep:]
        if sum(c.isdigit() for c in rest) * 2 >= len(rest):
            fixed.add(token[:keep] + rest.translate(_TYPOS))
    return fixed


def _unglued(word: str) -> tuple[set[str], set[str]]:
    """The parts of a word that a reference may be glued into. Those starting with letters
    (the end of a letter run: "FA202600123" in "REGLEMENTFA202600123DUPONT") are looked up
    like any word; those starting with digits ("12345" in "FACT12345", but also in a customer
    number "C12345") only count when the amount is exactly the invoice's."""
    strong: set[str] = set()
    weak: set[str] = set()
    runs = RUN_RE.findall(word)
    if len(runs) < 2:
        return strong, weak
    for i, first in enumerate(runs):
        for j in range(i, min(i + GLUED_RUNS, len(runs))):
            part = runs[i + 1:j + 1]
            if not first[0].isdigit() and not part:
                continue
            tail = "".join(part)
            if first[0].isdigit():
                weak.add(first + tail)
            else:
                strong.update(first[-size:] + tail for size in range(1, min(len(first), GLUED_PREFIX) + 1))
    return strong, weak


def zero_insensitive(value: str) -> str:
    """Upper case, without separators nor leading zeros in its numbers: FA-2026-00123 and
    FA 2026 123 are both FA2026123."""
    groups = []
    for group in SEPARATORS_RE.split(value.upper()):
        for run in RUN_RE.findall(group):
            groups.append((run.lstrip("0") or "0") if run[0].isdigit() else run)
    return "".join(groups)


def _short_windows(word: str) -> set[str]:
    """Short references glued to a label ("REFS5KZ6FRQ"), looked up as short references only."""
    if not SHORT_REFERENCE_LENGTH < len(word) <= SHORT_GLUED_MAX:
        return set()
    windows = (word[i:i + SHORT_REFERENCE_LENGTH] for i in range(len(word) - SHORT_REFERENCE_LENGTH + 1))
    return {w for w in windows if SHORT_ALPHABET.issuperset(w) and not w.isalpha() and not w.isdigit()}


def _scan(texts: tuple[str, ...], *, loose: bool) -> tuple[set[str], set[str], set[str]]:
    original = " ".join(t for t in texts if t)
    if not original:
        return set(), set(), set()
    text = AMOUNT_RE.sub(" ", DATE_RE.sub(" ", _without_ibans(original)))
    found: set[str] = set()
    weak: set[str] = set()
    short: set[str] = set()
    patterns = (TOKEN_RE, FIELD_TOKEN_RE) if ("/" in text or "." in text) else (TOKEN_RE,)
    for pattern in patterns:
        tokens = pattern.findall(text)
        words = [SEPARATORS_RE.sub("", t.upper()) for t in tokens]
        # References split by spaces ("INV 2024 0012", "ABCD EFGH"): join neighbours too.
        for size in (1, 2, 3):
            for i in range(len(words) - size + 1):
                joined = "".join(words[i:i + size])
                found.update(_digit_fix(joined))
                if loose:
                    weak.add(zero_insensitive("-".join(tokens[i:i + size])))
                if size == 1 and not joined.isalpha() and not joined.isdigit():
                    glued, digit_led = _unglued(joined)
                    found.update(glued)
                    weak.update(digit_led)
                    short.update(_short_windows(joined))
    for ref in rf_references(original):
        found.update(_digit_fix(ref))
    found = {c for c in found if MIN_LENGTH <= len(c) <= MAX_LENGTH}
    if loose:
        weak.update(zero_insensitive(c) for c in found)
    return found, {c for c in weak if MIN_LENGTH <= len(c) <= MAX_LENGTH}, short - found


def candidate_sets(*texts: str) -> tuple[set[str], set[str]]:
    """(every canonical string - upper case, no separators - that may be one of our references;
    payment-request short references glued to other words, "REFS5KZ6FRQ")."""
    found, _weak, short = _scan(texts, loose=False)
    return found, short


def candidates(*texts: str) -> set[str]:
    """Every canonical string (upper case, no separators) that may be one of our references."""
    return _scan(texts, loose=False)[0]


def loose_candidates(*texts: str) -> set[str]:
    """Looser forms, to be trusted only when the amount is exactly an invoice's: zero-insensitive
    ones (compare with zero_insensitive: "FA 2026 123" for FA-2026-00123) and canonical numbers
    glued after letters (compare with canonical: "FACT20260457" for 2026-0457, but "C12345" may
    be a customer number)."""
    return _scan(texts, loose=True)[1]


def canonical(value: str) -> str:
    return SEPARATORS_RE.sub("", value.upper())
