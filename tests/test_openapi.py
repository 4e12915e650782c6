"""The OpenAPI document as clients and generators read it: ids, tags, security, schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from jsonschema import Draft202012Validator

from src.exceptions import AppError, ComponentStatus, FieldProblem
from src.study.models import Study

ROOT = Path(__file__).resolve().parent.parent
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BEARER: dict[str, list[str]] = {"OAuth2PasswordBearer": []}


def error_classes(base: type[AppError] = AppError) -> Iterator[type[AppError]]:
    for subclass in base.__subclasses__():
        yield subclass
        yield from error_classes(subclass)


def error_statuses(operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each declared error answer (4xx, 5xx) that is the error envelope."""
    for status, response in operation["responses"].items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if status[0] in "45" and schema.get("$ref", "").endswith("/ErrorOut"):
            yield status, response


def example_codes(response: dict[str, Any]) -> set[str]:
    examples = response["content"]["application/json"].get("examples", {})
    return {example["value"]["code"] for example in examples.values()}


@pytest.fixture
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


class TestOperationIds:
    async def test_ids_are_unique_short_snake_case_names(self, document: dict[str, Any]) -> None:
        ids = [operation["operationId"] for operation in operations(document).values()]
        assert len(ids) > 40
        assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
        for operation_id in ids:
            assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", operation_id), operation_id
            assert len(operation_id) <= 32, operation_id
            # No path fragments or methods glued on, as FastAPI's default ids have.
            assert "api_v1" not in operation_id
            assert not re.search(r"__|_(get|post|put|patch|delete)$", operation_id), operation_id

    async def test_ids_are_the_route_functions_names(self, document: dict[str, Any]) -> None:
        by_route = {key: op["operationId"] for key, op in operations(document).items()}
        assert by_route[("GET", "/api/v1/studies")] == "list_studies"
        assert by_route[("POST", "/api/v1/studies")] == "create_study"
        assert by_route[("GET", "/api/v1/auth/me")] == "read_me"
        assert by_route[("GET", "/api/v1/files/{file_id}/download")] == "download_file"
        assert by_route[("HEAD", "/api/v1/files/{file_id}/download")] == "download_file_head"
        assert by_route[("POST", "/api/v1/auth/token")] == "oauth2_token"
        assert by_route[("POST", "/api/v1/auth/refresh")] == "refresh_tokens"
        assert by_route[("GET", "/api/v1/dashboard/summary")] == "dashboard_summary"
        assert by_route[("GET", "/api/v1/dashboard/timeseries")] == "dashboard_timeseries"
        assert by_route[("GET", "/api/v1/dashboard/breakdown")] == "dashboard_breakdown"
        assert by_route[("GET", "/api/v1/stats")] == "public_stats"

    async def test_every_operation_has_a_function_of_its_own(
        self, app: FastAPI, document: dict[str, Any]
    ) -> None:
        """No id is made up afterwards: each is its route function's name, as it reads."""
        by_route = {key: op["operationId"] for key, op in operations(document).items()}
        for route in iter_route_contexts(app.routes):
            if route.path_format is None or not getattr(route, "include_in_schema", False):
                continue
            for method in route.methods or ():
                assert by_route[(method, route.path_format)] == route.name


class TestTags:
    async def test_public_statistics_have_their_own_tag(self, document: dict[str, Any]) -> None:
        assert document["paths"]["/api/v1/stats"]["get"]["tags"] == ["statistics"]
        assert document["paths"]["/api/v1/dashboard/summary"]["get"]["tags"] == ["dashboard"]
        declared = {tag["name"] for tag in document["tags"]}
        used = {tag for operation in operations(document).values() for tag in operation["tags"]}
        assert used <= declared, used - declared
        assert "statistics" in declared


class TestSecurity:
    OPTIONAL = (
        ("GET", "/api/v1/studies"),
        ("GET", "/api/v1/studies/{study}"),
        ("GET", "/api/v1/studies/{study}/samples"),
        ("GET", "/api/v1/studies/{study}/samples/{sample_id}"),
        ("GET", "/api/v1/studies/{study}/samples/{sample_id}/files"),
        ("GET", "/api/v1/files/{file_id}"),
        ("GET", "/api/v1/files/{file_id}/download"),
        ("HEAD", "/api/v1/files/{file_id}/download"),
        ("GET", "/api/v1/studies/{study}/samples/export"),
    )
    PUBLIC = (
        ("GET", "/api/v1/sample-sheets/template"),
        ("GET", "/api/v1/sample-sheets/checklist"),
        ("GET", "/api/v1/stats"),
        ("POST", "/api/v1/auth/login"),
        ("GET", "/healthz"),
    )
    REQUIRED = (
        ("POST", "/api/v1/studies"),
        ("PATCH", "/api/v1/studies/{study}"),
        ("GET", "/api/v1/studies/{study}/members"),
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/auth/users"),
        ("GET", "/api/v1/dashboard/summary"),
        ("PATCH", "/api/v1/uploads/{upload_id}"),
    )

    @pytest.mark.parametrize("key", OPTIONAL)
    async def test_optionally_authenticated_operations_offer_the_empty_alternative(
        self, document: dict[str, Any], key: tuple[str, str]
    ) -> None:
        assert operations(document)[key]["security"] == [BEARER, {}]

    @pytest.mark.parametrize("key", PUBLIC)
    async def test_public_operations_declare_only_the_empty_alternative(
        self, document: dict[str, Any], key: tuple[str, str]
    ) -> None:
        assert operations(document)[key]["security"] == [{}]

    @pytest.mark.parametrize("key", REQUIRED)
    async def test_authenticated_operations_require_the_token(
        self, document: dict[str, Any], key: tuple[str, str]
    ) -> None:
        assert operations(document)[key]["security"] == [BEARER]

    async def test_every_operation_declares_its_security(self, document: dict[str, Any]) -> None:
        for key, operation in operations(document).items():
            assert operation.get("security") in ([BEARER], [BEARER, {}], [{}]), key

    async def test_anonymous_answers_match_the_document(
        self, client: httpx.AsyncClient, document: dict[str, Any]
    ) -> None:
        anonymous = await client.get("/api/v1/studies")
        assert anonymous.status_code == 200
        refused = await client.get("/api/v1/auth/me")
        assert refused.status_code == 401


class TestSchemas:
    async def test_token_form_username_is_an_email(self, document: dict[str, Any]) -> None:
        body = document["paths"]["/api/v1/auth/token"]["post"]["requestBody"]
        reference = body["content"]["application/x-www-form-urlencoded"]["schema"]["$ref"]
        form = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
        assert form["properties"]["username"]["format"] == "email"
        assert form["properties"]["password"]["format"] == "password"
        assert set(form["required"]) == {"username", "password"}

    async def test_new_sample_requires_sample_id_and_organism(
        self, document: dict[str, Any]
    ) -> None:
        sample = document["components"]["schemas"]["SampleCreate"]
        assert {"sample_id", "organism"} <= set(sample["required"])
        for name in ("sample_id", "organism"):
            assert sample["properties"][name]["type"] == "string"
            assert "anyOf" not in sample["properties"][name]
        assert sample["properties"]["tissue"]["anyOf"]  # the others stay nullable


class TestErrorResponses:
    async def test_every_error_status_shows_the_real_codes(self, document: dict[str, Any]) -> None:
        statuses: dict[str, set[int]] = {}
        for error in error_classes():
            statuses.setdefault(str(error.code), set()).add(error.status_code)
        checked = 0
        for (method, path), operation in operations(document).items():
            for status, response in error_statuses(operation):
                codes = example_codes(response)
                assert codes, (method, path, status)
                for code in codes:
                    assert int(status) in statuses.get(code, set()), (method, path, status, code)
                checked += 1
        assert checked > 100

    async def test_every_operation_may_answer_malformed_input(
        self, document: dict[str, Any]
    ) -> None:
        for (method, path), operation in operations(document).items():
            codes = example_codes(operation["responses"]["422"])
            assert "VALIDATION_ERROR" in codes, (method, path)
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                assert "MALFORMED_JSON" in codes, (method, path)

    async def test_every_operation_may_answer_busy(self, document: dict[str, Any]) -> None:
        for (method, path), operation in operations(document).items():
            response = operation["responses"]["503"]
            assert "SERVICE_BUSY" in example_codes(response), (method, path)
            assert "Retry-After" in response["headers"], (method, path)
            assert "INVALID_VALUE" in example_codes(operation["responses"]["422"]), (method, path)

    @pytest.mark.parametrize(
        ("method", "path", "status", "codes"),
        [
            ("PUT", "/api/v1/studies/{study}/members", "409", {"OWNER_NOT_MEMBER"}),
            ("PATCH", "/api/v1/studies/{study}", "412", {"PRECONDITION_FAILED"}),
            ("POST", "/api/v1/auth/me/password", "400", {"WRONG_PASSWORD"}),
            (
                "GET",
                "/api/v1/dashboard/timeseries",
                "422",
                {"VALIDATION_ERROR", "INVALID_VALUE", "INVALID_DATE_RANGE", "TOO_MANY_PERIODS"},
            ),
            (
                "PUT",
                "/api/v1/studies/{study}/samples/{sample_id}/files/{filename}",
                "422",
                {
                    "VALIDATION_ERROR",
                    "INVALID_VALUE",
                    "CHECKSUM_MISMATCH",
                    "INVALID_CHECKSUM",
                    "INVALID_FILENAME",
                    "INVALID_READ",
                },
            ),
            ("DELETE", "/api/v1/files/{file_id}", "409", {"STUDY_LOCKED"}),
            ("GET", "/api/v1/files/{file_id}/download", "416", {"RANGE_NOT_SATISFIABLE"}),
            (
                "POST",
                "/api/v1/studies/{study}/sample-sheet",
                "413",
                {"SHEET_TOO_LARGE"},
            ),
        ],
    )
    async def test_operations_declare_what_they_answer(
        self, document: dict[str, Any], method: str, path: str, status: str, codes: set[str]
    ) -> None:
        assert example_codes(operations(document)[(method, path)]["responses"][status]) == codes

    async def test_the_members_conflict_is_described_by_its_code(
        self, document: dict[str, Any]
    ) -> None:
        response = document["paths"]["/api/v1/studies/{study}/members"]["put"]["responses"]
        assert "OWNER_NOT_MEMBER" in response["409"]["description"]

    async def test_if_match_and_the_period_limit_are_documented(
        self, document: dict[str, Any]
    ) -> None:
        update = document["paths"]["/api/v1/studies/{study}"]["patch"]
        if_match = next(p for p in update["parameters"] if p["name"].lower() == "if-match")
        assert (if_match["in"], if_match["required"]) == ("header", False)
        assert "412" in if_match["description"]
        series = document["paths"]["/api/v1/dashboard/timeseries"]["get"]["parameters"]
        interval = next(p for p in series if p["name"] == "interval")
        assert "1,000" in interval["description"]


# The shapes of ``errors`` items, by schema name, with their required fields.
SHAPES = {
    "ValidationIssue": {"loc", "code", "message"},
    "SampleIssue": {"field", "code", "message"},
    "SheetIssueOut": {"row", "column", "code", "message"},
    "ReadinessProblem": {"sample_id", "code", "message"},
    "ChecksumProblem": {"algorithm", "declared", "computed"},
    "ComponentStatus": {"component", "status"},
    "FieldProblem": {"field", "message"},
}


class TestErrorItems:
    async def test_errors_is_a_list_of_the_known_shapes(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        errors = schemas["ErrorOut"]["properties"]["errors"]
        array = next(option for option in errors["anyOf"] if option.get("type") == "array")
        names = {ref["$ref"].rsplit("/", 1)[-1] for ref in array["items"]["anyOf"]}
        assert names == set(SHAPES)
        for name, required in SHAPES.items():
            assert set(schemas[name]["required"]) == required, name

    async def test_every_class_that_lists_errors_names_a_shape_of_the_union(
        self, document: dict[str, Any]
    ) -> None:
        for error in error_classes():
            if error.item is not None:
                assert error.item.__name__ in SHAPES, error

    async def test_real_refusals_match_the_document(
        self,
        client: httpx.AsyncClient,
        document: dict[str, Any],
        headers: dict[str, str],
        study: Study,
    ) -> None:
        """Refusals of each kind that lists errors, as the server sends them."""
        envelope = Draft202012Validator(
            {"$ref": "#/components/schemas/ErrorOut", "components": document["components"]}
        )
        base = f"/api/v1/studies/{study.accession}"
        created = await client.post(
            f"{base}/samples", json={"sample_id": "S1", "organism": "Mus musculus"}, headers=headers
        )
        assert created.status_code == 201, created.text
        fastq = b"@r1\nACGT\n+\nIIII\n"
        answers = {
            "VALIDATION_ERROR": await client.post("/api/v1/auth/register", json={}),
            "INVALID_SAMPLE": await client.post(
                "/api/v1/studies",
                json={
                    "title": "Twins",
                    "authors": ["A"],
                    "samples": [
                        {"sample_id": "T1", "organism": "Mus musculus"},
                        {"sample_id": "t1", "organism": "Mus musculus"},
                    ],
                },
                headers=headers,
            ),
            "STUDY_INCOMPLETE": await client.post(f"{base}/submit", headers=headers),
            "CHECKSUM_MISMATCH": await client.put(
                f"{base}/samples/S1/files/S1_R1.fastq",
                content=fastq,
                headers={**headers, "X-Checksum-SHA256": "0" * 64},
            ),
            "SHEET_INVALID": await client.post(
                f"{base}/sample-sheet",
                params={"mode": "append"},
                files={"file": ("s.csv", b"Sample_ID,Organism,Sex\nS2,,sideways\n", "text/csv")},
                headers=headers,
            ),
        }
        for code, response in answers.items():
            body = response.json()
            assert body["code"] == code, body
            assert body["errors"], body
            envelope.validate(body)
        # The two that no request here provokes, held to the same schema.
        for item in (
            ComponentStatus(component="database", status="unavailable"),
            FieldProblem(field="filename", message="required"),
        ):
            envelope.validate({"code": "X", "detail": "x", "errors": [item.model_dump()]})


class TestBodies:
    async def test_downloads_declare_their_bytes_and_headers(
        self, document: dict[str, Any]
    ) -> None:
        item = document["paths"]["/api/v1/files/{file_id}/download"]
        for method in ("get", "head"):
            responses = item[method]["responses"]
            for status in ("200", "206"):
                assert set(responses[status]["content"]) == {
                    "application/gzip",
                    "application/octet-stream",
                }
                assert {
                    "ETag",
                    "Accept-Ranges",
                    "Content-Disposition",
                    "X-Checksum-SHA256",
                    "X-Checksum-MD5",
                    "Repr-Digest",
                } <= set(responses[status]["headers"])
            assert "Content-Range" in responses["206"]["headers"]
            assert "416" in responses
            names = {p["name"] for p in item[method]["parameters"] if p["in"] == "header"}
            assert "Range" in names

    @pytest.mark.parametrize(
        ("method", "path", "media_types"),
        [
            (
                "GET",
                "/api/v1/sample-sheets/template",
                {
                    "text/csv",
                    "text/tab-separated-values",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                },
            ),
            (
                "GET",
                "/api/v1/studies/{study}/samples/export",
                {
                    "text/csv",
                    "text/tab-separated-values",
                    "application/json",
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                },
            ),
        ],
    )
    async def test_sheets_declare_their_media_types(
        self, document: dict[str, Any], method: str, path: str, media_types: set[str]
    ) -> None:
        assert (
            set(operations(document)[(method, path)]["responses"]["200"]["content"]) == media_types
        )

    async def test_the_import_report_may_be_a_sheet(self, document: dict[str, Any]) -> None:
        responses = document["paths"]["/api/v1/studies/{study}/sample-sheet"]["post"]["responses"]
        for status in ("200", "201", "422"):
            assert {
                "application/json",
                "text/csv",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            } == set(responses[status]["content"]), status

    async def test_declared_media_types_are_what_is_served(
        self,
        client: httpx.AsyncClient,
        document: dict[str, Any],
        headers: dict[str, str],
        study: Study,
    ) -> None:
        template = operations(document)[("GET", "/api/v1/sample-sheets/template")]
        for format in ("csv", "tsv", "xlsx"):
            response = await client.get("/api/v1/sample-sheets/template", params={"format": format})
            assert response.status_code == 200
            media_type = response.headers["content-type"].split(";")[0]
            assert media_type in template["responses"]["200"]["content"], format
        export = operations(document)[("GET", "/api/v1/studies/{study}/samples/export")]
        for format in ("csv", "tsv", "json", "xlsx"):
            response = await client.get(
                f"/api/v1/studies/{study.accession}/samples/export",
                params={"format": format},
                headers=headers,
            )
            assert response.status_code == 200
            media_type = response.headers["content-type"].split(";")[0]
            assert media_type in export["responses"]["200"]["content"], format


class TestCommittedDocument:
    """docs/openapi.json is the contract under review: any change to it shows in a diff."""

    async def test_the_committed_document_is_what_the_app_serves(
        self, document: dict[str, Any]
    ) -> None:
        committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
        assert committed == document, (
            "docs/openapi.json differs from the app's document; regenerate it with "
            "`python main.py openapi` and review the diff"
        )
