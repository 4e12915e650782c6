"""Samples through the HTTP API: the checklist applied to JSON samples, sample_id uniqueness
ignoring case, filters, updates, deletion with files, and the events each change writes."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.study.models import SampleFile, Study, StudyEvent
from tests.study.factories import add_file, create_study


def url(study: Study, suffix: str = "") -> str:
    return f"/api/v1/studies/{study.accession}/samples{suffix}"


async def events(session: AsyncSession, study: Study) -> list[tuple[str, dict[str, object]]]:
    rows = await session.execute(
        select(StudyEvent.action, StudyEvent.detail)
        .where(StudyEvent.study_id == study.id)
        .order_by(StudyEvent.at)
    )
    return [(action, detail) for action, detail in rows.all()]


class TestCreateSample:
    async def test_values_are_kept_as_typed_and_normalised_where_the_checklist_says(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        response = await client.post(
            url(study),
            headers=headers,
            json={
                "sample_id": "Liv-01.a",
                "organism": "mouse",
                "sex": "M",
                "tissue": "  left Lobe ",
                "date_sample_prep": "2024-03",
                "biological_repeat": "2",
                "cell_line": "HeLa",
                "attributes": {"Batch": "b7"},
            },
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["sample_id"] == "Liv-01.a"
        assert body["sample"] == "Liv-01.a"
        assert body["organism"] == "Mus musculus"
        assert body["sex"] == "male"
        assert body["tissue"] == "left Lobe"
        assert body["cell_line"] == "HeLa"
        assert body["date_sample_prep"] == "2024-03"
        assert body["biological_repeat"] == 2
        assert body["attributes"] == {"Batch": "b7"}
        assert body["files"] == []

    @pytest.mark.parametrize(
        ("payload", "code"),
        [
            ({"organism": "Mus musculus"}, "REQUIRED"),
            ({"sample_id": "S1"}, "REQUIRED"),
            ({"sample_id": "has space", "organism": "x"}, "INVALID_SAMPLE_ID"),
            ({"sample_id": "x" * 65, "organism": "x"}, "INVALID_SAMPLE_ID"),
            ({"sample_id": "S1", "organism": "x", "sex": "robot"}, "INVALID_SEX"),
            (
                {"sample_id": "S1", "organism": "x", "date_sample_prep": "03/04/2022"},
                "AMBIGUOUS_DATE",
            ),
            (
                {"sample_id": "S1", "organism": "x", "date_sample_prep": "2999-01-01"},
                "DATE_IN_FUTURE",
            ),
            ({"sample_id": "S1", "organism": "x", "biological_repeat": 0}, "INVALID_INTEGER"),
            ({"sample_id": "S1", "organism": "x", "tissue": "t" * 1025}, "TOO_LONG"),
        ],
    )
    async def test_checklist_violations_are_422_with_their_code(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
        payload: dict[str, object],
        code: str,
    ) -> None:
        response = await client.post(url(study), headers=headers, json=payload)
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["code"] == "INVALID_SAMPLE"
        assert code in {error["code"] for error in body["errors"]}

    async def test_sample_id_is_unique_ignoring_case(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        first = await client.post(
            url(study), headers=headers, json={"sample_id": "ABC", "organism": "x"}
        )
        assert first.status_code == 201
        second = await client.post(
            url(study), headers=headers, json={"sample_id": "abc", "organism": "x"}
        )
        assert second.status_code == 409
        assert second.json()["code"] == "SAMPLE_ID_TAKEN"

    async def test_wrong_types_are_422_not_500(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        for payload in (
            {"sample_id": {"a": 1}, "organism": "x"},
            {"sample_id": "S", "organism": ["x"]},
            {"sample_id": "S", "organism": "x", "attributes": {"a": {"b": 1}}},
            [1, 2],
            "text",
        ):
            response = await client.post(url(study), headers=headers, json=payload)
            assert (response.status_code, response.json()["code"]) == (422, "VALIDATION_ERROR"), (
                payload
            )


class TestReadSamples:
    async def test_list_with_filters_and_get(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        for sample_id, organism, sex, tissue in (
            ("A1", "Mus musculus", "female", "liver"),
            ("A2", "Mus musculus", "male", "brain"),
            ("H1", "Homo sapiens", "female", "liver"),
        ):
            await client.post(
                url(study),
                headers=headers,
                json={"sample_id": sample_id, "organism": organism, "sex": sex, "tissue": tissue},
            )

        async def ids(**params: str) -> list[str]:
            response = await client.get(url(study), headers=headers, params=params)
            assert response.status_code == 200
            return [sample["sample_id"] for sample in response.json()["items"]]

        assert await ids() == ["A1", "A2", "H1"]
        assert await ids(organism="mus musculus") == ["A1", "A2"]
        assert await ids(sex="female") == ["A1", "H1"]
        assert await ids(q="LIVER") == ["A1", "H1"]
        assert await ids(q="%") == []
        one = await client.get(url(study, "/a2"), headers=headers)
        assert one.status_code == 200
        assert one.json()["sample_id"] == "A2"
        missing = await client.get(url(study, "/nope"), headers=headers)
        assert missing.status_code == 404
        assert missing.json()["code"] == "SAMPLE_NOT_FOUND"

    async def test_files_are_listed_with_the_sample(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        owner: User,
    ) -> None:
        study = await create_study(session, owner=owner, samples=1, files=True)
        body = (await client.get(url(study, "/S1"), headers=headers)).json()
        (file,) = body["files"]
        assert file["sample_id"] == "S1"
        assert file["status"] == "valid"
        assert file["download_url"] == f"/api/v1/files/{file['id']}/download"


class TestUpdateSample:
    async def test_partial_update_keeps_other_fields_and_checks_the_result(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        await client.post(
            url(study), headers=headers, json={"sample_id": "S1", "organism": "x", "tissue": "t"}
        )
        changed = await client.patch(url(study, "/S1"), headers=headers, json={"sex": "F"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["sex"] == "female"
        assert changed.json()["tissue"] == "t"
        cleared = await client.patch(url(study, "/S1"), headers=headers, json={"tissue": None})
        assert cleared.json()["tissue"] is None
        bad = await client.patch(url(study, "/S1"), headers=headers, json={"organism": None})
        assert (bad.status_code, bad.json()["code"]) == (422, "INVALID_SAMPLE")
        renamed = await client.patch(url(study, "/S1"), headers=headers, json={"sample_id": "S9"})
        assert renamed.json()["sample_id"] == "S9"
        assert renamed.json()["sample"] == "S9"
        gone = await client.get(url(study, "/S1"), headers=headers)
        assert (gone.status_code, gone.json()["code"]) == (404, "SAMPLE_NOT_FOUND")

    async def test_rename_onto_another_sample_is_409(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        for sample_id in ("S1", "S2"):
            await client.post(
                url(study), headers=headers, json={"sample_id": sample_id, "organism": "x"}
            )
        response = await client.patch(url(study, "/S1"), headers=headers, json={"sample_id": "s2"})
        assert (response.status_code, response.json()["code"]) == (409, "SAMPLE_ID_TAKEN")


class TestDeleteSample:
    async def test_deletes_the_sample_and_its_files(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        owner: User,
    ) -> None:
        study = await create_study(session, owner=owner, samples=2, files=True)
        response = await client.delete(url(study, "/S1"), headers=headers)
        assert response.status_code == 204
        remaining = (await client.get(url(study), headers=headers)).json()
        assert [s["sample_id"] for s in remaining["items"]] == ["S2"]
        files = (await session.scalars(select(SampleFile.filename))).all()
        assert all(name.startswith("S2") for name in files)


class TestEvents:
    async def test_every_sample_change_writes_one_event(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        session: AsyncSession,
        study: Study,
    ) -> None:
        await client.post(url(study), headers=headers, json={"sample_id": "S1", "organism": "x"})
        await client.patch(url(study, "/S1"), headers=headers, json={"tissue": "liver"})
        await client.patch(url(study, "/S1"), headers=headers, json={"tissue": "liver"})  # no-op
        await client.delete(url(study, "/S1"), headers=headers)
        assert [(a, d.get("sample_id")) for a, d in await events(session, study)] == [
            ("study.created", None),
            ("sample.created", "S1"),
            ("sample.updated", "S1"),
            ("sample.deleted", "S1"),
        ]

    async def test_events_endpoint_pages_newest_first_with_actor(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
        owner: User,
    ) -> None:
        await client.post(url(study), headers=headers, json={"sample_id": "S1", "organism": "x"})
        response = await client.get(
            f"/api/v1/studies/{study.accession}/events", headers=headers, params={"page_size": 1}
        )
        body = response.json()
        assert body["total"] == 2
        (latest,) = body["items"]
        assert latest["action"] == "sample.created"
        assert latest["actor"] == {"id": str(owner.id), "full_name": owner.full_name}


async def test_a_file_added_directly_shows_in_counts(
    client: httpx.AsyncClient, headers: dict[str, str], session: AsyncSession, owner: User
) -> None:
    study = await create_study(session, owner=owner, samples=1)
    sample = (await client.get(url(study, "/S1"), headers=headers)).json()
    assert sample["files"] == []
    from src.study.service import get_sample

    record = await get_sample(session, study=study, sample_id="S1")
    assert record is not None
    await add_file(session, sample=record, size=123)
    body = (await client.get(f"/api/v1/studies/{study.accession}", headers=headers)).json()
    assert (body["file_count"], body["total_bytes"]) == (1, 123)
