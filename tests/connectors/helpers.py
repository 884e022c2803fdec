"""Running an import of a file as the upload, the command and the drop folder do."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files import File

from connectors.models import ImportJob
from connectors.services import import_job_create, import_job_run

ENGINES = [pytest.param("postgres", marks=pytest.mark.postgres), "orm"]


def run_path(creditor, path: Path, *, engine: str, mode=ImportJob.Mode.ALL_OR_NOTHING, dry_run=False,
             mapping=None) -> ImportJob:
    with open(path, "rb") as handle:
        job = import_job_create(creditor=creditor, filename=path.name, content=File(handle, name=path.name),
                                mode=mode, dry_run=dry_run, mapping=mapping)
    job, _run = import_job_run(job=job, engine=engine)
    job.refresh_from_db()
    return job


def run_bytes(creditor, tmp_path: Path, name: str, content: bytes, **options) -> ImportJob:
    path = tmp_path / name
    path.write_bytes(content)
    return run_path(creditor, path, **options)
