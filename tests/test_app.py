"""The service endpoints, the offline docs, CORS and the request-id middleware."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from src.app import create_app
from src.config import Settings

# What API.md names as the headers a client reads; CORS must expose each.
EXPOSED = {
    "etag",
    "x-request-id",
    "location",
    "upload-offset",
    "upload-length",
    "upload-expires",
    "upload-file-id",
    "content-range",
    "accept-ranges",
    "x-checksum-sha256",
    "x-checksum-md5",
    "repr-digest",
    "content-disposition",
    "retry-after",
    "www-authenticate",
    "tus-version",
    "tus-resumable",
    "tus-extension",
    "tus-max-size",
    "tus-checksum-algorithm",
}


class TestHealth:
    async def test_healthz_answers_while_the_process_runs(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_readyz_checks_database_and_storage(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")
        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "storage": "ok"}

    async def test_readyz_is_503_naming_the_database_when_it_is_unreachable(
        self, settings: Settings
    ) -> None:
        unreachable = settings.model_copy(
            update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
        )
        app = create_app(unreachable)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/readyz")
        assert response.status_code == 503
        body = response.json()
        assert body["code"] == "SERVICE_UNAVAILABLE"
        assert "database" in body["detail"]
        assert body["errors"] == [{"component": "database", "status": "unavailable"}]
        assert body["request_id"] == response.headers["x-request-id"]


class TestDocs:
    @pytest.mark.parametrize("path", ["/docs", "/redoc"])
    async def test_docs_reference_no_external_host(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        response = await client.get(path)
        assert response.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", response.text)
        assert urls, "the page loads its assets"
        assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
        assert "cdn" not in response.text.lower()
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000
            assert b"cdn.redoc.ly" not in asset.content, url

    async def test_openapi_describes_the_service(self, client: httpx.AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        assert spec["info"]["title"] == "MOSAIC"
        assert spec["info"]["version"]
        assert "sequencing studies" in spec["info"]["description"]
        assert {"service", "auth", "studies", "files", "statistics"} <= {
            tag["name"] for tag in spec["tags"]
        }


class TestRequestId:
    async def test_a_sane_incoming_id_is_kept(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Request-ID": "abc-123.x"})
        assert response.headers["x-request-id"] == "abc-123.x"

    @pytest.mark.parametrize("bad", ["", "has space", "x" * 200, "new\\nline", "é"])
    async def test_an_insane_incoming_id_is_replaced(
        self, client: httpx.AsyncClient, bad: str
    ) -> None:
        response = await client.get("/healthz", headers={b"X-Request-ID": bad.encode()})
        generated = response.headers["x-request-id"]
        assert generated != bad
        assert re.fullmatch(r"[0-9a-f]{32}", generated)

    async def test_every_response_gets_a_fresh_id(self, client: httpx.AsyncClient) -> None:
        first = (await client.get("/healthz")).headers["x-request-id"]
        second = (await client.get("/healthz")).headers["x-request-id"]
        assert first != second


class TestCors:
    async def test_off_by_default(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in response.headers

    async def test_configured_origins_are_allowed(self, settings: Settings) -> None:
        app: FastAPI = create_app(
            settings.model_copy(update={"cors_origins": ["https://app.example"]})
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            preflight = await client.options(
                "/api/v1/uploads",
                headers={
                    "Origin": "https://app.example",
                    "Access-Control-Request-Method": "PATCH",
                },
            )
            other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        assert preflight.headers["x-request-id"]
        assert "access-control-allow-origin" not in other.headers

    async def test_every_answer_of_an_allowed_origin_carries_the_cors_headers(
        self, settings: Settings
    ) -> None:
        app: FastAPI = create_app(
            settings.model_copy(update={"cors_origins": ["https://app.example"]})
        )

        async def boom() -> None:
            raise RuntimeError("unexpected")

        app.add_api_route("/test/boom", boom, methods=["GET"])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        origin = {"Origin": "https://app.example"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = {
                404: await client.get("/no/such/route", headers=origin),
                405: await client.request("OPTIONS", "/api/v1/auth/me", headers=origin),
                422: await client.post(
                    "/api/v1/auth/login",
                    content=b"\xff\xfe{",
                    headers={**origin, "Content-Type": "application/json"},
                ),
                500: await client.get("/test/boom", headers=origin),
            }
        for status, response in answers.items():
            assert response.status_code == status, response.text
            assert response.headers["access-control-allow-origin"] == "https://app.example"
            assert response.headers["access-control-allow-credentials"] == "true"
            exposed = {
                name.strip().lower()
                for name in response.headers["access-control-expose-headers"].split(",")
            }
            assert exposed >= EXPOSED, EXPOSED - exposed
            assert response.json()["request_id"] == response.headers["x-request-id"]
        assert answers[500].json()["code"] == "INTERNAL_ERROR"
