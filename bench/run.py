#!/usr/bin/env python
"""Benchmark runner: `./scripts/bench.sh [NAME ...] [--quick]`.

Discovers bench/bench_*.py; each module has NAME, DESCRIPTION and run(ctx) -> dict.
A benchmark measures its baseline in the same run and returns at least
{"ratio": float, "ratio_meaning": str, "figures": {...}}; the runner prints them and keeps
the JSON in bench/results/. See bench/README.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Import bench modules as the `bench` package, never bench/ itself as top level.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))


@dataclass
class Context:
    quick: bool
    root: Path = ROOT
    workdir: Path = field(default_factory=lambda: ROOT / "var" / "bench")

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def discover() -> dict[str, object]:
    modules = {}
    for path in sorted((ROOT / "bench").glob("bench_*.py")):
        module = importlib.import_module(f"bench.{path.stem}")
        modules[module.NAME] = module
    return modules


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.bench")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    modules = discover()
    if args.list:
        for name, module in modules.items():
            print(f"{name:24} {module.DESCRIPTION}")
        return 0
    unknown = set(args.names) - set(modules)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; --list shows them", file=sys.stderr)
        return 2
    setup_django()
    ctx = Context(quick=args.quick)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    failed = 0
    for name in args.names or list(modules):
        module = modules[name]
        print(f"\n=== {name}: {module.DESCRIPTION}")
        started = time.perf_counter()
        try:
            result = module.run(ctx)
        except Exception as exc:  # report and go on with the others
            import traceback

            traceback.print_exc()
            print(f"!!! {name} failed: {exc}")
            failed += 1
            continue
        result["elapsed_s"] = round(time.perf_counter() - started, 2)
        for key, value in result.get("figures", {}).items():
            print(f"  {key:40} {value}")
        if "ratio" in result:
            print(f"  RATIO {result['ratio']:.3f}  ({result.get('ratio_meaning', '')})")
        (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
