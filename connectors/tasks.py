"""django-q2 entry points of the connectors. Tasks take ids, never objects."""
from __future__ import annotations


def run_import_job(job_id: int) -> str:
    from connectors.models import ImportJob
    from connectors.services import import_job_run

    job, _run = import_job_run(job=ImportJob.objects.get(pk=job_id))
    return job.status


def poll_drop_folder() -> list[int]:
    """Every minute: files dropped by ERPs become import jobs, run one after the other."""
    from connectors.models import ImportJob
    from connectors.services import drop_folder_scan, import_jobs_recover, import_jobs_write_missing_return_files

    # Jobs whose worker died go back to pending (drop-folder ones are run below), and the
    # return files that a dead worker did not write after its commit are written.
    import_jobs_recover()
    import_jobs_write_missing_return_files()
    drop_folder_scan()
    # Also the jobs of an earlier pass that crashed before running them (the claim makes a
    # job run once even when two clusters poll at the same time).
    ids = list(ImportJob.objects.filter(source=ImportJob.Source.DROP_FOLDER, status=ImportJob.Status.PENDING)
               .order_by("pk").values_list("pk", flat=True))
    for job_id in ids:
        run_import_job(job_id)
    return ids


def write_status_files() -> int:
    from connectors.exports import status_files_write_all

    return len(status_files_write_all())
