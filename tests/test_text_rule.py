"""The one text rule at the edge (src/text.py): control characters in a query or path
parameter or in a JSON body's strings are 422 VALIDATION_ERROR naming where, on both databases;
tab and line breaks only in multi-line text. A driver DataError still reaching the handler is
422 INVALID_VALUE, logged, never 500."""

from __future__ import annotations

import base64
import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.dependencies import SessionDep
from src.study.models import Study
from src.text import MULTI_LINE, OWN_RULE, TextKind, refused_character
from tests.factories import auth_headers, create_user
from tests.study.factories import create_study

API = "/api/v1"


def assert_refused_at(response: httpx.Response, *loc: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert body["request_id"]
    errors = [error for error in body["errors"] if error["loc"] == list(loc)]
    assert errors, body["errors"]
    assert errors[0]["code"] == "control_character"
    assert "control character" in errors[0]["message"]


class TestRule:
    @pytest.mark.parametrize("value", ["a\x00b", "\x01", "a\x1fb", "a\x7fb", "\ud800", "a\tb"])
    def test_one_line_refuses_controls(self, value: str) -> None:
        assert refused_character(value) is not None

    @pytest.mark.parametrize("value", ["a b", "é ü 样本 🧬", "", "\u200b", "x" * 1000])
    def test_plain_text_passes(self, value: str) -> None:
        for kind in TextKind:
            assert refused_character(value, kind) is None

    @pytest.mark.parametrize("value", ["a\tb", "a\nb", "a\r\nb"])
    def test_multi_line_keeps_tab_and_line_breaks(self, value: str) -> None:
        assert refused_character(value, MULTI_LINE) is None
        assert refused_character(value) is not None

    @pytest.mark.parametrize("value", ["a\x00b", "a\x0bb", "a\x7fb", "\udfff"])
    def test_multi_line_refuses_other_controls(self, value: str) -> None:
        assert refused_character(value, MULTI_LINE) is not None

    def test_own_rule_refuses_only_what_is_not_text(self) -> None:
        assert refused_character("a\x00\tb", OWN_RULE) is None
        assert refused_character("a\ud800", OWN_RULE) is not None

    def test_the_message_names_the_character(self) -> None:
        assert "U+0000" in (refused_character("a\x00") or "")
        assert "U+007F" in (refused_character("a\x7f") or "")


class TestParameters:
    @pytest.mark.parametrize("name", ["q", "organism"])
    @pytest.mark.parametrize("value", ["a\x00b", "a\x01b", "a\nb", "a\x7fb"])
    async def test_study_search_is_422(
        self, client: httpx.AsyncClient, name: str, value: str
    ) -> None:
        response = await client.get(f"{API}/studies", params={name: value})
        assert_refused_at(response, "query", name)

    async def test_sample_search_is_422(self, client: httpx.AsyncClient, study: Study) -> None:
        for name in ("q", "organism", "sex"):
            response = await client.get(
                f"{API}/studies/{study.accession}/samples", params={name: "a\x00b"}
            )
            assert_refused_at(response, "query", name)

    async def test_nul_in_a_study_key_is_422(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        for caller in ({}, headers):
            response = await client.get(f"{API}/studies/MOSAIC%00", headers=caller)
            assert_refused_at(response, "path", "study")

    async def test_nul_in_a_sample_id_is_422(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str]
    ) -> None:
        response = await client.get(
            f"{API}/studies/{study.accession}/samples/S%001", headers=headers
        )
        assert_refused_at(response, "path", "sample_id")

    async def test_user_search_is_422(
        self, client: httpx.AsyncClient, session: AsyncSession, settings: Settings
    ) -> None:
        admin = await create_user(session, role="admin")
        response = await client.get(
            f"{API}/auth/users", params={"q": "a\x00b"}, headers=auth_headers(settings, admin)
        )
        assert_refused_at(response, "query", "q")

    async def test_undeclared_parameters_keep_the_rule_too(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/studies", params={"unknown\x00": "x"})
        assert_refused_at(response, "query", "unknown\x00")

    async def test_a_file_name_keeps_its_own_rule(
        self, client: httpx.AsyncClient, session: AsyncSession, owner: User, headers: dict[str, str]
    ) -> None:
        study = await create_study(session, owner=owner, samples=1)
        url = f"{API}/studies/{study.accession}/samples/S1/files/a%00b.fastq"
        response = await client.put(url, headers=headers, content=b"")
        assert response.status_code == 422
        assert response.json()["code"] == "INVALID_FILENAME"

    async def test_plain_unicode_passes(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"{API}/studies", params={"q": "样本 é 🧬"})
        assert response.status_code == 200


class TestBodies:
    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"title": "a\x00b"}, ("body", "title")),
            ({"title": "a\nb"}, ("body", "title")),
            ({"title": "t", "authors": ["Ada", "B\x00"]}, ("body", "authors")),
            ({"title": "t", "description": "a\x00b"}, ("body", "description")),
            ({"title": "t", "description": "a\x1bb"}, ("body", "description")),
        ],
    )
    async def test_study_text_is_422(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        body: dict[str, Any],
        loc: tuple[str, ...],
    ) -> None:
        assert_refused_at(await client.post(f"{API}/studies", json=body, headers=headers), *loc)

    async def test_a_description_is_multi_line(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        body = {"title": "t", "description": "line one\r\n\tline two\nthree"}
        response = await client.post(f"{API}/studies", json=body, headers=headers)
        assert response.status_code == 201, response.text
        assert response.json()["description"] == "line one\r\n\tline two\nthree"

    async def test_an_update_keeps_the_rule(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str]
    ) -> None:
        url = f"{API}/studies/{study.accession}"
        assert_refused_at(
            await client.patch(url, json={"title": "a\x00"}, headers=headers), "body", "title"
        )

    async def test_full_name_is_422(self, client: httpx.AsyncClient) -> None:
        body = {
            "email": "nul@example.org",
            "password": "correct-horse-battery",
            "full_name": "a\x00",
        }
        response = await client.post(f"{API}/auth/register", json=body)
        assert_refused_at(response, "body", "full_name")

    async def test_an_escaped_surrogate_is_422(
        self, client: httpx.AsyncClient, headers: dict[str, str]
    ) -> None:
        raw = b'{"title": "a\\ud800b"}'
        response = await client.post(
            f"{API}/studies", content=raw, headers={**headers, "Content-Type": "application/json"}
        )
        # pydantic itself refuses an unpaired surrogate (string_unicode).
        assert response.status_code == 422
        assert ["body", "title"] in [error["loc"] for error in response.json()["errors"]]

    async def test_sample_fields_are_the_checklists(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str]
    ) -> None:
        url = f"{API}/studies/{study.accession}/samples"
        for body in (
            {"sample_id": "S9", "organism": "Mus musculus", "tissue": "a\x00b"},
            {"sample_id": "S9", "organism": "Mus musculus", "attributes": {"k\x00": "v"}},
            {"sample_id": "S9", "organism": "Mus musculus", "attributes": {"k": "v\x00"}},
        ):
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["code"] == "INVALID_SAMPLE", response.text


class TestOtherInputs:
    async def test_nul_in_a_sheet_cell_is_a_sheet_error(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str]
    ) -> None:
        for cell in (b"li\x00ver", b"li\x01ver"):
            sheet = b"Sample_ID,Organism,Tissue\nS1,Mus musculus," + cell + b"\n"
            response = await client.post(
                f"{API}/studies/{study.accession}/sample-sheet",
                params={"mode": "append"},
                files={"file": ("s.csv", sheet, "text/csv")},
                headers=headers,
            )
            assert response.status_code == 422, response.text
            assert response.json()["code"] == "SHEET_INVALID", response.text

    @pytest.mark.parametrize("key", ["study", "sample_id", "read"])
    async def test_nul_in_tus_metadata_is_400(
        self, client: httpx.AsyncClient, study: Study, headers: dict[str, str], key: str
    ) -> None:
        values = {"study": study.accession, "sample_id": "S1", "filename": "a.fastq", key: "a\x00"}
        metadata = ",".join(
            f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in values.items()
        )
        response = await client.post(
            f"{API}/uploads",
            headers={
                **headers,
                "Tus-Resumable": "1.0.0",
                "Upload-Length": "10",
                "Upload-Metadata": metadata,
            },
        )
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["code"] == "INVALID_UPLOAD_REQUEST"
        assert body["errors"][0]["field"] == key


def _add_route(app: FastAPI, path: str, value: str) -> None:
    async def compare(session: SessionDep) -> dict[str, Any]:
        result = await session.execute(text("SELECT :value AS v"), {"value": value})
        return {"value": result.scalar_one()}

    app.add_api_route(path, compare, methods=["GET"])


class TestDriverDataError:
    async def test_a_driver_data_error_is_422_and_logged(
        self, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def refused() -> None:
            raise sa_exc.DataError("SELECT 1", {}, ValueError("invalid byte sequence"))

        app.add_api_route("/test-data-error", refused, methods=["GET"])
        with caplog.at_level(logging.WARNING):
            response = await client.get("/test-data-error")
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "INVALID_VALUE"
        assert body["request_id"]
        logged = [r for r in caplog.records if r.name == "src.exceptions"]
        assert [r.levelno for r in logged] == [logging.WARNING]
        assert "invalid value" in logged[0].getMessage()

    async def test_a_nul_the_database_refuses_is_422_not_500(
        self, app: FastAPI, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        # PostgreSQL refuses NUL in text (SQLSTATE 22021); SQLite stores it.
        _add_route(app, "/test-nul", "a\x00b")
        response = await client.get("/test-nul")
        if session.get_bind().dialect.name == "postgresql":
            assert response.status_code == 422
            assert response.json()["code"] == "INVALID_VALUE"
        else:
            assert response.status_code == 200

    async def test_other_database_errors_stay_500(
        self, app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        async def broken() -> None:
            raise sa_exc.IntegrityError("INSERT", {}, ValueError("duplicate key"))

        app.add_api_route("/test-integrity", broken, methods=["GET"])
        with caplog.at_level(logging.ERROR):
            response = await client.get("/test-integrity")
        assert response.status_code == 500
        assert response.json()["code"] == "INTERNAL_ERROR"
