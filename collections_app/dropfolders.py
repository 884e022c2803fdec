"""Files claimed from drop folders (ERP invoice files, bank statements).

A worker claims a dropped file by renaming it into processing/ (atomic: two workers never take
the same file) and keeps it locked (flock) for as long as it works on it. The lock dies with
the process that holds it, so a file that a dead worker left in processing/ can be told from
one a live worker is still on, and taken again."""
from __future__ import annotations

import fcntl
import os
import re
import secrets
from pathlib import Path
from typing import IO

from django.utils import timezone

# processing/<UTC stamp>-<6 hex>-<name>: two files of one name never collide.
CLAIM_PREFIX_RE = re.compile(r"^\d{8}T\d{6}-(?:[0-9a-f]{6}-)?")


def lock_claimed(path: Path) -> IO[bytes] | None:
    """Open and lock a claimed file; None when a live worker holds it or it moved on meanwhile.
    Closing the returned handle releases the lock."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino:
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        handle.close()
        return None
    return handle


def abandoned(processing: Path) -> list[tuple[Path, IO[bytes]]]:
    """The files in processing/ that no live worker holds, each locked for the caller."""
    if not processing.is_dir():
        return []
    found = []
    for path in sorted(p for p in processing.iterdir() if p.is_file()):
        handle = lock_claimed(path)
        if handle is not None:
            found.append((path, handle))
    return found


def claim(path: Path, processing: Path) -> tuple[Path, IO[bytes]] | None:
    """Take a dropped file: renamed into processing/ and locked. None when another worker took
    it first."""
    processing.mkdir(parents=True, exist_ok=True)
    claimed = processing / f"{timezone.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}-{path.name}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        return None
    handle = lock_claimed(claimed)
    return (claimed, handle) if handle is not None else None


def original_name(claimed: Path) -> str:
    """The name the file was dropped under."""
    return CLAIM_PREFIX_RE.sub("", claimed.name)


def waiting(folder: Path) -> list[Path]:
    """The files dropped in a folder and complete: not hidden, not being written (a sender
    writes under a temporary name, a leading dot or .tmp/.part, and renames when done)."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in (".tmp", ".part"))


def take_all(folder: Path, processing: Path) -> list[tuple[Path, IO[bytes], str, bool]]:
    """Everything to work on, each claimed and locked: (claimed path, lock handle, the name it
    was dropped under, whether a dead worker had left it in processing/), leftovers first."""
    work = [(path, handle, original_name(path), True) for path, handle in abandoned(processing)]
    for path in waiting(folder):
        taken = claim(path, processing)
        if taken is not None:
            work.append((*taken, path.name, False))
    return work
