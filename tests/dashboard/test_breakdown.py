"""GET /api/v1/dashboard/breakdown: samples and studies per organism, tissue and sex."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.dashboard.world import World, expected_breakdown

BREAKDOWN = "/api/v1/dashboard/breakdown"

Headers = Callable[[str], dict[str, str]]


class TestBreakdown:
    @pytest.mark.parametrize("by", ["organism", "tissue", "sex"])
    @pytest.mark.parametrize(
        ("user", "scope"), [("alice", "mine"), ("carol", "mine"), ("adam", "all")]
    )
    async def test_rows_match_the_world(
        self,
        client: httpx.AsyncClient,
        world: World,
        headers_for: Headers,
        by: str,
        user: str,
        scope: str,
    ) -> None:
        response = await client.get(
            BREAKDOWN, params={"by": by, "scope": scope}, headers=headers_for(user)
        )
        assert response.status_code == 200, response.text
        assert response.json() == expected_breakdown(world, None if scope == "all" else user, by)

    async def test_organisms_of_every_study_by_hand(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            BREAKDOWN, params={"by": "organism", "scope": "all"}, headers=headers_for("rita")
        )
        assert response.json() == [
            {"value": "Mus musculus", "samples": 5, "studies": 5},
            {"value": "Homo sapiens", "samples": 4, "studies": 3},
            {"value": "Danio rerio", "samples": 1, "studies": 1},
        ]

    async def test_missing_values_are_null_and_last_among_equals(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            BREAKDOWN, params={"by": "tissue"}, headers=headers_for("alice")
        )
        assert response.json() == [
            {"value": "blood", "samples": 2, "studies": 1},
            {"value": "liver", "samples": 2, "studies": 2},
            {"value": None, "samples": 2, "studies": 2},
            {"value": "brain", "samples": 1, "studies": 1},
            {"value": "fin", "samples": 1, "studies": 1},
        ]

    async def test_limit_keeps_the_largest(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            BREAKDOWN, params={"by": "sex", "scope": "all", "limit": 2}, headers=headers_for("rita")
        )
        assert response.json() == expected_breakdown(world, None, "sex")[:2]

    async def test_no_samples_gives_an_empty_list(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(BREAKDOWN, params={"by": "sex"}, headers=headers_for("rita"))
        assert response.status_code == 200
        assert response.json() == []


class TestBreakdownRequests:
    async def test_researcher_asking_for_all_is_forbidden(
        self, client: httpx.AsyncClient, world: World, headers_for: Headers
    ) -> None:
        response = await client.get(
            BREAKDOWN, params={"by": "sex", "scope": "all"}, headers=headers_for("carol")
        )
        assert response.status_code == 403
        assert response.json()["code"] == "FORBIDDEN"

    async def test_anonymous_is_refused(self, client: httpx.AsyncClient) -> None:
        response = await client.get(BREAKDOWN, params={"by": "sex"})
        assert (response.status_code, response.json()["code"]) == (401, "INVALID_TOKEN")

    @pytest.mark.parametrize(
        "params", [{}, {"by": "cell_line"}, {"by": "sex", "limit": 0}, {"by": "sex", "limit": 1001}]
    )
    async def test_malformed_parameters(
        self,
        client: httpx.AsyncClient,
        world: World,
        headers_for: Headers,
        params: dict[str, str | int],
    ) -> None:
        response = await client.get(BREAKDOWN, params=params, headers=headers_for("alice"))
        assert response.status_code == 422
        assert response.json()["code"] == "VALIDATION_ERROR"
