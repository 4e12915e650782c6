"""The bulk insertion of samples (src/study/bulk.py through service.insert_samples): COPY on
PostgreSQL, one executemany on SQLite. What it writes reads back as written, in the same stored
form an ORM insert gives, and what the database refuses comes out as SQLAlchemy's errors, as
from session.execute: a duplicate sample_id is an IntegrityError, an integer past the column's
range a DataError-class error the API answers 422 INVALID_VALUE."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.database import is_invalid_value
from src.study import bulk, counters, service
from src.study.checklist import FIELD_NAMES
from src.study.models import Sample, Study
from src.study.schemas import SampleCreate

ODD_TEXT = [
    "é ü ß 样本 🧬 Ωmega",  # accents, CJK, astral plane
    "e\u0301 combining, \u200b zero width, \u202e right-to-left override",
    "שלום مرحبا",  # right-to-left scripts
    "quotes \" and ' and `, back\\slash \\N \\. and a trailing backslash \\",
    "tab\there and a\nline break",  # the two controls multi-line text keeps
    "NULL",
    "  ,;|  separators  ,;|  ",
    "x" * 1024,  # the longest text allowed
]


def fields(sample_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(FIELD_NAMES)
    row.update({"sample_id": sample_id, "sample": sample_id, "organism": "Mus musculus"})
    row.update(values)
    return row


async def stored(session: AsyncSession, study: Study) -> list[Sample]:
    session.expunge_all()
    result = await session.scalars(
        select(Sample).where(Sample.study_id == study.id).order_by(Sample.created_at)
    )
    return list(result.all())


class TestRoundTrip:
    async def test_odd_text_nulls_and_long_values_read_back_as_written(
        self, session: AsyncSession, study: Study
    ) -> None:
        samples: list[tuple[dict[str, Any], dict[str, str]]] = []
        for number, value in enumerate(ODD_TEXT):
            samples.append(
                (
                    fields(
                        f"S{number}",
                        sample=value,
                        description=value,
                        tissue=value,
                        biological_repeat=number + 1,
                        date_sample_prep="2024-02",
                    ),
                    {"Batch": value, "ключ 🔑": value, "empty": ""},
                )
            )
        samples.append((fields("S-null"), {}))  # every optional field NULL, no attribute
        created = await service.insert_samples(session, study=study, samples=samples)
        assert created == len(samples)
        rows = await stored(session, study)
        assert [row.sample_id for row in rows] == [values["sample_id"] for values, _ in samples]
        for row, (values, attributes) in zip(rows, samples, strict=True):
            assert {name: getattr(row, name) for name in FIELD_NAMES} == values
            assert row.attributes == attributes
            assert row.sample_key == values["sample_id"].casefold()
            assert row.study_id == study.id
            assert row.created_at == row.updated_at
            assert row.created_at.tzinfo is not None
        last = rows[-1]
        assert last.tissue is None
        assert last.biological_repeat is None
        assert last.attributes == {}

    async def test_created_at_follows_the_order_given(
        self, session: AsyncSession, study: Study
    ) -> None:
        samples: list[tuple[dict[str, Any], dict[str, str]]] = [
            (fields(f"S{n:03d}"), {}) for n in range(300, 0, -1)
        ]
        await service.insert_samples(session, study=study, samples=samples)
        rows = await stored(session, study)
        assert [row.sample_id for row in rows] == [f"S{n:03d}" for n in range(300, 0, -1)]
        assert len({row.created_at for row in rows}) == 300
        assert len({row.id for row in rows}) == 300
        assert all(row.id.version == 4 for row in rows)
        assert all(row.id.variant == uuid.RFC_4122 for row in rows)

    async def test_stored_form_is_the_orm_insert_s(
        self, session: AsyncSession, study: Study, owner: User
    ) -> None:
        # The same sample, once through the ORM (as POST /samples stores it) and once in bulk:
        # the database holds the same text for every column (SQLite keeps uuids, timestamps
        # and JSON as text), ids and timestamps aside, which have the same form.
        given: dict[str, Any] = {
            "organism": "Homo sapiens",
            "tissue": "liver",
            "biological_repeat": 2,
            "date_sample_prep": "2024-01-02",
            "attributes": {"Batch": "b1", "é": "ü 🧬"},
        }
        orm = SampleCreate(sample_id="ORM01", **given)
        await service.create_sample(session, study=study, data=orm, actor=owner)
        (check,) = service.check_samples([SampleCreate(sample_id="BULK1", **given)])
        await service.insert_samples(
            session, study=study, samples=[(check.values, check.attributes)]
        )
        table = Sample.__table__
        as_text = ", ".join(f"CAST({c.name} AS TEXT) AS {c.name}" for c in table.columns)
        statement = text(
            f"SELECT {as_text} FROM sample WHERE study_id = :study ORDER BY sample_key"
        ).bindparams(bindparam("study", type_=table.c.study_id.type))
        result = await session.execute(statement, {"study": study.id})
        bulk_row, orm_row = (row._mapping for row in result.all())
        # PostgreSQL stores uuids and timestamps in binary (its text drops a fraction's
        # trailing zeros); SQLite stores the text compared here.
        timestamps = {"created_at", "updated_at"}
        sqlite = session.get_bind().dialect.name == "sqlite"
        for column in table.columns:
            name = column.name
            if name in timestamps and not sqlite:
                continue
            if name in {"id", "sample_id", "sample_key", "sample", *timestamps}:
                assert shape(bulk_row[name]) == shape(orm_row[name]), name
            else:
                assert bulk_row[name] == orm_row[name], name

    async def test_more_rows_than_one_statement_takes_go_in_several(
        self, session: AsyncSession, study: Study
    ) -> None:
        # On SQLite a statement takes some 1,800 rows: two full ones and the rest here.
        samples: list[tuple[dict[str, Any], dict[str, str]]] = [
            (fields(f"S{n:04d}", biological_repeat=n), {"n": str(n)}) for n in range(4000)
        ]
        assert await service.insert_samples(session, study=study, samples=samples) == 4000
        rows = await stored(session, study)
        assert [(row.sample_id, row.biological_repeat, row.attributes) for row in rows] == [
            (values["sample_id"], values["biological_repeat"], attributes)
            for values, attributes in samples
        ]


def shape(value: str) -> str:
    """Digits, hex digits and letters all alike: the form of an id or a timestamp."""
    return re.sub(r"[0-9a-zA-Z]", "0", value)


class TestRefusals:
    async def test_a_sample_id_already_in_the_study_fails_the_whole_insert(
        self, session: AsyncSession, study: Study
    ) -> None:
        await service.insert_samples(session, study=study, samples=[(fields("S1"), {})])
        nested = await session.begin_nested()
        with pytest.raises(sa_exc.IntegrityError):
            await service.insert_samples(
                session, study=study, samples=[(fields("S2"), {}), (fields("s1"), {})]
            )
        await nested.rollback()
        assert [row.sample_id for row in await stored(session, study)] == ["S1"]

    async def test_duplicates_within_one_insert_fail_it(
        self, session: AsyncSession, study: Study
    ) -> None:
        nested = await session.begin_nested()
        with pytest.raises(sa_exc.IntegrityError):
            await service.insert_samples(
                session, study=study, samples=[(fields("A1"), {}), (fields("a1"), {})]
            )
        await nested.rollback()
        assert await stored(session, study) == []

    async def test_an_integer_past_the_column_s_range_is_an_invalid_value(
        self, session: AsyncSession, study: Study
    ) -> None:
        # biological_repeat is a 32-bit INTEGER on PostgreSQL; SQLite's hold 64 bits.
        nested = await session.begin_nested()
        if session.get_bind().dialect.name != "postgresql":
            await service.insert_samples(
                session, study=study, samples=[(fields("S1", biological_repeat=2**31), {})]
            )
            await nested.rollback()
            return
        with pytest.raises(sa_exc.DBAPIError) as refused:
            await service.insert_samples(
                session, study=study, samples=[(fields("S1", biological_repeat=2**31), {})]
            )
        assert is_invalid_value(refused.value)
        await nested.rollback()
        assert await stored(session, study) == []

    async def test_through_the_api_a_taken_sample_id_and_a_huge_number_are_4xx(
        self, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        url = f"/api/v1/studies/{study.accession}/sample-sheet"
        sheet = b"Sample_ID,Organism,Biological_Repeat\nS1,human,1\n"
        first = await client.post(
            url, headers=headers, files={"file": ("a.csv", sheet)}, params={"mode": "append"}
        )
        assert first.status_code == 201, first.text
        again = await client.post(
            url, headers=headers, files={"file": ("a.csv", sheet)}, params={"mode": "append"}
        )
        assert again.status_code == 422
        assert [e["code"] for e in again.json()["errors"]] == ["SAMPLE_ID_TAKEN"]
        huge = b"Sample_ID,Organism,Biological_Repeat\nS2,human,3000000000\n"
        response = await client.post(
            url, headers=headers, files={"file": ("b.csv", huge)}, params={"mode": "append"}
        )
        if response.status_code == 201:  # SQLite stores 64-bit integers
            assert response.json()["samples"][0]["biological_repeat"] == 3_000_000_000
        else:
            assert response.status_code == 422, response.text
            assert response.json()["code"] == "INVALID_VALUE"
        listed = await client.get(f"/api/v1/studies/{study.accession}/samples", headers=headers)
        assert listed.status_code == 200


class RefusedError(Exception):
    pass


async def batches(
    given: Sequence[Sequence[service.SampleInput]], asked: list[int], *, then_raise: bool = False
) -> AsyncIterator[Sequence[service.SampleInput]]:
    for batch in given:
        asked.append(len(batch))
        yield batch
    asked.append(0)
    if then_raise:
        raise RefusedError


async def kept_count(session: AsyncSession, study: Study) -> int:
    session.expunge_all()
    return await session.scalar(select(Study.sample_count).where(Study.id == study.id)) or 0


class TestBatches:
    """Samples given in batches by an async iterator: each inserted while the next is made."""

    async def test_batches_go_in_in_order_and_are_counted_once(
        self, session: AsyncSession, study: Study
    ) -> None:
        asked: list[int] = []
        given: list[list[service.SampleInput]] = [
            [(fields(f"S{n}{m}"), {}) for m in range(n)] for n in (3, 1, 2)
        ]
        created = await service.insert_samples(session, study=study, samples=batches(given, asked))
        assert (created, asked) == (6, [3, 1, 2, 0])
        rows = await stored(session, study)
        assert [row.sample_id for row in rows] == ["S30", "S31", "S32", "S10", "S20", "S21"]
        assert len({row.created_at for row in rows}) == 6
        assert await kept_count(session, study) == 6
        assert await counters.find_drift(session) == []

    async def test_an_error_from_the_batches_leaves_the_counters_and_is_raised(
        self, session: AsyncSession, study: Study
    ) -> None:
        await service.insert_samples(session, study=study, samples=[(fields("KEEP"), {})])
        asked: list[int] = []
        given: list[list[service.SampleInput]] = [
            [(fields("A1"), {}), (fields("A2"), {})],
            [(fields("A3"), {})],
        ]
        nested = await session.begin_nested()
        with pytest.raises(RefusedError):
            await service.insert_samples(
                session, study=study, samples=batches(given, asked, then_raise=True)
            )
        # Both batches went in before the iterator's error, and nothing was counted.
        assert len(await stored(session, study)) == 4
        assert await kept_count(session, study) == 1
        await nested.rollback()
        assert [row.sample_id for row in await stored(session, study)] == ["KEEP"]
        assert await counters.find_drift(session) == []

    async def test_a_refused_batch_waits_for_the_next_one_being_made(
        self, session: AsyncSession, study: Study
    ) -> None:
        asked: list[int] = []
        given: list[list[service.SampleInput]] = [
            [(fields("A1"), {})],
            [(fields("a1"), {})],
            [(fields("B1"), {})],
        ]
        nested = await session.begin_nested()
        with pytest.raises(sa_exc.IntegrityError):
            await service.insert_samples(session, study=study, samples=batches(given, asked))
        await nested.rollback()
        if bulk.works_in_server(session.get_bind().dialect):
            # The batch after the refused one was made while it was inserted, and no further.
            assert asked == [1, 1, 1]
        else:
            assert asked == [1, 1]  # one after the other: nothing made ahead
        assert await stored(session, study) == []
        assert await kept_count(session, study) == 0

    async def test_batches_are_made_ahead_only_where_the_server_inserts(
        self, session: AsyncSession, study: Study
    ) -> None:
        events: list[str] = []
        insert_rows = bulk.insert_rows

        async def inserting(*args: Any, **kwargs: Any) -> int:
            await asyncio.sleep(0)  # what is made meanwhile is made now
            events.append("insert")
            return await insert_rows(*args, **kwargs)

        async def made() -> AsyncIterator[Sequence[service.SampleInput]]:
            for n in range(3):
                events.append("made")
                yield [(fields(f"S{n}"), {})]

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(bulk, "insert_rows", inserting)
            assert await service.insert_samples(session, study=study, samples=made()) == 3
        if bulk.works_in_server(session.get_bind().dialect):
            assert events == ["made", "made", "insert", "made", "insert", "insert"]
        else:
            assert events == ["made", "insert", "made", "insert", "made", "insert"]
