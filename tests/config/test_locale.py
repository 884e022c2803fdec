"""The French catalog is part of the product: every string of the admin and public pages is translated."""
from __future__ import annotations

from pathlib import Path

import polib
from django.conf import settings


def test_french_catalog_is_complete():
    po = polib.pofile(str(Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"))
    missing = [e.msgid for e in po if not e.obsolete and (not e.translated() or "fuzzy" in e.flags)]
    assert not missing, f"{len(missing)} French strings untranslated or fuzzy: {missing[:20]}"


def test_french_catalog_covers_the_source(tmp_path):
    """makemessages would add nothing: no gettext string of ours is missing from the catalog."""
    import re

    po = polib.pofile(str(Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES" / "django.po"))
    known = {e.msgid for e in po if not e.obsolete}
    pattern = re.compile(r"""\b(?:_|gettext|gettext_lazy|pgettext_lazy)\(\s*(["'])((?:(?!\1).)+)\1\s*[,)]""")
    missing = []
    for app in ("config", "collections_app", "notifications", "reconciliation", "connectors"):
        for path in (Path(settings.BASE_DIR) / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                msgid = match.group(2).encode().decode("unicode_escape") if "\\" in match.group(2) else match.group(2)
                if msgid not in known:
                    missing.append(f"{path.relative_to(settings.BASE_DIR)}: {msgid}")
    assert not missing, "run makemessages: " + "\n".join(missing[:20])
