"""Imports go down only: config -> connectors -> reconciliation -> collections_app -> notifications."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

LAYERS = ["notifications", "collections_app", "reconciliation", "connectors"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("app", LAYERS)
def test_an_app_imports_only_the_layers_below_it(app):
    forbidden = set(LAYERS[LAYERS.index(app) + 1:]) | {"config", "bench", "tests"}
    offenders = []
    for path in Path(settings.BASE_DIR / app).rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in forbidden and not (top == "config" and module in ("config.env",)):
                offenders.append(f"{path.relative_to(settings.BASE_DIR)} imports {module}")
    assert not offenders, "\n".join(offenders)
