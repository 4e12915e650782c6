"""Sample sheets through the HTTP API: template, checklist, validate / append / replace with
row-and-column reports, atomicity, limits, the annotated-sheet report, and export that imports
back unchanged."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.sampleFileUpload.config import SheetConfig
from src.sampleFileUpload.sheets import validate as validate_module
from src.study import bulk, counters
from src.study.models import Sample, Study, StudyEvent
from tests.study.factories import create_study

SHEETS = Path(__file__).resolve().parents[2] / "data" / "sheets"
HEADER = "Sample_ID,Organism,Sex,Tissue\n"


def sheet_url(study: Study) -> str:
    return f"/api/v1/studies/{study.accession}/sample-sheet"


async def upload(
    client: httpx.AsyncClient,
    study: Study,
    headers: dict[str, str],
    content: bytes | str,
    *,
    filename: str = "samples.csv",
    **params: str,
) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    return await client.post(
        sheet_url(study), headers=headers, params=params, files={"file": (filename, data)}
    )


def xlsx_cells(data: bytes) -> list[list[object]]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return [list(row) for row in book.active.iter_rows(values_only=True)]


def same_sheet(first: bytes, second: bytes, format: str) -> bool:
    """Text sheets must match byte for byte; workbooks cell for cell (zip metadata differs)."""
    if format == "xlsx":
        return xlsx_cells(first) == xlsx_cells(second)
    return first == second


async def sample_count(session: AsyncSession, study: Study) -> int:
    return (
        await session.execute(select(func.count(Sample.id)).where(Sample.study_id == study.id))
    ).scalar_one()


class TestTemplateAndChecklist:
    @pytest.mark.parametrize("format", ["csv", "tsv", "xlsx"])
    async def test_template_has_the_original_headers_and_one_example(
        self, client: httpx.AsyncClient, format: str
    ) -> None:
        response = await client.get("/api/v1/sample-sheets/template", params={"format": format})
        assert response.status_code == 200
        assert "attachment" in response.headers["content-disposition"]
        if format == "xlsx":
            sheet = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True).active
            rows = [list(row) for row in sheet.iter_rows(values_only=True)]
        else:
            delimiter = "," if format == "csv" else "\t"
            text = response.content.decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        assert rows[0][:3] == ["Sample", "Sample_ID", "SampleGroup"]
        assert "Biological_Repeat" in rows[0]
        assert len(rows) == 2

    async def test_unknown_template_format_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/v1/sample-sheets/template", params={"format": "pdf"})
        assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")

    async def test_checklist_lists_every_field(self, client: httpx.AsyncClient) -> None:
        fields = (await client.get("/api/v1/sample-sheets/checklist")).json()
        by_name = {field["name"]: field for field in fields}
        assert by_name["sample_id"]["required"] is True
        assert by_name["organism"]["required"] is True
        assert "female" in by_name["sex"]["allowed_values"]
        assert by_name["date_sample_prep"]["header"] == "Date_Sample_Prep"


class TestValidate:
    async def test_validate_reports_rows_and_columns_and_saves_nothing(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        response = await upload(
            client,
            study,
            headers,
            HEADER + "S1,mus musculus,F,liver\nS2,,robot,liver\n",
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["valid"] is False
        assert report["mode"] == "validate"
        assert report["row_count"] == 2
        errors = {(e["row"], e["column"], e["code"]) for e in report["errors"]}
        assert (3, "Organism", "REQUIRED") in errors
        assert (3, "Sex", "INVALID_SEX") in errors
        warnings = {(w["row"], w["column"], w["code"]) for w in report["warnings"]}
        assert (2, "Sex", "NORMALISED") in warnings
        assert await sample_count(session, study) == 0

    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("empty.csv", "EMPTY_FILE"),
            ("header_only.csv", "NO_DATA_ROWS"),
            ("duplicate_headers.csv", "DUPLICATE_HEADER"),
            ("ragged.csv", "RAGGED_ROW"),
            ("binary.csv", "BINARY_FILE"),
            ("unknown.dat", "UNKNOWN_FORMAT"),
            ("not_zip.xlsx", "INVALID_XLSX"),
            ("formula.xlsx", "FORMULA_CELL"),
            ("invalid.json", "INVALID_JSON"),
            ("not_a_list.json", "JSON_NOT_A_LIST"),
            ("nested.json", "NESTED_VALUE"),
            ("zip_bomb.xlsx", "ZIP_BOMB"),
        ],
    )
    async def test_bad_files_get_their_code_never_a_500(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
        name: str,
        code: str,
    ) -> None:
        data = (SHEETS / name).read_bytes()
        response = await upload(client, study, headers, data, filename=name)
        assert response.status_code == 200, response.text
        assert code in {e["code"] for e in response.json()["errors"]}

    @pytest.mark.parametrize("mode", ["validate", "append"])
    async def test_a_lone_surrogate_is_reported_never_a_500(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study, mode: str
    ) -> None:
        # JSON's "\\ud800" escape reads as a lone surrogate, which no UTF-8 body can carry.
        sheet = b'[{"Sample_ID": "S1\\ud800", "Organism": "mouse", "N\\udc00ote": "x"}]'
        response = await upload(client, study, headers, sheet, filename="s.json", mode=mode)
        assert response.status_code == (200 if mode == "validate" else 422), response.text
        body = response.json()
        report = body if mode == "validate" else body["report"]
        errors = {(e["column"], e["code"], e["value"]) for e in report["errors"]}
        assert ("Sample_ID", "INVALID_SAMPLE_ID", "S1\ufffd") in errors
        assert ("N\ufffdote", "CONTROL_CHARACTER", "x") in errors

    async def test_the_report_is_the_json_the_app_writes_elsewhere(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        sheet = HEADER + "S1,souris \u00e9t\u00e9 \U0001f42d,F,foie\tgras\nS2,mouse,robot,\n"
        response = await upload(client, study, headers, sheet)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.content == JSONResponse(response.json()).body

    async def test_unknown_format_override_is_422(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await upload(client, study, headers, HEADER, format="docx")
        assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR")

    async def test_missing_file_field_is_422(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await client.post(sheet_url(study), headers=headers, data={"x": "1"})
        assert response.status_code == 422
        assert response.json()["code"] == "EMPTY_FILE"


class TestApply:
    async def test_append_creates_samples_and_refuses_existing_ids(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        first = await upload(client, study, headers, HEADER + "S1,Mus musculus,,\n", mode="append")
        assert first.status_code == 201, first.text
        assert first.json()["created"] == 1
        again = await upload(
            client, study, headers, HEADER + "s1,Mus musculus,,\nS2,Mus musculus,,\n", mode="append"
        )
        assert again.status_code == 422
        body = again.json()
        assert body["code"] == "SHEET_INVALID"
        assert {(e["row"], e["code"]) for e in body["errors"]} == {(2, "SAMPLE_ID_TAKEN")}
        assert body["report"]["valid"] is False
        assert await sample_count(session, study) == 1
        event = await session.scalar(
            select(StudyEvent.detail).where(
                StudyEvent.study_id == study.id, StudyEvent.action == "sheet.imported"
            )
        )
        assert event is not None
        assert event["created"] == 1

    async def test_replace_swaps_all_samples(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        await upload(client, study, headers, HEADER + "A,x,,\nB,x,,\n", mode="append")
        response = await upload(client, study, headers, HEADER + "C,x,,\n", mode="replace")
        assert response.status_code == 201, response.text
        assert (response.json()["created"], response.json()["replaced"]) == (1, 2)
        ids = (
            await session.scalars(select(Sample.sample_id).where(Sample.study_id == study.id))
        ).all()
        assert list(ids) == ["C"]

    async def test_one_bad_row_changes_nothing(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        await upload(client, study, headers, HEADER + "KEEP,x,,\n", mode="append")
        rows = "".join(f"N{n},Mus musculus,female,liver\n" for n in range(200))
        response = await upload(
            client, study, headers, HEADER + rows + "BAD ID,Mus musculus,,\n", mode="replace"
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["row"] == 202
        ids = (
            await session.scalars(select(Sample.sample_id).where(Sample.study_id == study.id))
        ).all()
        assert list(ids) == ["KEEP"]

    async def test_only_drafts_take_sheets(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        owner: User,
    ) -> None:
        from src.study.constants import StudyStatus

        locked = await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
        response = await upload(client, locked, headers, HEADER + "S1,x,,\n", mode="append")
        assert (response.status_code, response.json()["code"]) == (409, "STUDY_LOCKED")


def spy_on_inserts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows of each bulk insert from now on."""
    inserted: list[int] = []
    insert_rows = bulk.insert_rows

    async def counted(*args: Any, **kwargs: Any) -> int:
        inserted.append(await insert_rows(*args, **kwargs))
        return inserted[-1]

    monkeypatch.setattr(bulk, "insert_rows", counted)
    return inserted


class TestChunkedAppend:
    """An append checks the sheet a chunk of rows at a time and inserts each chunk while the
    next is checked (here two rows a chunk): all rows or none, counted once, and the report of
    a refused sheet is the whole sheet's."""

    @pytest.fixture(autouse=True)
    def two_rows_a_chunk(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(validate_module, "_CHUNK_ROWS", 2)

    async def kept_and_stored(self, session: AsyncSession, study: Study) -> tuple[int, list[str]]:
        session.expunge_all()
        kept = await session.scalar(select(Study.sample_count).where(Study.id == study.id))
        ids = await session.scalars(
            select(Sample.sample_id).where(Sample.study_id == study.id).order_by(Sample.created_at)
        )
        assert await counters.find_drift(session) == []
        return kept or 0, list(ids.all())

    async def test_every_chunk_is_inserted_in_the_sheet_s_order_and_counted_once(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        await upload(client, study, headers, HEADER + "KEEP,x,,\n", mode="append")
        names = [f"N{n}" for n in range(7, 0, -1)]
        rows = "".join(f"{name},Mus musculus,female,liver {name}\n" for name in names)
        response = await upload(client, study, headers, HEADER + rows, mode="append")
        assert response.status_code == 201, response.text
        assert response.json()["created"] == 7
        assert [s["sample_id"] for s in response.json()["samples"]] == names
        assert await self.kept_and_stored(session, study) == (8, ["KEEP", *names])

    @pytest.mark.parametrize("report", [None, "csv"])
    async def test_an_error_in_the_last_chunk_leaves_the_study_unchanged(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
        report: str | None,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        # With ?report= the route answers the 422 itself and the request's transaction commits:
        # the chunks inserted before the bad row are undone by the import, not by the request.
        await upload(client, study, headers, HEADER + "KEEP,x,,\n", mode="append")
        inserted = spy_on_inserts(monkeypatch)
        rows = "".join(f"N{n},Mus musculus,female,liver {n}\n" for n in range(6))
        sheet = HEADER + rows + "BAD ID,Mus musculus,,\nN9,Mus musculus,unknown sex,\n"
        options = {"report": report} if report else {}
        response = await upload(client, study, headers, sheet, mode="append", **options)
        assert response.status_code == 422
        assert inserted == [2, 2, 2]  # the first three chunks went in before the fourth's check
        assert await self.kept_and_stored(session, study) == (1, ["KEEP"])
        if report:
            return
        validated = await upload(client, study, headers, sheet)
        assert response.json()["report"] == {**validated.json(), "mode": "append"}
        assert [(e["row"], e["code"]) for e in response.json()["errors"]] == [
            (8, "INVALID_SAMPLE_ID"),
            (9, "INVALID_SEX"),
        ]

    async def test_a_sample_id_repeated_in_a_later_chunk_inserts_nothing(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        inserted = spy_on_inserts(monkeypatch)
        rows = "".join(f"N{n},Mus musculus,female,liver {n}\n" for n in range(6))
        response = await upload(
            client, study, headers, HEADER + rows + "n1,Mus musculus,male,\n", mode="append"
        )
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert (error["row"], error["column"], error["code"]) == (
            8,
            "Sample_ID",
            "DUPLICATE_SAMPLE_ID",
        )
        assert "row 3" in error["message"]
        assert inserted == [2, 2, 2]
        assert await self.kept_and_stored(session, study) == (0, [])

    async def test_a_taken_sample_id_in_a_later_chunk_inserts_nothing(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await upload(client, study, headers, HEADER + "KEEP,x,,\nT5,x,,\n", mode="append")
        inserted = spy_on_inserts(monkeypatch)
        rows = "".join(f"N{n},Mus musculus,female,liver {n}\n" for n in range(5))
        response = await upload(
            client, study, headers, HEADER + rows + "t5,Mus musculus,,\n", mode="append"
        )
        assert response.status_code == 422
        assert [(e["row"], e["code"]) for e in response.json()["errors"]] == [
            (7, "SAMPLE_ID_TAKEN")
        ]
        assert inserted == [2, 2]
        assert [s["sample_id"] for s in response.json()["report"]["samples"]] == [
            *(f"N{n}" for n in range(5)),
            "t5",
        ]
        assert await self.kept_and_stored(session, study) == (2, ["KEEP", "T5"])


class TestLimits:
    async def test_over_the_byte_limit_is_413(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        app.state.sheet_config = SheetConfig(max_bytes=2048, max_rows=10)
        big = HEADER + "".join(f"S{n},Mus musculus,,\n" for n in range(400))
        response = await upload(client, study, headers, big)
        assert response.status_code == 413
        assert response.json()["code"] == "SHEET_TOO_LARGE"

    async def test_over_the_row_limit_is_an_error(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        app.state.sheet_config = SheetConfig(max_bytes=1 << 20, max_rows=3)
        rows = HEADER + "".join(f"S{n},Mus musculus,,\n" for n in range(5))
        response = await upload(client, study, headers, rows, mode="append")
        assert response.status_code == 422
        body = response.json()
        assert body["code"] == "SHEET_INVALID"
        assert "TOO_MANY_ROWS" in {error["code"] for error in body["errors"]}


class TestAnnotatedReport:
    async def test_the_users_sheet_comes_back_with_an_errors_column(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await upload(
            client, study, headers, HEADER + "S1,x,,\nbad id,x,,\n", report="csv"
        )
        assert response.status_code == 200
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0][:4] == ["Sample_ID", "Organism", "Sex", "Tissue"]
        errors_column = rows[0].index("errors")
        assert rows[1][errors_column] == ""
        assert "INVALID_SAMPLE_ID" in rows[2][errors_column]

    async def test_a_refused_apply_can_answer_with_the_annotated_sheet(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await upload(
            client, study, headers, HEADER + "bad id,x,,\n", mode="append", report="xlsx"
        )
        assert response.status_code == 422
        assert "INVALID_SAMPLE_ID" in str(xlsx_cells(response.content)[1])


class TestExport:
    @pytest.mark.parametrize("format", ["csv", "tsv", "json", "xlsx"])
    async def test_export_imports_back_unchanged(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
        format: str,
    ) -> None:
        await upload(
            client,
            study,
            headers,
            "Sample_ID,Organism,Sex,Date_Sample_Prep,Biological_Repeat,Notes\n"
            "S1,Mus musculus,female,2021-04,3,=SUM(A1)\nS2,Homo sapiens,,2020,,+plus\n",
            mode="append",
        )
        url = f"/api/v1/studies/{study.accession}/samples/export"
        first = await client.get(url, headers=headers, params={"format": format})
        assert first.status_code == 200
        if format in {"csv", "tsv"}:
            assert b"'=SUM(A1)" in first.content  # neutralised, not a formula
        reimport = await upload(
            client, study, headers, first.content, filename=f"x.{format}", mode="replace"
        )
        assert reimport.status_code == 201, reimport.text
        second = await client.get(url, headers=headers, params={"format": format})
        assert same_sheet(first.content, second.content, format)
        if format == "json":
            samples = json.loads(first.content)
            assert samples[0]["attributes"] == {"Notes": "=SUM(A1)"}

    async def test_private_study_export_is_404_for_strangers(
        self, client: httpx.AsyncClient, study: Study
    ) -> None:
        response = await client.get(f"/api/v1/studies/{study.accession}/samples/export")
        assert (response.status_code, response.json()["code"]) == (404, "STUDY_NOT_FOUND")


sample_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
free_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029"),
    max_size=20,
).map(str.strip)
rows_strategy = st.lists(
    st.fixed_dictionaries(
        {
            "sample_id": sample_ids,
            "organism": st.sampled_from(["Mus musculus", "Homo sapiens", "Danio rerio"]),
            "tissue": free_text,
            "sex": st.sampled_from(["", "female", "male", "not collected"]),
            "description": free_text,
        }
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda row: row["sample_id"].casefold(),
)


@given(rows=rows_strategy, format=st.sampled_from(["csv", "tsv", "json", "xlsx"]))
@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_export_import_export_is_stable(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    study: Study,
    rows: list[dict[str, str]],
    format: str,
) -> None:
    """Property: whatever valid samples a study holds, export -> import (replace) -> export gives
    the same sheet."""
    response = await client.post(
        f"/api/v1/studies/{study.accession}/sample-sheet",
        headers=headers,
        params={"mode": "replace", "format": "json"},
        files={"file": ("rows.json", json.dumps(rows).encode())},
    )
    assert response.status_code == 201, response.text
    url = f"/api/v1/studies/{study.accession}/samples/export"
    first = await client.get(url, headers=headers, params={"format": format})
    again = await upload(
        client, study, headers, first.content, filename=f"x.{format}", mode="replace"
    )
    assert again.status_code == 201, again.text
    second = await client.get(url, headers=headers, params={"format": format})
    assert same_sheet(first.content, second.content, format)
