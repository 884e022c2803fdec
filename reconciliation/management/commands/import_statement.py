from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from collections_app.errors import DomainError
from notifications.management.base import JsonCommand
from reconciliation.imports import statement_import
from reconciliation.models import BankStatement
from reconciliation.parsers import StatementParseError


class Command(JsonCommand):
    help = ("Import bank statement files (camt.052, camt.053, camt.054, MT940, CFONB 120, or a ZIP or gzip of "
            "them; pain.002 status reports).")

    def add_command_arguments(self, parser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--no-match", action="store_true",
                            help="store only; the match-new-transactions schedule matches them within 5 minutes")

    def run(self, **options: Any) -> tuple[str, dict[str, Any]]:
        results, lines, failed = [], [], []
        for path in options["files"]:
            bar = None
            if self.progress_enabled(options):
                from tqdm import tqdm

                bar = tqdm(total=100, unit="%", desc=f"{path}: reading", leave=False)

            def progress(phase: str, fraction: float, bar=bar, path=path) -> None:
                # reading is the first half of the bar, matching the second
                percent = int(fraction * 50) + (50 if phase == "matching" else 0)
                bar.set_description(f"{path}: {phase}")
                bar.update(max(percent - bar.n, 0))

            try:
                result = statement_import(source=path, origin=BankStatement.Source.COMMAND,
                                          match=not options["no_match"], progress=progress if bar else None)
            except (StatementParseError, DomainError, OSError) as exc:
                if bar is not None:
                    bar.close()
                message = getattr(exc, "message", None) or str(exc)
                failed.append({"file": path, "error": message})
                lines.append(f"{path}: ERROR {message}")
                continue
            if bar is not None:
                bar.close()
            data = result.as_dict()
            report = data["status_report"]
            if report is not None:
                # A pain.002 is all or nothing: a refused report is an error of this file.
                if not report["ok"]:
                    failed.append({"file": path, "error": "; ".join(report["errors"])})
                    lines.append(f"{path}: ERROR " + "; ".join(report["errors"]))
                    continue
                results.append({"file": path, **data})
                state = "already imported" if report["already_imported"] else (
                    f"{len(report['rejected'])} rejected, {report['accepted']} accepted")
                lines.append(f"{path}: pain.002 status report, {state}")
                continue
            results.append({"file": path, **data})
            matching = ", ".join(f"{k} {v}" for k, v in sorted(result.matching.items())) or "-"
            state = "already imported" if result.already_imported else f"{result.created} new"
            lines.append(f"{path}: {result.format}, {state}, {result.duplicates} duplicate(s); matching: {matching}")
            lines += [f"  warning: {w}" for w in result.warnings]
        if failed and not results:
            raise CommandError("\n".join(lines))
        if failed:
            self.stderr.write("\n".join(f"{f['file']}: {f['error']}" for f in failed))
        return "\n".join(lines), {"files": results, "failed": failed}

