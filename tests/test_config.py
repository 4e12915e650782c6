"""Settings: safe defaults for a developer, refusal of unsafe production settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from main import main as cli_main
from src.auth.config import AuthConfig
from src.config import Settings
from src.sampleFileUpload.config import FilesConfig, SheetConfig
from src.study.config import StudyConfig
from tests.conftest import environment_names, settings_classes
from tests.lifespan import NO_PERIODIC_JOBS


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


class TestDefaults:
    def test_nothing_set_means_sqlite_and_local_storage_under_data(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.chdir(tmp_path)
        for name in ("DATABASE_URL", "DATA_DIR", "HOST", "PORT", "STORAGE_BACKEND", "LOG_FORMAT"):
            monkeypatch.delenv(name, raising=False)
        settings = make()
        assert settings.effective_database_url == "sqlite+aiosqlite:///data/mosaic.db"
        assert settings.storage_backend == "local"
        assert (settings.host, settings.port) == ("127.0.0.1", 8000)
        assert settings.log_format == "console"
        assert settings.cors_origins == []

    def test_development_secret_is_generated_once_and_kept(self, tmp_path: Path) -> None:
        first = make(data_dir=tmp_path).jwt_secret
        second = make(data_dir=tmp_path).jwt_secret
        assert first == second
        assert len(first) >= 32
        assert (tmp_path / ".secret_key").stat().st_mode & 0o077 == 0

    def test_cors_origins_from_a_comma_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
        assert make().cors_origins == ["https://a.example", "https://b.example"]


class TestProduction:
    @pytest.mark.parametrize("secret", ["", "changeme", "secret", "short-but-random"])
    def test_placeholder_or_weak_secret_refuses_to_start(self, secret: str) -> None:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            make(environment="production", secret_key=secret)

    def test_a_real_secret_is_accepted(self) -> None:
        settings = make(environment="production", secret_key="x" * 48)
        assert settings.jwt_secret == "x" * 48

    def test_the_cli_stops_with_a_clear_message(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("SECRET_KEY", "changeme")
        with pytest.raises(SystemExit) as stopped:
            cli_main(["migrate"])
        assert stopped.value.code == 2
        assert "SECRET_KEY" in capsys.readouterr().err


@pytest.mark.parametrize(
    "config_class", [Settings, AuthConfig, StudyConfig, FilesConfig, SheetConfig]
)
def test_every_setting_is_documented_in_env_sample(config_class: type[BaseSettings]) -> None:
    sample = (Path(__file__).resolve().parent.parent / ".env.sample").read_text()
    prefix = config_class.model_config.get("env_prefix") or ""
    missing = [
        (prefix + name).upper()
        for name in config_class.model_fields
        if f"\n{(prefix + name).upper()}=" not in sample
    ]
    assert missing == []


HOSTILE_ENV = """\
ENVIRONMENT=production
SECRET_KEY=short
DATABASE_URL=postgresql+asyncpg://nobody@203.0.113.1/nowhere
LOG_LEVEL=ERROR
STORAGE_BACKEND=s3
REVIEW_REQUIRED=false
MAX_UPLOAD_BYTES=1
SHEET_MAX_ROWS=1
ACCESS_TOKEN_MINUTES=1
"""


class TestTheSuiteControlsConfiguration:
    """A developer's .env (or shell) must not change what the tests run against."""

    @pytest.fixture
    def hostile_env_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A working directory whose .env would break every test that read it."""
        workdir = tmp_path / "checkout"
        workdir.mkdir()
        (workdir / ".env").write_text(HOSTILE_ENV)
        monkeypatch.chdir(workdir)
        return workdir / ".env"

    def test_the_env_file_would_change_settings_if_read(self, hostile_env_file: Path) -> None:
        with pytest.raises(ValidationError, match="SECRET_KEY"):
            Settings(_env_file=hostile_env_file)
        assert FilesConfig(_env_file=hostile_env_file).max_upload_bytes == 1
        assert SheetConfig(_env_file=hostile_env_file).max_rows == 1

    @pytest.mark.usefixtures("hostile_env_file")
    @pytest.mark.parametrize("config_class", [AuthConfig, StudyConfig, FilesConfig, SheetConfig])
    def test_module_settings_ignore_it(self, config_class: type[BaseSettings]) -> None:
        assert config_class() == config_class.model_construct()

    async def test_the_apps_settings_ignore_it(
        self, hostile_env_file: Path, app: FastAPI, settings: Settings
    ) -> None:
        assert (settings.environment, settings.log_level) == ("test", "INFO")
        assert settings.storage_backend == "local"
        assert app.state.study_config == StudyConfig.model_construct()
        # The suite's app runs no periodic jobs (tests/lifespan.py); the rest is the defaults.
        expected_files = FilesConfig.model_construct().model_copy(update=NO_PERIODIC_JOBS)
        assert app.state.files_config == expected_files
        assert app.state.sheet_config == SheetConfig.model_construct()
        assert Settings() == Settings.model_construct()

    def test_the_apps_variables_are_not_inherited_from_the_shell(self) -> None:
        read = set().union(*(environment_names(cls) for cls in settings_classes()))
        assert {Settings, AuthConfig, StudyConfig, FilesConfig, SheetConfig} <= set(
            settings_classes()
        )
        assert read & {name.upper() for name in os.environ} == set()
