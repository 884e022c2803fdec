"""Rule conditions on an event payload: {"field": "amount", "op": ">=", "value": "1000"}.

- field: a payload key, dotted for nested values ("allocations.0.invoice_id");
- op: = != < <= > >= in contains (also eq ne lt le gt ge);
- numbers compare as Decimals when both sides are numbers (payload amounts are decimal
  strings), otherwise as text; ISO dates therefore compare correctly too;
- a list field (customer_tags, allowed_methods) with = matches when the value is one of
  its items, so "customer_tags = key account" reads naturally; `contains` works on lists
  (item) and text (substring); `in` takes a list or a comma-separated string.
A missing field never matches (except with !=).
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

OPERATORS = {"=": "eq", "==": "eq", "eq": "eq", "!=": "ne", "≠": "ne", "ne": "ne", "<": "lt", "lt": "lt",
             "<=": "le", "≤": "le", "le": "le", ">": "gt", "gt": "gt", ">=": "ge", "≥": "ge", "ge": "ge",
             "in": "in", "contains": "contains"}
_MISSING = object()


class ConditionError(ValueError):
    pass


def conditions_validate(conditions: Any) -> list[dict[str, Any]]:
    """Normalised copy of the conditions, or ConditionError saying which one is wrong."""
    if conditions in (None, ""):
        return []
    if not isinstance(conditions, list):
        raise ConditionError("conditions must be a list of {field, op, value}")
    clean = []
    for i, cond in enumerate(conditions, start=1):
        if not isinstance(cond, dict) or not {"field", "op"} <= set(cond):
            raise ConditionError(f"condition {i}: needs field, op and value")
        field, op = str(cond["field"]).strip(), str(cond["op"]).strip()
        if not field:
            raise ConditionError(f"condition {i}: field is empty")
        if op not in OPERATORS:
            raise ConditionError(f"condition {i}: unknown operator {op!r} (use one of = != < <= > >= in contains)")
        clean.append({"field": field, "op": op, "value": cond.get("value")})
    return clean


def _lookup(payload: Any, field: str) -> Any:
    value = payload
    for part in field.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None


def _equal(a: Any, b: Any) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    return a == b if a is None or b is None else str(a) == str(b)


def _compare(a: Any, b: Any) -> int | None:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    if a is None or b is None or isinstance(a, (list, dict)):
        return None
    sa, sb = str(a), str(b)
    return (sa > sb) - (sa < sb)


def condition_matches(payload: dict[str, Any], cond: dict[str, Any]) -> bool:
    op = OPERATORS[cond["op"]]
    actual = _lookup(payload, cond["field"])
    expected = cond.get("value")
    if actual is _MISSING:
        return op == "ne"
    if op in ("eq", "ne"):
        hit = any(_equal(item, expected) for item in actual) if isinstance(actual, list) else _equal(actual, expected)
        return hit if op == "eq" else not hit
    if op == "in":
        options = expected if isinstance(expected, list) else [s.strip() for s in str(expected).split(",")]
        return any(_equal(actual, option) for option in options)
    if op == "contains":
        if isinstance(actual, list):
            return any(_equal(item, expected) for item in actual)
        return str(expected) in str(actual)
    order = _compare(actual, expected)
    if order is None:
        return False
    return {"lt": order < 0, "le": order <= 0, "gt": order > 0, "ge": order >= 0}[op]


def conditions_match(payload: dict[str, Any], conditions: list[dict[str, Any]], *, match: str = "all") -> bool:
    if not conditions:
        return True
    results = (condition_matches(payload, c) for c in conditions)
    return any(results) if match == "any" else all(results)
