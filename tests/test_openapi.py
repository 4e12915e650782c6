"""The OpenAPI document as clients and generators read it: ids, tags, security, schemas."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
BEARER: dict[str, list[str]] = {"OAuth2PasswordBearer": []}


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
        # One function serves GET and HEAD of a download: the HEAD operation is told apart.
        assert by_route[("GET", "/api/v1/files/{file_id}/download")] == "download_file"
        assert by_route[("HEAD", "/api/v1/files/{file_id}/download")] == "download_file_head"


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
