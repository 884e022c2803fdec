#!/usr/bin/env python3
"""Run a command against a throw-away PostgreSQL: private data directory and socket,
removed afterwards. Used by the test command and the benchmarks.

    python scripts/pgtmp.py -- pytest -q

Prints DATABASE_URL for the child process. Exits 3 when no PostgreSQL binaries exist
(the caller then falls back to SQLite)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def find_bindir() -> str | None:
    explicit = os.environ.get("PG_BINDIR")
    if explicit:  # only there: lets one check the SQLite fallback on a machine that has PostgreSQL
        candidates = [explicit]
    else:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
        which = shutil.which("pg_ctl")
        if which:
            candidates.append(os.path.dirname(which))
    for path in candidates:
        if path and os.path.exists(os.path.join(path, "pg_ctl")) and os.path.exists(os.path.join(path, "initdb")):
            return path
    return None


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    bindir = find_bindir()
    if bindir is None:
        print("pgtmp: no PostgreSQL binaries found (looked in /usr/lib/postgresql/*/bin and PATH)", file=sys.stderr)
        return 3
    base = tempfile.mkdtemp(prefix="encaisse-pg-")
    datadir = os.path.join(base, "data")
    sockdir = os.path.join(base, "sock")
    os.makedirs(sockdir)
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root: run the server as the postgres (or nobody) user.
        user = "postgres"
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            user, pw = "nobody", pwd.getpwnam("nobody")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chown(sockdir, pw.pw_uid, pw.pw_gid)
        os.chmod(base, 0o755)
        run_as = ["runuser", "-u", user, "--"]
    port = os.environ.get("PGTMP_PORT", str(20000 + os.getpid() % 20000))
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    try:
        subprocess.run(run_as + [f"{bindir}/initdb", "-D", datadir, "-U", "postgres", "--auth=trust",
                                 "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        options = (f"-c listen_addresses='' -c unix_socket_directories={sockdir} -p {port} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200 -c shared_buffers=256MB")
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", datadir, "-o", options, "-w", "-t", "60",
                                 "-l", os.path.join(base, "server.log"), "start"],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        subprocess.run([f"{bindir}/createdb", "-h", sockdir, "-p", port, "-U", "postgres", "encaisse"],
                       check=True, env=env)
        url = f"postgres://postgres@/encaisse?host={sockdir}&port={port}"
        print(f"pgtmp: PostgreSQL from {bindir} on socket {sockdir} (DATABASE_URL={url})", file=sys.stderr)
        child_env = {**os.environ, "DATABASE_URL": url, "PGHOST": sockdir, "PGPORT": port, "PGUSER": "postgres"}
        if not argv:
            print(url)
            return 0
        child = subprocess.Popen(argv, env=child_env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            child.send_signal(signal.SIGINT)
            return child.wait()
    finally:
        subprocess.run(run_as + [f"{bindir}/pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
