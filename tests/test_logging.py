"""Log lines: one access line per request with the fields operators grep for; JSON when asked."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from src.app import create_app
from src.logging import (
    ConsoleFormatter,
    ContextFilter,
    JsonFormatter,
    configure_logging,
    request_id_var,
)


def _format(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    ContextFilter().filter(record)
    return formatter.format(record)


class TestAccessLog:
    async def test_one_line_per_request_with_method_path_status_duration_and_request_id(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="mosaic.access"):
            await client.get("/no/such/route", headers={"X-Request-ID": "req-42"})
        lines = [r for r in caplog.records if r.name == "mosaic.access"]
        assert len(lines) == 1
        record = lines[0]
        assert record.__dict__["method"] == "GET"
        assert record.__dict__["path"] == "/no/such/route"
        assert record.__dict__["status"] == 404
        assert record.__dict__["duration_ms"] >= 0
        assert record.__dict__["request_id"] == "req-42"


class TestFormatters:
    def _record(self) -> logging.LogRecord:
        record = logging.LogRecord(
            "mosaic.access", logging.INFO, __file__, 1, "GET / 200", (), None
        )
        record.status = 200
        record.duration_ms = 1.5
        return record

    def test_json_lines_carry_time_level_and_context(self) -> None:
        token = request_id_var.set("rid-1")
        try:
            line = _format(JsonFormatter(), self._record())
        finally:
            request_id_var.reset(token)
        entry = json.loads(line)
        assert entry["level"] == "INFO"
        assert entry["message"] == "GET / 200"
        assert entry["request_id"] == "rid-1"
        assert entry["status"] == 200
        assert entry["duration_ms"] == 1.5
        assert entry["time"].endswith("+00:00")
        assert "\n" not in line

    def test_console_lines_are_readable(self) -> None:
        line = _format(ConsoleFormatter(), self._record())
        assert "INFO" in line
        assert "GET / 200" in line
        assert "status=200" in line

    def test_configure_logging_json_writes_to_stdout(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        root = logging.getLogger()
        saved_handlers, saved_level = list(root.handlers), root.level
        try:
            configure_logging("INFO", "json")
            logging.getLogger("mosaic.test").info("hello", extra={"user_id": "u1"})
            out = capsys.readouterr().out.strip().splitlines()[-1]
        finally:
            root.handlers[:] = saved_handlers
            root.setLevel(saved_level)
        entry = json.loads(out)
        assert entry["message"] == "hello"
        assert entry["user_id"] == "u1"


def test_each_worker_sets_up_logging_from_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn's factory starts every worker with ``create_app()``: that must configure logging,
    or a multi-worker server writes no access lines at all."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        create_app()
        formatters = [type(handler.formatter) for handler in root.handlers]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    assert formatters == [JsonFormatter]
