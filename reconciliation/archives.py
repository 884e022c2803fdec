"""Statement files delivered inside a ZIP (EBICS downloads, bank portals: one camt.053 per
day or per account) or gzip-compressed. Members are read one at a time into a temporary file,
with their real size checked while inflating: a compression bomb stops at the size limit
whatever the archive claims."""
from __future__ import annotations

import gzip
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import PurePosixPath
from typing import IO

from reconciliation.parsers import StatementParseError

ZIP_MAGIC = b"PK\x03\x04"
GZIP_MAGIC = b"\x1f\x8b"
MAX_MEMBERS = 1000
CHUNK = 1 << 20
SPOOL_IN_MEMORY = 8 << 20

OpenMember = Callable[[], AbstractContextManager[IO[bytes]]]


def kind(head: bytes) -> str:
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    return ""


def _skipped(name: str) -> bool:
    """Folders and what archivers add on their own (macOS resource forks, Finder files)."""
    path = PurePosixPath(name)
    return name.endswith("/") or path.parts[0] == "__MACOSX" or path.name.startswith(".")


def _inflate(source: IO[bytes], name: str, max_bytes: int) -> IO[bytes]:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed by the caller
    total = 0
    try:
        while chunk := source.read(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise StatementParseError(f"{name}: larger than {max_bytes} bytes once uncompressed")
            out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        out.close()
        raise StatementParseError(f"{name}: the compressed data is damaged ({exc})") from exc
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def members(stream: IO[bytes], *, head: bytes, filename: str, max_bytes: int) -> Iterator[tuple[str, OpenMember]]:
    """(name, opener) for each file of the archive, in name order (a day's files in date order)."""
    if kind(head) == "gzip":
        name = PurePosixPath(filename or "statement.gz").name
        name = name[:-3] if name.lower().endswith(".gz") else name

        @contextmanager
        def open_gzip():
            stream.seek(0)
            with gzip.GzipFile(fileobj=stream, mode="rb") as inflating:
                member = _inflate(inflating, name, max_bytes)
            with member:
                yield member

        yield name, open_gzip
        return
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError) as exc:
        raise StatementParseError(f"not a readable ZIP archive ({exc})") from exc
    infos = [info for info in archive.infolist() if not _skipped(info.filename)]
    if len(infos) > MAX_MEMBERS:
        raise StatementParseError(f"the archive holds {len(infos)} files, at most {MAX_MEMBERS}")
    for info in sorted(infos, key=lambda i: i.filename):
        if info.flag_bits & 0x1:
            raise StatementParseError(f"{info.filename}: encrypted; send the files without a password")
        if info.file_size > max_bytes:
            raise StatementParseError(f"{info.filename}: larger than {max_bytes} bytes once uncompressed")

        @contextmanager
        def open_zip(info=info):
            try:
                source = archive.open(info)
            except (zipfile.BadZipFile, NotImplementedError, zlib.error) as exc:
                raise StatementParseError(f"{info.filename}: cannot be read ({exc})") from exc
            with source:
                member = _inflate(source, info.filename, max_bytes)
            with member:
                yield member

        yield info.filename, open_zip
