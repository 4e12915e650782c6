"""The client's parts on their own: the config folder and its file modes, the resume state, the
exit codes, the token refresh, and that the package needs nothing of the server."""

from __future__ import annotations

import ast
import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mosaic_client import cli
from mosaic_client.api import Api, token_expiry
from mosaic_client.config import CredentialStore, Login, config_dir
from mosaic_client.state import FileState, UploadState, sha256_of
from mosaic_client.uploads import FileResult, exit_code

from tests.client.conftest import PASSWORD, ROOT, User

CLIENT_SOURCE = ROOT / "client" / "src" / "mosaic_client"


def _login(url: str = "http://mosaic.test") -> Login:
    return Login(url=url, email="a@example.org", access_token="a", refresh_token="r")


class TestConfig:
    def test_mosaic_config_dir_overrides(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MOSAIC_CONFIG_DIR", str(tmp_path / "here"))
        assert config_dir() == tmp_path / "here"

    @pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="the XDG layout is Linux's")
    def test_xdg_config_home_when_not_overridden(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("MOSAIC_CONFIG_DIR", raising=False)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        assert config_dir() == tmp_path / "mosaic"

    def test_credentials_are_private_and_kept_per_server(self, tmp_path: Path) -> None:
        store = CredentialStore(tmp_path / "config")
        store.put(_login("http://one"))
        store.put(_login("http://two"))
        mode = stat.S_IMODE(store.path.stat().st_mode)
        assert mode == 0o600
        assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
        assert store.default_url() == "http://two"
        assert store.get("http://one") == _login("http://one")
        store.remove("http://two")
        assert store.get("http://two") is None
        assert store.default_url() is None
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
        assert [p.name for p in store.path.parent.iterdir() if p.name.endswith(".json")] == [
            "credentials.json"
        ]  # no temporary file left behind


class TestUploadState:
    def test_a_recorded_file_is_found_until_it_changes(self, tmp_path: Path) -> None:
        path = tmp_path / "a.fq"
        path.write_bytes(b"@r\nA\n+\nI\n")
        state = UploadState("http://s", "MOSAIC-0001", tmp_path / "config")
        size, mtime = path.stat().st_size, path.stat().st_mtime_ns
        recorded = FileState(size, mtime, sha256_of(path), "/api/v1/uploads/x", "S1")
        state.put(path, recorded)
        again = UploadState("http://s", "MOSAIC-0001", tmp_path / "config")  # a new run
        assert again.get(path) == recorded
        assert stat.S_IMODE(again.path.stat().st_mode) == 0o600
        assert UploadState("http://s", "MOSAIC-0002", tmp_path / "config").get(path) is None
        again.forget_upload(path)
        forgotten = UploadState("http://s", "MOSAIC-0001", tmp_path / "config").get(path)
        assert forgotten is not None
        assert forgotten.upload_url is None
        path.write_bytes(b"@r\nAC\n+\nII\n")
        assert UploadState("http://s", "MOSAIC-0001", tmp_path / "config").get(path) is None


class TestExitCodes:
    def _results(self, *statuses: str) -> list[FileResult]:
        return [FileResult(Path("x"), "S", "R1", 1, status) for status in statuses]

    def test_failed_beats_invalid_beats_done(self) -> None:
        assert exit_code(self._results("valid", "skipped")) == 0
        assert exit_code(self._results("valid", "invalid", "skipped")) == 3
        assert exit_code(self._results("invalid", "failed")) == 1

    def test_usage_errors_are_2(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as raised:
            cli.main(["upload", "MOSAIC-0001"])  # no PATH
        assert raised.value.code == 2
        with pytest.raises(SystemExit) as raised:
            cli.main(["upload", "MOSAIC-0001", "x", "--jobs", "0"])
        assert raised.value.code == 2
        assert cli.main([]) == 2

    def test_no_server_is_a_usage_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("MOSAIC_CONFIG_DIR", str(tmp_path))
        monkeypatch.delenv("MOSAIC_URL", raising=False)
        assert cli.main(["whoami", "--json"]) == 2
        error = json.loads(capsys.readouterr().out)["error"]
        assert "--url" in error["message"]
        assert error["exit_code"] == 2

    def test_an_unreachable_server_fails_with_1(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("MOSAIC_CONFIG_DIR", str(tmp_path))
        monkeypatch.setenv("MOSAIC_TOKEN", "x")
        # submit: a POST, not retried (a GET would be, with back-off, for 15 s)
        code = cli.main(["submit", "MOSAIC-0001", "--url", "http://127.0.0.1:9", "--json"])
        assert code == 1
        assert "cannot reach" in json.loads(capsys.readouterr().out)["error"]["message"]


def _jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256'})}.{part(claims)}.c2ln"


class TestTokenRefresh:
    def test_expiry_is_read_from_the_token(self) -> None:
        assert token_expiry(_jwt({"exp": 1234})) == 1234
        assert token_expiry("not-a-jwt") is None

    def _stored(self, user: User, tmp_path: Path) -> tuple[CredentialStore, Login]:
        user.login()
        store = CredentialStore(user.config_dir)
        login = store.get(user.server.url)
        assert login is not None
        return store, login

    def test_an_expired_token_is_refreshed_before_the_request(
        self, user: User, tmp_path: Path
    ) -> None:
        store, login = self._stored(user, tmp_path)
        expired = _jwt({"sub": "x", "exp": int(time.time()) - 10})
        store.put(Login(login.url, login.email, expired, login.refresh_token))
        with Api(user.server.url, store=store) as api:
            assert api.json("GET", "/api/v1/auth/me")["email"] == user.email
        renewed = store.get(user.server.url)
        assert renewed is not None
        assert renewed.access_token != expired
        assert renewed.refresh_token != login.refresh_token  # rotated and saved
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600

    def test_a_refused_token_is_refreshed_once_and_the_request_retried(
        self, user: User, tmp_path: Path
    ) -> None:
        store, login = self._stored(user, tmp_path)
        head, payload, signature = login.access_token.split(".")
        tampered = f"{head}.{payload}.{signature[::-1]}"
        store.put(Login(login.url, login.email, tampered, login.refresh_token))
        with Api(user.server.url, store=store) as api:
            assert api.json("GET", "/api/v1/auth/me")["email"] == user.email
        renewed = store.get(user.server.url)
        assert renewed is not None
        assert renewed.refresh_token != login.refresh_token
        # The old refresh token was spent: presenting it again is refused by the server.
        reused = httpx.post(
            f"{user.server.url}/api/v1/auth/refresh", json={"refresh_token": login.refresh_token}
        )
        assert reused.status_code == 401

    def test_a_session_that_cannot_be_refreshed_asks_for_login(self, user: User) -> None:
        user.login()
        store = CredentialStore(user.config_dir)
        login = store.get(user.server.url)
        assert login is not None
        expired = _jwt({"sub": "x", "exp": int(time.time()) - 10})
        store.put(Login(login.url, login.email, expired, "not-a-refresh-token"))
        result = user.run("whoami")
        assert result.code == 2
        assert "mosaic login" in result.stderr


class TestPages:
    """``Api.pages`` walks a list to its end; an inexact total (a search that stopped
    counting) is a lower bound, so the walk goes on until a page is short."""

    @staticmethod
    def _walk(monkeypatch: pytest.MonkeyPatch, matches: int, total: int, exact: bool) -> list[int]:
        asked: list[int] = []

        def answer(method: str, path: str, **kwargs: object) -> dict[str, object]:
            params = kwargs["params"]
            assert isinstance(params, dict)
            page, size = params["page"], params["page_size"]
            asked.append(page)
            items = [{"n": n} for n in range((page - 1) * size, min(page * size, matches))]
            return {
                "items": items,
                "total": total,
                "page": page,
                "page_size": size,
                "total_exact": exact,
            }

        with Api("http://127.0.0.1:9") as api:
            monkeypatch.setattr(api, "json", answer)
            assert list(api.pages("/api/v1/studies")) == [{"n": n} for n in range(matches)]
        return asked

    def test_an_exact_total_ends_the_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self._walk(monkeypatch, 200, 200, True) == [1, 2]

    def test_an_inexact_total_is_a_lower_bound(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self._walk(monkeypatch, 250, 100, False) == [1, 2, 3]
        assert self._walk(monkeypatch, 200, 100, False) == [1, 2, 3]  # the 3rd is empty

    def test_a_short_page_ends_the_walk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert self._walk(monkeypatch, 150, 150, True) == [1, 2]


class TestPackage:
    def test_imports_only_the_standard_library_httpx_and_rich(self) -> None:
        allowed = set(sys.stdlib_module_names) | {"httpx", "rich", "mosaic_client"}
        for path in CLIENT_SOURCE.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    assert name.split(".")[0] in allowed, f"{path.name} imports {name}"

    def test_the_installed_client_runs_without_the_server_on_the_path(
        self, tmp_path: Path, mosaic_installed: Path
    ) -> None:
        probe = (
            "import sys, mosaic_client.cli, mosaic_client.uploads, mosaic_client.downloads\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'src', 'fastapi', 'sqlalchemy', 'pydantic', 'starlette', 'uvicorn'})\n"
            "print(mosaic_client.__file__); print(bad)\n"
        )
        done = subprocess.run(
            [sys.executable, "-I", "-c", probe],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": os.environ.get("PATH", "")},
        )
        location, bad = done.stdout.splitlines()
        assert "site-packages" in location  # the installed copy, not the source tree
        assert bad == "[]"

    def test_password_from_stdin_never_reaches_the_output(self, user: User) -> None:
        result = user.run("login", "--email", user.email, stdin=PASSWORD + "\n")
        assert result.code == 0
        assert PASSWORD not in result.stdout + result.stderr
        assert PASSWORD not in (user.config_dir / "credentials.json").read_text()
