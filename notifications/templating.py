"""Rendering notification templates in a restricted context.

Templates use the Django template syntax, but through a dedicated Engine: no context
processors, no loaders (so no include/extends of files), only the tags and filters of
`notifications.template_library`, and a context made only of the event, its payload and the
recipient. Templates are also checked when saved: every variable must start with one of
the documented names, so `{{ settings.SECRET_KEY }}` is refused outright instead of
silently rendering nothing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError
from django.template.base import FilterExpression, Node, NodeList, Variable
from django.template.defaulttags import ForNode, WithNode
from django.utils import translation

ALLOWED_ROOTS = frozenset({"event", "payload", "recipient"})
# Names people try; refused with a clearer message than "unknown variable".
FORBIDDEN_ROOTS = frozenset({"settings", "request", "user", "perms", "csrf_token", "messages", "os", "sys",
                             "self", "block", "forloop_parent", "connection", "model", "objects"})
LOOP_NAMES = frozenset({"forloop"})


class TemplateRefused(ValueError):
    """The template is invalid or uses something outside its restricted context."""


class _RestrictedEngine(Engine):
    default_builtins = ["notifications.template_library"]


_ENGINES: dict[bool, Engine] = {}


def engine(*, html: bool) -> Engine:
    if html not in _ENGINES:
        _ENGINES[html] = _RestrictedEngine(dirs=[], app_dirs=False, context_processors=[], debug=False,
                                           loaders=[], libraries={}, autoescape=html, string_if_invalid="")
    return _ENGINES[html]


def _walk(obj: Any, seen: set[int], found: list[str], bound: set[str]) -> None:
    if id(obj) in seen or obj is None or isinstance(obj, (str, int, float, bool)):
        return
    seen.add(id(obj))
    if isinstance(obj, Variable):
        if obj.lookups:
            found.append(obj.lookups[0])
        return
    if isinstance(obj, ForNode):
        bound.update(obj.loopvars)
    if isinstance(obj, WithNode):
        bound.update(obj.extra_context)
    if isinstance(obj, (list, tuple, NodeList)):
        for item in obj:
            _walk(item, seen, found, bound)
        return
    if isinstance(obj, dict):
        for item in obj.values():
            _walk(item, seen, found, bound)
        return
    if isinstance(obj, FilterExpression):
        _walk(obj.var, seen, found, bound)
        for _func, args in obj.filters:
            for _lookup, arg in args:
                _walk(arg, seen, found, bound)
        return
    if isinstance(obj, Node) or type(obj).__module__.startswith("django.template"):
        for value in vars(obj).values() if hasattr(obj, "__dict__") else ():
            _walk(value, seen, found, bound)


def template_check(source: str, *, html: bool = False):
    """Compile a template and refuse it when it reads anything outside its context."""
    if not source:
        return None
    try:
        compiled = engine(html=html).from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateRefused(str(exc)) from exc
    found: list[str] = []
    bound: set[str] = set()
    _walk(compiled.nodelist, set(), found, bound)
    for root in found:
        if root in FORBIDDEN_ROOTS:
            raise TemplateRefused(f"templates cannot read {root!r}: only event, payload and recipient are available")
        if root not in ALLOWED_ROOTS and root not in bound and root not in LOOP_NAMES:
            raise TemplateRefused(f"unknown variable {root!r}: use payload.{root}, event.… or recipient.…")
    return compiled


def build_context(*, event: dict[str, Any], payload: dict[str, Any], recipient: dict[str, Any]) -> dict[str, Any]:
    # Copies of plain JSON data only: nothing a template could call into.
    return {"event": json.loads(json.dumps(event, default=str)),
            "payload": json.loads(json.dumps(payload, default=str)),
            "recipient": dict(recipient)}


def render(source: str, context: dict[str, Any], *, html: bool = False, locale: str = "fr") -> str:
    compiled = template_check(source, html=html)
    if compiled is None:
        return ""
    with translation.override(locale or "fr"):
        return compiled.render(Context(context, autoescape=html))


@dataclass(frozen=True)
class Rendered:
    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    body_json: str = ""


def default_json(event: dict[str, Any], payload: dict[str, Any]) -> str:
    """The event as documented in docs/events.md, when a webhook/file template has no JSON body."""
    return json.dumps({**event, "payload": payload}, ensure_ascii=False, separators=(",", ":"), default=str)


def render_template(template, *, event: dict[str, Any], payload: dict[str, Any],
                    recipient: dict[str, Any], locale: str) -> Rendered:
    context = build_context(event=event, payload=payload, recipient=recipient)
    if template.channel in ("webhook", "file"):
        if template.body_json.strip():
            text = render(template.body_json, context, html=False, locale=locale)
            try:
                body = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
            except ValueError as exc:
                raise TemplateRefused(f"the JSON body does not render valid JSON: {exc}") from exc
        else:
            body = default_json(context["event"], context["payload"])
        return Rendered(body_json=body)
    return Rendered(
        subject=" ".join(render(template.subject, context, locale=locale).split()),
        body_text=render(template.body_text, context, locale=locale),
        body_html=render(template.body_html, context, html=True, locale=locale),
    )
