"""The counts kept on each study row (samples, files, bytes, valid reads and bases) never drift
from a recount: random sequences of operations through the HTTP API, checked against
``counters.find_drift`` after every step, and parallel writers to one study with real commits.
Also the recount's own report and repair, and ``python main.py recount``."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.database import today
from src.study import counters
from src.study.cli import recount
from src.study.constants import PUBLISHED_TOTAL, StudyStatus
from src.study.models import OwnerTotal, Study, StudyTotal
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload.fastq_samples import gz, records
from tests.study.concurrency import committing_app
from tests.study.factories import create_study

API = "/api/v1/studies"
UPLOADS = "/api/v1/uploads"
TUS = {"Tus-Resumable": "1.0.0"}
BROKEN_FASTQ = b"@r1\nACGT\n+\nII\n"  # quality shorter than the sequence: an invalid file


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _fastq(rng: random.Random) -> tuple[str, bytes]:
    """A file name and content: valid gzip or plain FASTQ, or an invalid one."""
    kind = rng.choice(["gz", "plain", "broken"])
    name = f"f{rng.randrange(10**9)}"
    if kind == "gz":
        return f"{name}.fastq.gz", gz(records(rng.randint(1, 30), seed=rng.randrange(1000)))
    if kind == "plain":
        return f"{name}.fastq", records(rng.randint(1, 30), seed=rng.randrange(1000))
    return f"{name}.fastq", BROKEN_FASTQ


class Actions:
    """Random operations on a few studies through the API, as their owner and a reviewer."""

    def __init__(
        self, client: httpx.AsyncClient, owner: dict[str, str], reviewer: dict[str, str]
    ) -> None:
        self.client = client
        self.owner = owner
        self.reviewer = reviewer
        self.studies: list[str] = []

    async def _json(self, path: str) -> Any:
        response = await self.client.get(path, headers=self.owner)
        return response.json() if response.status_code == 200 else None

    async def _samples(self, study: str) -> list[str]:
        body = await self._json(f"{API}/{study}/samples?page_size=100")
        return [item["sample_id"] for item in body["items"]] if body else []

    async def _files(self, study: str) -> list[str]:
        body = await self._json(f"{API}/{study}/samples?page_size=100")
        return [file["id"] for item in (body or {"items": []})["items"] for file in item["files"]]

    async def create_study(self, rng: random.Random) -> int:
        samples = [
            {"sample_id": f"I{n}", "organism": "Mus musculus"} for n in range(rng.randint(0, 3))
        ]
        response = await self.client.post(
            API,
            headers=self.owner,
            json={"title": "t", "description": "", "authors": [], "samples": samples},
        )
        if response.status_code == 201:
            self.studies.append(response.json()["accession"])
        return response.status_code

    async def add_sample(self, rng: random.Random, study: str) -> int:
        sample_id = f"S{rng.randrange(40)}"  # collisions happen: 409
        response = await self.client.post(
            f"{API}/{study}/samples",
            headers=self.owner,
            json={"sample_id": sample_id, "organism": "Homo sapiens"},
        )
        return response.status_code

    async def sheet(self, rng: random.Random, study: str) -> int:
        mode = rng.choice(["append", "append", "replace", "validate"])
        rows = "".join(f"H{rng.randrange(60)},Mus musculus\n" for _ in range(rng.randint(1, 4)))
        response = await self.client.post(
            f"{API}/{study}/sample-sheet",
            params={"mode": mode},
            headers=self.owner,
            files={"file": ("s.csv", f"Sample_ID,Organism\n{rows}".encode(), "text/csv")},
        )
        return response.status_code

    async def put_file(self, rng: random.Random, study: str) -> int:
        samples = await self._samples(study)
        if not samples:
            return 0
        name, content = _fastq(rng)
        response = await self.client.put(
            f"{API}/{study}/samples/{rng.choice(samples)}/files/{name}",
            headers=self.owner,
            content=content,
        )
        return response.status_code

    async def tus_file(self, rng: random.Random, study: str) -> int:
        """A tus upload: finished, left unfinished (an ``uploading`` file), or terminated."""
        samples = await self._samples(study)
        if not samples:
            return 0
        name, content = _fastq(rng)
        created = await self.client.post(
            UPLOADS,
            headers={
                **self.owner,
                **TUS,
                "Upload-Length": str(len(content)),
                "Upload-Metadata": _metadata(
                    study=study, sample_id=rng.choice(samples), filename=name
                ),
            },
        )
        if created.status_code != 201:
            return created.status_code
        location = created.headers["Location"]
        fate = rng.choice(["finish", "finish", "leave", "terminate"])
        if fate == "terminate":
            return (await self.client.delete(location, headers={**self.owner, **TUS})).status_code
        cut = len(content) if fate == "finish" else len(content) // 2
        response = await self.client.patch(
            location,
            headers={
                **self.owner,
                **TUS,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
            },
            content=content[:cut],
        )
        return response.status_code

    async def delete_file(self, rng: random.Random, study: str) -> int:
        files = await self._files(study)
        if not files:
            return 0
        return (
            await self.client.delete(f"/api/v1/files/{rng.choice(files)}", headers=self.owner)
        ).status_code

    async def delete_sample(self, rng: random.Random, study: str) -> int:
        samples = await self._samples(study)
        if not samples:
            return 0
        return (
            await self.client.delete(
                f"{API}/{study}/samples/{rng.choice(samples)}", headers=self.owner
            )
        ).status_code

    async def submit_ready(self, rng: random.Random, study: str) -> int:
        """Make the study complete (drop files that are not valid, give each sample a valid
        one), then submit it: in review, its counts go on through review and withdrawal."""
        body = await self._json(f"{API}/{study}/samples?page_size=100")
        if not body or not body["items"]:
            return 0
        for item in body["items"]:
            valid = [file for file in item["files"] if file["status"] == "valid"]
            for file in item["files"]:
                if file["status"] != "valid":
                    await self.client.delete(f"/api/v1/files/{file['id']}", headers=self.owner)
            if not valid:
                content = gz(records(rng.randint(1, 20), seed=rng.randrange(1000)))
                await self.client.put(
                    f"{API}/{study}/samples/{item['sample_id']}/files/r{rng.randrange(10**9)}.fq.gz",
                    headers=self.owner,
                    content=content,
                )
        return (await self.client.post(f"{API}/{study}/submit", headers=self.owner)).status_code

    async def lifecycle(self, rng: random.Random, study: str) -> int:
        step = rng.choice(["submit", "withdraw", "approve", "request_changes"])
        if step in ("submit", "withdraw"):
            return (await self.client.post(f"{API}/{study}/{step}", headers=self.owner)).status_code
        return (
            await self.client.post(
                f"{API}/{study}/review",
                headers=self.reviewer,
                json={"decision": step, "comment": "needs work"},
            )
        ).status_code

    async def delete_study(self, rng: random.Random, study: str) -> int:
        response = await self.client.delete(f"{API}/{study}", headers=self.owner)
        if response.status_code == 204:
            self.studies.remove(study)
        return response.status_code

    async def step(self, rng: random.Random) -> tuple[str, int]:
        if not self.studies or rng.random() < 0.08:
            return "create_study", await self.create_study(rng)
        on_study: list[tuple[Callable[..., Awaitable[int]], int]] = [
            (self.add_sample, 4),
            (self.sheet, 3),
            (self.put_file, 5),
            (self.tus_file, 4),
            (self.delete_file, 2),
            (self.delete_sample, 2),
            (self.submit_ready, 1),
            (self.lifecycle, 3),
            (self.delete_study, 1),
        ]
        action = rng.choices([a for a, _ in on_study], weights=[w for _, w in on_study])[0]
        return action.__name__, await action(rng, rng.choice(self.studies))


async def _kept(session: AsyncSession) -> dict[uuid.UUID, counters.Tally]:
    rows = await session.execute(
        select(Study.id, *(getattr(Study, name) for name in counters.COLUMNS))
    )
    return {row[0]: counters.Tally(*row[1:]) for row in rows.all()}


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_operations_never_drift_from_a_recount(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings, seed: int
) -> None:
    owner = await create_user(session)
    reviewer = await create_user(session, role="reviewer")
    actions = Actions(client, auth_headers(settings, owner), auth_headers(settings, reviewer))
    rng = random.Random(seed)
    done: dict[str, set[int]] = {}
    for _ in range(80):
        name, status = await actions.step(rng)
        assert status < 500, name
        done.setdefault(name, set()).add(status)
        drift = await counters.find_drift(session)
        assert drift == [], (name, status, drift)
        assert await counters.find_total_drift(session) == [], (name, status)
    # The API shows the kept counts, and they are not all zero (the test did something).
    kept = await _kept(session)
    for accession in actions.studies:
        body = (await client.get(f"{API}/{accession}", headers=actions.owner)).json()
        tally = kept[uuid.UUID(body["id"])]
        assert (body["sample_count"], body["file_count"], body["total_bytes"]) == (
            tally.sample_count,
            tally.file_count,
            tally.total_bytes,
        )
    assert sum(t.sample_count for t in kept.values()) > 0
    assert sum(t.valid_file_count for t in kept.values()) > 0
    assert 201 in done["put_file"]
    assert 200 in done["lifecycle"] | done["submit_ready"]
    assert await counters.public_total(session) == await _public_count(session)


async def _public_count(session: AsyncSession) -> int:
    return (
        await session.execute(select(func.count()).select_from(Study).where(Study.public_clause()))
    ).scalar_one()


async def test_the_public_total_is_the_published_ones_less_those_under_embargo(
    session: AsyncSession, owner: User
) -> None:
    start = await counters.public_total(session)
    await create_study(session, owner=owner, status=StudyStatus.PUBLISHED)
    await create_study(
        session, owner=owner, status=StudyStatus.PUBLISHED, release_date=today() + timedelta(days=1)
    )
    await create_study(session, owner=owner, status=StudyStatus.PUBLISHED, release_date=today())
    await create_study(session, owner=owner, status=StudyStatus.IN_REVIEW)
    assert await counters.public_total(session) == start + 2 == await _public_count(session)
    assert await counters.find_total_drift(session) == []


async def test_a_drifted_total_is_found_and_repaired(session: AsyncSession, owner: User) -> None:
    await create_study(session, owner=owner, status=StudyStatus.PUBLISHED)
    counted = (
        await session.execute(
            select(func.count()).select_from(Study).where(Study.status == StudyStatus.PUBLISHED)
        )
    ).scalar_one()
    await session.execute(
        update(StudyTotal).where(StudyTotal.name == PUBLISHED_TOTAL).values(value=counted + 4)
    )
    await session.execute(
        update(OwnerTotal).where(OwnerTotal.owner_id == owner.id).values(valid_bytes=9)
    )
    published, of_owner = await counters.find_total_drift(session)
    assert (published.name, published.kept, published.counted) == (
        PUBLISHED_TOTAL,
        {"value": counted + 4},
        {"value": counted},
    )
    assert of_owner.name == f"owner {owner.id}"
    assert (of_owner.kept["valid_bytes"], of_owner.counted["valid_bytes"]) == (9, 0)
    assert await counters.repair_totals(session, drifts=[published, of_owner]) == 2
    assert await counters.find_total_drift(session) == []
    assert await counters.public_total(session) == await _public_count(session)


async def test_drift_is_found_and_repaired(
    client: httpx.AsyncClient, session: AsyncSession, headers: dict[str, str], owner: User
) -> None:
    created = await client.post(
        API,
        headers=headers,
        json={
            "title": "t",
            "description": "",
            "authors": [],
            "samples": [{"sample_id": "A", "organism": "Mus musculus"}],
        },
    )
    study_id = uuid.UUID(created.json()["id"])
    assert await counters.find_drift(session) == []
    await session.execute(
        update(Study).where(Study.id == study_id).values(sample_count=7, valid_bytes=3)
    )
    (drift,) = await counters.find_drift(session)
    assert drift.study_id == study_id
    assert (drift.kept.sample_count, drift.counted.sample_count) == (7, 1)
    assert (drift.kept.valid_bytes, drift.counted.valid_bytes) == (3, 0)
    assert await counters.repair(session, drifts=[drift]) == 1
    assert await counters.find_drift(session) == []
    body = (await client.get(f"{API}/{study_id}", headers=headers)).json()
    assert body["sample_count"] == 1


# ---------------------------------------------------------------------------------------------
# Parallel writers, each request in its own committed transaction.


async def _parallel_writes(
    settings: Settings,
) -> tuple[list[int], list[counters.Drift | counters.TotalDrift], Any]:
    async with committing_app(settings) as (app, client, headers):
        samples = [{"sample_id": f"P{n}", "organism": "Mus musculus"} for n in range(12)]
        created = await client.post(
            API,
            headers=headers,
            json={"title": "t", "description": "", "authors": [], "samples": samples},
        )
        study = created.json()["accession"]
        rng = random.Random(7)

        async def put(sample: str, number: int) -> int:
            name, content = _fastq(rng)
            url = f"{API}/{study}/samples/{sample}/files/{number}_{name}"
            return (await client.put(url, headers=headers, content=content)).status_code

        async def add(number: int) -> int:
            body = {"sample_id": f"N{number}", "organism": "Mus musculus"}
            url = f"{API}/{study}/samples"
            return (await client.post(url, headers=headers, json=body)).status_code

        async def remove(sample: str) -> int:
            url = f"{API}/{study}/samples/{sample}"
            return (await client.delete(url, headers=headers)).status_code

        writes = [put(f"P{n % 12}", n) for n in range(24)]
        writes += [add(n) for n in range(10)]
        writes += [remove(f"P{n}") for n in range(0, 12, 3)]  # while files arrive in them
        rng.shuffle(writes)
        statuses = await asyncio.gather(*writes)
        body = (await client.get(f"{API}/{study}", headers=headers)).json()
        async with app.state.sessionmaker() as session:
            drift: list[counters.Drift | counters.TotalDrift] = [
                *await counters.find_drift(session),
                *await counters.find_total_drift(session),
            ]
    return list(statuses), drift, body


async def test_parallel_writes_to_one_study_never_drift(
    settings: Settings, scratch_database_url: str
) -> None:
    statuses, drift, body = await _parallel_writes(
        settings.model_copy(update={"database_url": scratch_database_url})
    )
    assert all(status < 500 for status in statuses), statuses
    assert statuses.count(201) >= 20
    assert drift == []
    assert body["sample_count"] == 12 + 10 - 4
    assert body["file_count"] > 0


async def test_recount_command_reports_and_repairs(
    settings: Settings, scratch_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings.model_copy(update={"database_url": scratch_database_url})
    async with committing_app(settings) as (app, client, headers):
        samples = [{"sample_id": "A", "organism": "Mus musculus"}]
        created = await client.post(
            API,
            headers=headers,
            json={"title": "t", "description": "", "authors": [], "samples": samples},
        )
        accession = created.json()["accession"]
        async with app.state.sessionmaker() as session:
            await session.execute(
                update(Study).where(Study.accession == accession).values(file_count=5)
            )
            await session.commit()

    def run(*arguments: str) -> tuple[int, str]:
        code = recount(settings, repair="--repair" in arguments, as_json="--json" in arguments)
        return code, capsys.readouterr().out

    code, out = await anyio.to_thread.run_sync(run, "--json")
    report = json.loads(out)
    assert (code, report["clean"], report["repaired"]) == (1, False, 0)
    (drift,) = report["drifted"]
    assert drift["accession"] == accession
    assert (drift["kept"]["file_count"], drift["counted"]["file_count"]) == (5, 0)
    code, out = await anyio.to_thread.run_sync(run, "--repair")
    assert code == 1
    assert f"{accession}: file_count 5 (counted 0)" in out
    code, out = await anyio.to_thread.run_sync(run)
    assert (code, out) == (0, CLEAN)
    # A kept total over every study is held against a count as well.
    async with (
        committing_app(settings) as (app, _client, _headers),
        app.state.sessionmaker() as session,
    ):
        await session.execute(
            update(StudyTotal).where(StudyTotal.name == PUBLISHED_TOTAL).values(value=3)
        )
        await session.commit()
    code, out = await anyio.to_thread.run_sync(run, "--json")
    assert code == 1
    assert json.loads(out)["drifted_totals"] == [
        {"name": PUBLISHED_TOTAL, "kept": {"value": 3}, "counted": {"value": 0}}
    ]
    code, out = await anyio.to_thread.run_sync(run, "--repair")
    assert (code, f"total {PUBLISHED_TOTAL}: value 3 (counted 0)" in out) == (1, True)
    assert await anyio.to_thread.run_sync(run) == (0, CLEAN)


CLEAN = (
    "recount: every study's counters agree with its samples and files, "
    "and the kept totals with the studies\n"
)
