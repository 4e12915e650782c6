"""Where the client keeps its files, and the stored login.

The config folder is ``MOSAIC_CONFIG_DIR`` when set, else the platform's user config folder
(``$XDG_CONFIG_HOME/mosaic`` or ``~/.config/mosaic`` on Linux, ``~/Library/Application
Support/mosaic`` on macOS, ``%APPDATA%\\mosaic`` on Windows). ``credentials.json`` holds the tokens
per server URL and is written with mode 0600, replaced atomically so a crash never leaves half a
file. ``uploads/`` holds the resume state of uploads (see :mod:`mosaic_client.state`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CREDENTIALS = "credentials.json"


def config_dir() -> Path:
    override = os.environ.get("MOSAIC_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mosaic"


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the user only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)  # mkstemp already creates 0600; say it where it matters
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Login:
    """One server's stored session."""

    url: str
    email: str
    access_token: str
    refresh_token: str


class CredentialStore:
    """``credentials.json``: ``{"default_url": ..., "servers": {url: Login}}``.

    Refreshing a token rotates the refresh token on the server, and a rotated token presented
    again revokes the whole session; :meth:`locked` lets one process (and one thread) at a time
    read, refresh and write, so two ``mosaic`` commands running side by side never both spend
    the same refresh token.
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / CREDENTIALS

    def _load(self) -> dict[str, Any]:
        return read_json(self.path)

    def default_url(self) -> str | None:
        url = self._load().get("default_url")
        return url if isinstance(url, str) else None

    def get(self, url: str) -> Login | None:
        entry = self._load().get("servers", {}).get(url)
        if not isinstance(entry, dict):
            return None
        try:
            return Login(**{key: str(entry[key]) for key in Login.__dataclass_fields__})
        except KeyError:
            return None

    def put(self, login: Login) -> None:
        data = self._load()
        servers = data.get("servers") if isinstance(data.get("servers"), dict) else {}
        assert isinstance(servers, dict)
        servers[login.url] = asdict(login)
        data["servers"] = servers
        data["default_url"] = login.url
        write_private(self.path, json.dumps(data, indent=2).encode())

    def remove(self, url: str) -> None:
        data = self._load()
        servers = data.get("servers")
        if isinstance(servers, dict):
            servers.pop(url, None)
        if data.get("default_url") == url:
            data.pop("default_url")
        write_private(self.path, json.dumps(data, indent=2).encode())

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock between processes (a lock file beside the credentials)."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.directory / ".credentials.lock"
        with open(lock_path, "a+b") as handle:
            _lock(handle.fileno())
            try:
                yield
            finally:
                _unlock(handle.fileno())


if sys.platform == "win32":
    import msvcrt

    def _lock(descriptor: int) -> None:
        msvcrt.locking(descriptor, msvcrt.LK_LOCK, 1)

    def _unlock(descriptor: int) -> None:
        msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_EX)

    def _unlock(descriptor: int) -> None:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
