"""The only tags and filters available to notification templates.

A whitelist: tags that reach outside the template (load, include, extends, url, debug,
csrf_token) and filters that would let payload text through unescaped (safe, safeseq) are
left out on purpose. Helpers for money, dates and JSON are added.
"""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation

from django import template
from django.template import defaultfilters, defaulttags
from django.utils import formats, translation
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.safestring import mark_safe

register = template.Library()

ALLOWED_TAGS = ("autoescape", "comment", "cycle", "filter", "firstof", "for", "if", "ifchanged", "now",
                "resetcycle", "spaceless", "templatetag", "verbatim", "widthratio", "with")
ALLOWED_FILTERS = ("add", "capfirst", "center", "cut", "date", "default", "default_if_none", "divisibleby",
                   "escape", "escapejs", "first", "floatformat", "force_escape", "join", "last", "length",
                   "linebreaks", "linebreaksbr", "ljust", "lower", "pluralize", "rjust", "slice", "slugify",
                   "striptags", "time", "title", "truncatechars", "truncatewords", "upper", "urlencode",
                   "wordcount", "wordwrap", "yesno")

for _name in ALLOWED_TAGS:
    register.tags[_name] = defaulttags.register.tags[_name]
for _name in ALLOWED_FILTERS:
    register.filters[_name] = defaultfilters.register.filters[_name]

CURRENCY_SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}


@register.filter
def money(value, currency: str = "EUR") -> str:
    """`{{ payload.amount|money:payload.currency }}` -> "1 234,56 €" (fr) or "€1,234.56" (en)."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    number = formats.number_format(amount.quantize(Decimal("0.01")), 2, use_l10n=True, force_grouping=True)
    symbol = CURRENCY_SYMBOLS.get(str(currency).upper(), str(currency))
    if (translation.get_language() or "fr").startswith("fr"):
        return f"{number}\u00a0{symbol}"
    return f"{symbol}{number}" if len(symbol) == 1 else f"{symbol}\u00a0{number}"


@register.filter
def as_date(value):
    """ISO strings of the payload back to dates, for the `date` filter: `{{ payload.due_date|as_date|date:"j F Y" }}`."""
    if isinstance(value, (dt.date, dt.datetime)) or not value:
        return value
    text = str(value)
    return parse_datetime(text) if "T" in text else parse_date(text)


@register.filter(name="json")
def to_json(value) -> str:
    """For JSON bodies: `{"amount": {{ payload.amount|json }}}` quotes and escapes correctly."""
    return mark_safe(json.dumps(value, ensure_ascii=False))
