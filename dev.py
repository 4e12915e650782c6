"""Set-up and the everyday commands, needing nothing but Python 3.11+ and git.

    python3 dev.py run    [serve options]   create .venv if needed, install, migrate, serve
    python3 dev.py test   [pytest options]  lint (as below), then the whole test suite
    python3 dev.py lint                     ruff check, ruff format --check, mypy: the quick loop
    python3 dev.py fix                      ruff check --fix, then ruff format
    python3 dev.py lock   [pip-compile options]  regenerate requirements.lock and
                                            requirements.dev.lock from the requirements*.txt pins

The virtual environment lives in .venv. It is installed from the lock files, every transitive
dependency pinned with its hashes (pip --require-hashes), and refreshed whenever a lock changes.
The locks are resolved on Linux; on Windows the pinned requirements*.txt are installed instead.
``test`` also installs the command-line client from client/ (again whenever it changes) and
the JavaScript test clients under tests/js (again whenever their lock changes).
``test`` runs pytest on SQLite and, when TEST_DATABASE_URL is set, on that database too, both runs
at once (the second one's output is printed when it ends; it uses the Redis database numbered one
below TEST_REDIS_URL's, as both runs flush theirs).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
# What each lock is compiled from; `dev.py lock` writes both, the runtime one first.
LOCKS = {"requirements.lock": "requirements.txt", "requirements.dev.lock": "requirements.dev.txt"}
JS_TESTS = ROOT / "tests" / "js"


def _wait(process: subprocess.Popen[bytes]) -> int:
    """The process's exit code. Ctrl+C reaches the child as well: let it stop in its own time (a
    server finishes its requests and shuts down cleanly) instead of being killed by this wrapper."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    returncode = _wait(subprocess.Popen([str(part) for part in command], cwd=ROOT, env=env))
    if returncode != 0:
        raise SystemExit(returncode)


def _ensure_venv(lock: str) -> None:
    if sys.version_info < (3, 11):
        raise SystemExit("MOSAIC needs Python 3.11 or newer")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    # pip-compile resolves for the platform it runs on, so the Linux-made locks lack Windows-only
    # dependencies (colorama) and name Linux-only ones unconditionally (uvloop): Windows installs
    # the top-level pins and lets pip resolve the rest.
    install = ["-r", LOCKS[lock]] if os.name == "nt" else ["--require-hashes", "-r", lock]
    digest = hashlib.sha256()
    for name in (lock, LOCKS[lock], "requirements.txt"):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".stamp-{lock}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    _run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q", *install)
    stamp.write_text(digest.hexdigest())


def _ensure_node_modules() -> None:
    """The JavaScript clients of the e2e tests (tests/js), installed again when the lock changes.
    Without npm the tests that need them skip (they fail under CI=true, where .ci/run installs)."""
    npm = shutil.which("npm")
    lock = JS_TESTS / "package-lock.json"
    if npm is None or not lock.exists():
        return
    stamp = JS_TESTS / "node_modules" / ".stamp"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print("+ npm ci (tests/js)", flush=True)
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS_TESTS, check=True)
    stamp.write_text(digest)


def _client_files() -> list[Path]:
    client = ROOT / "client"
    return sorted(
        path
        for path in client.rglob("*")
        if path.is_file()
        and not {"build", "__pycache__"} & set(path.relative_to(client).parts)
        and ".egg-info" not in str(path)
    )


def _ensure_client() -> None:
    """Install the command-line client from client/ as a user would (``pip install ./client``,
    not editable), again whenever one of its files changes; the tests run its ``mosaic``."""
    digest = hashlib.sha256()
    for path in _client_files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    stamp = VENV / ".stamp-client"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    _run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q", "./client")
    stamp.write_text(digest.hexdigest())


def run(args: list[str]) -> None:
    _ensure_venv("requirements.lock")
    _run(PYTHON, "main.py", "serve", *args)


def _lint() -> None:
    _run(PYTHON, "-m", "ruff", "check", ".")
    _run(PYTHON, "-m", "ruff", "format", "--check", ".")
    _run(PYTHON, "-m", "mypy")


def lint(args: list[str]) -> None:
    _ensure_venv("requirements.dev.lock")
    _lint()


def fix(args: list[str]) -> None:
    _ensure_venv("requirements.dev.lock")
    _run(PYTHON, "-m", "ruff", "check", "--fix", ".")
    _run(PYTHON, "-m", "ruff", "format", ".")


def lock(args: list[str]) -> None:
    """Pin every transitive dependency with its hashes; the dev lock keeps the runtime versions.
    Extra options go to both pip-compile runs (e.g. --upgrade-package fastapi)."""
    _ensure_venv("requirements.dev.lock")
    env = {**os.environ, "CUSTOM_COMPILE_COMMAND": "python3 dev.py lock"}
    constraint: list[str] = []
    for output, source in LOCKS.items():
        options = ["--generate-hashes", "--allow-unsafe", "--strip-extras", "--no-emit-index-url"]
        options += ["--no-emit-find-links", "--no-emit-trusted-host", *constraint, *args]
        _run(PYTHON, "-m", "piptools", "compile", "-q", *options, "-o", output, source, env=env)
        constraint = ["-c", output]


def _redis_database_beside(url: str) -> str:
    """The Redis database numbered one below ``url``'s (one above for database 0): the two runs
    of ``test`` go on at once, and each flushes the database its tests use."""
    base, _, number = url.rpartition("/")
    if not base.startswith("redis") or not number.isdigit():
        return url
    index = int(number)
    return f"{base}/{index - 1 if index > 0 else 1}"


def test(args: list[str]) -> None:
    """Lint, then the suite on SQLite and, with TEST_DATABASE_URL, on that database at the same
    time (two processes: the suite spends much of its time waiting on servers and sockets, so
    the two runs together take little longer than one). The SQLite run streams its output; the
    other's is kept in a file and printed when it ends."""
    _ensure_venv("requirements.dev.lock")
    _ensure_node_modules()
    _ensure_client()
    _lint()
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    postgres = os.environ.get("TEST_DATABASE_URL")
    where = postgres.split("@")[-1] if postgres else ""
    pytest = [str(PYTHON), "-m", "pytest", *args]
    with tempfile.TemporaryFile() as log:
        beside = None
        if postgres:
            print(f"== test suite on {where} (printed when it ends)", flush=True)
            beside_env = {**env, "TEST_DATABASE_URL": postgres}
            beside = subprocess.Popen(pytest, cwd=ROOT, env=beside_env, stdout=log, stderr=log)
            if env.get("TEST_REDIS_URL"):
                env["TEST_REDIS_URL"] = _redis_database_beside(env["TEST_REDIS_URL"])
        print("== test suite on SQLite", flush=True)
        failed = _wait(subprocess.Popen(pytest, cwd=ROOT, env=env))
        if beside is not None:
            failed = failed or _wait(beside)
            print(f"== test suite on {where}", flush=True)
            log.seek(0)
            shutil.copyfileobj(log, sys.stdout.buffer)
            sys.stdout.flush()
    if failed:
        raise SystemExit(failed)


def main() -> None:
    commands = {"run": run, "test": test, "lint": lint, "fix": fix, "lock": lock}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
