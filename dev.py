"""Set-up and the two everyday commands, needing nothing but Python 3.11+ and git.

    python3 dev.py run    [serve options]   create .venv if needed, install, migrate, serve
    python3 dev.py test   [pytest options]  lint, format check, types, then the whole test suite

The virtual environment lives in .venv and is refreshed whenever a requirements file changes;
``test`` also installs the command-line client from client/ (again whenever it changes).
``test`` runs pytest on SQLite and, when TEST_DATABASE_URL is set, again on that database.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")


def _run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    process = subprocess.Popen([str(part) for part in command], cwd=ROOT, env=env)
    # Ctrl+C reaches the child as well: let it stop in its own time (a server finishes its
    # requests and shuts down cleanly) instead of being killed by this wrapper.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        returncode = process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if returncode != 0:
        raise SystemExit(returncode)


def _ensure_venv(requirements: str) -> None:
    if sys.version_info < (3, 11):
        raise SystemExit("MOSAIC needs Python 3.11 or newer")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256()
    for name in ("requirements.txt", requirements):
        digest.update((ROOT / name).read_bytes())
    stamp = VENV / f".stamp-{requirements}"
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return
    _run(PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements)
    stamp.write_text(digest.hexdigest())


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
    _ensure_venv("requirements.txt")
    _run(PYTHON, "main.py", "serve", *args)


def test(args: list[str]) -> None:
    _ensure_venv("requirements.dev.txt")
    _ensure_client()
    _run(PYTHON, "-m", "ruff", "check", ".")
    _run(PYTHON, "-m", "ruff", "format", "--check", ".")
    _run(PYTHON, "-m", "mypy")
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"}
    print("== test suite on SQLite", flush=True)
    _run(PYTHON, "-m", "pytest", *args, env=env)
    postgres = os.environ.get("TEST_DATABASE_URL")
    if postgres:
        print("== test suite on", postgres.split("@")[-1], flush=True)
        _run(PYTHON, "-m", "pytest", *args, env={**env, "TEST_DATABASE_URL": postgres})


def main() -> None:
    commands = {"run": run, "test": test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        raise SystemExit(__doc__)
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
