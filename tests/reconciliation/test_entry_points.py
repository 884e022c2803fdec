from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from reconciliation.models import BankStatement, BankTransaction
from reconciliation.tasks import import_drop_folder
from tests.reconciliation.conftest import SAMPLES, sample

pytestmark = pytest.mark.django_db


def test_api_upload_list_and_errors(world, api):
    upload = SimpleUploadedFile("releve.xml", sample("camt053_v02_bnp.xml"), content_type="application/xml")
    response = api.post("/api/v1/bank-statements/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] == 8 and body["format"] == "camt.053" and body["matching"]["matched"] == 4
    again = api.post("/api/v1/bank-statements/", {"file": SimpleUploadedFile("r.xml", sample("camt053_v02_bnp.xml"))},
                     format="multipart")
    assert again.status_code == 200 and again.json()["already_imported"] is True
    listed = api.get("/api/v1/bank-statements/").json()
    assert [s["filename"] for s in listed["results"]] == ["releve.xml"]
    queue = api.get("/api/v1/bank-transactions/?status=unmatched").json()["results"]
    assert {t["bank_reference"] for t in queue} == {"BNP-0004", "BNP-0005"}
    assert any(t["suggestions"] for t in queue)
    bad = api.post("/api/v1/bank-statements/",
                   {"file": SimpleUploadedFile("bad.xml", sample("malformed_camt053.xml"))}, format="multipart")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_statement"
    assert "line" in bad.json()["error"]["message"]


def test_import_statement_command_json(world, capsys):
    call_command("import_statement", str(SAMPLES / "cfonb120_lcl.txt"), str(SAMPLES / "mt940_nl_ing.sta"), "--json")
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert data["ok"] is True and [f["format"] for f in data["files"]] == ["cfonb120", "mt940"]
    assert "cfonb120_lcl.txt: cfonb120, 3 new" in "\n".join(out)
    with pytest.raises(CommandError):
        call_command("import_statement", str(SAMPLES / "xml_bomb_camt053.xml"), "--json")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ok"] is False


def test_drop_folder(world, settings, tmp_path):
    settings.STATEMENT_DROP_DIR = tmp_path
    (tmp_path / "a.xml").write_bytes(sample("camt053_v02_bnp.xml"))
    (tmp_path / "b.xml").write_bytes(sample("malformed_camt053.xml"))
    assert import_drop_folder() == {"imported": 1, "failed": 1}
    assert (tmp_path / "done" / "a.xml").exists()
    assert "malformed XML" in (tmp_path / "failed" / "b.xml.error.txt").read_text()
    assert BankStatement.objects.get().source == BankStatement.Source.DROP_FOLDER
    assert BankTransaction.objects.count() == 8
    assert import_drop_folder() == {"imported": 0, "failed": 0}


def test_drop_folder_takes_back_a_file_left_by_a_dead_worker(world, settings, tmp_path):
    import signal
    import subprocess
    import sys

    settings.STATEMENT_DROP_DIR = tmp_path
    (tmp_path / "processing").mkdir()
    (tmp_path / "a.xml").write_bytes(sample("camt053_v02_bnp.xml"))
    # given a worker that claimed the file (renamed into processing/ and locked) and is still at it
    worker = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"os.rename({str(tmp_path / 'a.xml')!r}, {str(tmp_path / 'processing' / 'a.xml')!r})\n"
        f"handle = open({str(tmp_path / 'processing' / 'a.xml')!r}, 'rb')\n"
        "fcntl.flock(handle, fcntl.LOCK_EX)\n"
        "print('claimed', flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "claimed"
        # when another pass runs meanwhile, then it leaves the file to the live worker
        assert import_drop_folder() == {"imported": 0, "failed": 0}
        assert (tmp_path / "processing" / "a.xml").exists()
        # when the worker dies without finishing
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    # then the next pass imports the file: nothing is lost
    assert import_drop_folder() == {"imported": 1, "failed": 0}
    assert (tmp_path / "done" / "a.xml").exists() and not list((tmp_path / "processing").iterdir())
    assert BankTransaction.objects.count() == 8


def test_statement_import_reports_its_progress(world):
    from reconciliation.imports import statement_import
    from tests.reconciliation.builders import camt053

    seen: list[tuple[str, float]] = []
    entries = [{"amount": "1.00", "ref": f"P-{i}", "text": "merci", "name": "X"} for i in range(2500)]
    statement_import(source=camt053(world.account.account_id, entries), filename="p.xml",
                     progress=lambda phase, fraction: seen.append((phase, fraction)))
    reading = [f for phase, f in seen if phase == "reading"]
    assert len(reading) == 2 and reading == sorted(reading) and 0 < reading[0] < 1
    assert [f for phase, f in seen if phase == "matching"][-1] == 1.0


def test_a_big_upload_answers_once_stored_and_is_matched_by_the_worker(world, api, settings,
                                                                      django_capture_on_commit_callbacks):
    from django_q.models import OrmQ

    from reconciliation.tasks import match_statements

    # given an upload with more new transactions than a request matches itself
    settings.RECONCILIATION_INLINE_MATCH_MAX = 3
    upload = SimpleUploadedFile("big.xml", sample("camt053_v02_bnp.xml"), content_type="application/xml")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/bank-statements/", {"file": upload}, format="multipart")
    # then the answer says the matching is queued, and a task for the worker is
    assert response.status_code == 201 and response.json()["matching"] == {"queued": 8}
    assert BankTransaction.objects.filter(status=BankTransaction.Status.NEW).count() == 8
    assert OrmQ.objects.count() == 1
    # when the worker runs it, then the transactions are matched as an inline import would
    counts = match_statements(list(BankStatement.objects.values_list("pk", flat=True)))
    assert counts["matched"] == 4
    assert not BankTransaction.objects.filter(status=BankTransaction.Status.NEW).exists()


def _zip(members: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_a_zip_of_statements_is_imported_whole_and_once(world, api, settings):
    settings.LANGUAGE_CODE = "en"
    # given an EBICS-style download: two statements, a PDF copy and what macOS adds
    archive = _zip({"C53/2026-03-04_camt053.xml": sample("camt053_v02_bnp.xml"),
                    "C53/2026-03-04_lcl.txt": sample("cfonb120_lcl.txt"),
                    "C53/2026-03-04_releve.pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
                    "__MACOSX/C53/._2026-03-04_camt053.xml": b"\x00\x05\x16\x07", "C53/": b""})
    # when
    response = api.post("/api/v1/bank-statements/", {"file": SimpleUploadedFile("C53.zip", archive)},
                        format="multipart")
    # then both statements are in, matched, and the PDF is said to be left out
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["format"], body["created"], body["matching"]["matched"]) == ("zip", 11, 4)
    assert body["warnings"] == ["C53/2026-03-04_releve.pdf: not a bank statement, left out."]
    assert sorted(BankStatement.objects.values_list("filename", flat=True)) == [
        "C53.zip/C53/2026-03-04_camt053.xml", "C53.zip/C53/2026-03-04_lcl.txt"]
    # the same download again, or one of its files on its own, creates nothing
    again = api.post("/api/v1/bank-statements/", {"file": SimpleUploadedFile("C53-bis.zip", archive)},
                     format="multipart")
    assert again.status_code == 200 and again.json()["already_imported"] is True
    assert BankTransaction.objects.count() == 11


def test_an_archive_with_a_broken_statement_imports_nothing_and_names_it(world, api, tmp_path):
    broken = _zip({"a.xml": sample("camt053_v02_bnp.xml"), "b.xml": sample("malformed_camt053.xml")})
    response = api.post("/api/v1/bank-statements/", {"file": SimpleUploadedFile("x.zip", broken)},
                        format="multipart")
    assert response.status_code == 400 and response.json()["error"]["message"].startswith("b.xml: ")
    assert not BankStatement.objects.exists() and not BankTransaction.objects.exists()
    nested = _zip({"inner.zip": _zip({"a.xml": sample("camt053_v02_bnp.xml")})})
    path = tmp_path / "nested.zip"
    path.write_bytes(nested)
    with pytest.raises(CommandError):
        call_command("import_statement", str(path))
    assert not BankStatement.objects.exists()
    only_pdf = api.post("/api/v1/bank-statements/", {"file": SimpleUploadedFile(
        "scans.zip", _zip({"releve.pdf": b"%PDF-1.4\n"}))}, format="multipart")
    assert only_pdf.status_code == 400 and only_pdf.json()["error"]["code"] == "unsupported_format"
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(broken[:len(broken) // 2])
    with pytest.raises(CommandError):
        call_command("import_statement", str(damaged))


def test_gzip_statements_and_compression_bombs(world, settings, tmp_path, capsys):
    import gzip

    path = tmp_path / "releve.sta.gz"
    path.write_bytes(gzip.compress(sample("mt940_nl_ing.sta")))
    call_command("import_statement", str(path), "--json")
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["files"][0]["format"] == "gzip"
    assert BankStatement.objects.get().filename == "releve.sta.gz/releve.sta"
    # a small file that inflates past the size limit stops there
    settings.RECONCILIATION_MAX_FILE_BYTES = 1 << 20
    bomb = tmp_path / "bomb.xml.gz"
    bomb.write_bytes(gzip.compress(b"<" + b" " * (4 << 20)))
    assert bomb.stat().st_size < 10_000
    with pytest.raises(CommandError):
        call_command("import_statement", str(bomb), "--json")
    assert "larger than 1048576 bytes once uncompressed" in capsys.readouterr().out
    zipped = tmp_path / "bomb.zip"
    zipped.write_bytes(_zip({"big.xml": b"<" + b" " * (4 << 20)}))
    with pytest.raises(CommandError):
        call_command("import_statement", str(zipped), "--json")
    assert "big.xml: larger than" in capsys.readouterr().out
