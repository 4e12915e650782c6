"""Bulk seeding for benchmarks: users, studies in mixed states, samples and files, written with
Core ``insert()`` executemany in batches (no ORM unit of work, no API), deterministic per seed.

Other benchmarks can import it (``from bench._seed import seed_users, seed_studies``). Rows go
through the models' tables, so column defaults and types are the application's own, and
``search_text`` is computed by ``src.study.service._search_text``, exactly as the service does.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from src.auth.models import User, UserRole
from src.study.constants import ACCESSION_COUNTER, FileStatus, ReadKind, StudyStatus
from src.study.counters import repair_statement, totals_repair_statements
from src.study.models import AccessionCounter, Sample, SampleFile, Study
from src.study.service import _search_text

# Organism -> (weight, tissues, cell lines, mouse model). Weighted roughly like a sequencing core.
ORGANISMS: dict[str, tuple[int, list[str], list[str], str | None]] = {
    "Homo sapiens": (
        45,
        ["blood", "liver", "lung", "brain", "skin", "colon", "breast"],
        ["HeLa", "HEK293T", "K562", "MCF-7"],
        None,
    ),
    "Mus musculus": (
        35,
        ["liver", "brain", "spleen", "kidney", "heart", "bone marrow"],
        ["NIH/3T3", "RAW 264.7"],
        "C57BL/6J",
    ),
    "Danio rerio": (8, ["whole embryo", "fin", "heart", "retina"], [], None),
    "Rattus norvegicus": (5, ["liver", "hippocampus", "kidney"], ["PC-12"], None),
    "Drosophila melanogaster": (4, ["whole body", "wing disc", "ovary"], ["S2"], None),
    "Arabidopsis thaliana": (2, ["leaf", "root", "seedling"], [], None),
    "Saccharomyces cerevisiae": (1, ["whole cell"], [], None),
}
ASSAYS = [
    "RNA-seq", "single-cell RNA-seq", "ATAC-seq", "ChIP-seq", "whole-genome sequencing",
    "bisulfite sequencing", "CUT&Tag", "small RNA-seq", "Hi-C", "long-read RNA-seq",
]  # fmt: skip
CONDITIONS = [
    "ageing", "high-fat diet", "hypoxia", "infection", "circadian time course", "drug treatment",
    "knockout", "regeneration", "development", "tumour progression", "cold exposure",
    "inflammation", "fasting", "exercise", "stress response",
]  # fmt: skip
SURNAMES = [
    "Smith", "Müller", "García", "Nguyen", "Kowalski", "Rossi", "Tanaka", "Okafor", "Johansson",
    "Dubois", "Novák", "Silva", "Kim", "Patel", "Cohen", "Yilmaz", "Fischer", "O'Brien",
    "Andersen", "Ivanova", "Lopez", "Schmidt", "Wang", "Brown", "Haddad",
]  # fmt: skip
SEQUENCERS = ["NovaSeq 6000", "NextSeq 2000", "HiSeq 4000", "PromethION"]
PROVIDERS = ["Charles River", "Jackson Laboratory", "ATCC", "in-house", "Envigo"]
# One description in RARE_EVERY carries RARE_TERM: a search that matches a handful of studies.
RARE_TERM = "ciliopathy"
RARE_EVERY = 5000
COMMON_TERM = "rna-seq"  # in about 40% of the titles (RNA-seq, single-cell/small/long-read)
FILES_SAMPLES = 2  # the first two samples of each study get R1 + R2 files
PLACEHOLDER_HASH = "$argon2id$v=19$m=8,t=1,p=1$YmVuY2g$YmVuY2hiZW5jaGJlbmNoYmVuY2g"


@dataclass
class SeedUsers:
    owner_id: uuid.UUID
    reviewer_id: uuid.UUID
    admin_id: uuid.UUID


@dataclass
class SeedStats:
    studies: int = 0
    samples: int = 0
    files: int = 0
    accessions: list[str] = field(default_factory=list)
    by_status: dict[str, int] = field(default_factory=dict)


async def seed_users(engine: AsyncEngine) -> SeedUsers:
    """An owner (who will own every study), a reviewer and an admin; no password can log in."""
    users = SeedUsers(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    now = datetime.now(UTC)
    rows = [
        {"id": user_id, "email": f"{role.value}@bench.example.org", "full_name": name,
         "password_hash": PLACEHOLDER_HASH, "role": role, "is_active": True,
         "created_at": now, "updated_at": now}
        for user_id, role, name in (
            (users.owner_id, UserRole.RESEARCHER, "Bench Owner"),
            (users.reviewer_id, UserRole.REVIEWER, "Bench Reviewer"),
            (users.admin_id, UserRole.ADMIN, "Bench Admin"),
        )
    ]  # fmt: skip
    async with engine.begin() as connection:
        await connection.execute(insert(User), rows)
    return users


def _weighted_organisms() -> tuple[list[str], list[int]]:
    names = list(ORGANISMS)
    return names, [ORGANISMS[name][0] for name in names]


def _study_row(
    rng: random.Random, number: int, *, owner_id: uuid.UUID, prefix: str, now: datetime
) -> tuple[dict[str, Any], str]:
    names, weights = _weighted_organisms()
    organism = rng.choices(names, weights)[0]
    tissue = rng.choice(ORGANISMS[organism][1])
    assay = rng.choice(ASSAYS)
    condition = rng.choice(CONDITIONS)
    title = f"{assay} of {organism} {tissue} during {condition}"
    description = (
        f"We profiled {tissue} from {organism} by {assay} to study {condition}. "
        f"Samples were collected in {rng.randint(2, 6)} biological replicates per group "
        f"and sequenced on {rng.choice(SEQUENCERS)}."
    )
    if number % RARE_EVERY == 0:
        description += f" Patients were diagnosed with a {RARE_TERM}."
    authors = [
        f"{rng.choice(SURNAMES)} {chr(65 + rng.randrange(26))}." for _ in range(rng.randint(2, 6))
    ]
    created = now - timedelta(days=rng.uniform(1, 3 * 365))
    updated = created + timedelta(days=rng.uniform(0, 30))
    updated = min(updated, now)
    roll = rng.random()
    release_date: date | None = None
    submitted_at = published_at = None
    if roll < 0.55:
        status = StudyStatus.PUBLISHED
        submitted_at = created + (updated - created) / 2
        published_at = updated
        extra = rng.random()
        if extra < 0.10:  # embargoed: published but released later, so not yet public
            release_date = (now + timedelta(days=rng.randint(10, 365))).date()
        elif extra < 0.25:  # release date already passed
            release_date = (published_at + timedelta(days=rng.randint(0, 60))).date()
            release_date = min(release_date, now.date())
    elif roll < 0.80:
        status = StudyStatus.DRAFT
        if rng.random() < 0.2:
            release_date = (now + timedelta(days=rng.randint(30, 400))).date()
    else:
        status = StudyStatus.IN_REVIEW
        submitted_at = updated
    accession = f"{prefix}-{number:04d}"
    study = Study(accession=accession, title=title, description=description, authors=authors)
    row = {
        "id": uuid.uuid4(),
        "accession": accession,
        "owner_id": owner_id,
        "title": title,
        "description": description,
        "authors": authors,
        "status": status,
        "release_date": release_date,
        "review_comment": None,
        "submitted_at": submitted_at,
        "published_at": published_at,
        "search_text": _search_text(study),
        "version": 1,
        "created_at": created,
        "updated_at": updated,
    }
    return row, organism


def _sample_rows(
    rng: random.Random, study: dict[str, Any], organism: str, count: int
) -> list[dict[str, Any]]:
    _weight, tissues, cell_lines, mouse_model = ORGANISMS[organism]
    rows = []
    groups = ["control", "treated"]
    for index in range(1, count + 1):
        sample_id = f"S{index:03d}"
        group = groups[index % 2]
        rows.append(
            {
                "id": uuid.uuid4(),
                "study_id": study["id"],
                "sample_id": sample_id,
                "sample_key": sample_id.casefold(),
                "sample": f"{group} {index}",
                "sample_group": group,
                "sample_project": study["accession"],
                "description": f"{group} replicate {index // 2 + 1}",
                "organism": organism,
                "tissue": rng.choice(tissues),
                "sex": rng.choice(["female", "male", "unknown"]),
                "cell_line": rng.choice(cell_lines) if cell_lines and rng.random() < 0.2 else None,
                "mouse_model": mouse_model,
                "biomaterial_provider": rng.choice(PROVIDERS),
                "date_sample_prep": f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}",
                "biological_repeat": index // 2 + 1,
                "attributes": {"batch": f"b{rng.randint(1, 4)}"},
                "created_at": study["created_at"],
                "updated_at": study["created_at"],
            }
        )
    return rows


def _file_rows(
    rng: random.Random, study: dict[str, Any], samples: list[dict[str, Any]], owner: uuid.UUID
) -> list[dict[str, Any]]:
    rows = []
    for sample in samples[:FILES_SAMPLES]:
        for read in (ReadKind.R1, ReadKind.R2):
            name = f"{study['accession']}_{sample['sample_id']}_{read.value}.fastq.gz"
            digest = hashlib.sha256(name.encode()).hexdigest()
            reads = rng.randint(2_000_000, 40_000_000)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "sample_pk": sample["id"],
                    "filename": name,
                    "read": read,
                    "size": reads * 65,
                    "md5": digest[:32],
                    "sha256": digest,
                    "storage_key": f"files/{study['id'].hex}/{name}",
                    "status": FileStatus.VALID,
                    "read_count": reads,
                    "base_count": reads * 150,
                    "min_length": 35,
                    "max_length": 150,
                    "mean_length": 148.7,
                    "name_digest": digest[32:],
                    "validation_errors": [],
                    "uploaded_by_id": owner,
                    "created_at": study["created_at"],
                }
            )
    return rows


def _chunks(start: int, stop: int, size: int) -> Iterator[range]:
    for first in range(start, stop, size):
        yield range(first, min(first + size, stop))


async def seed_studies(
    engine: AsyncEngine,
    *,
    owner_id: uuid.UUID,
    first: int = 1,
    count: int,
    samples_per_study: int = 20,
    prefix: str = "MOSAIC",
    seed: int = 42,
    batch_studies: int = 500,
) -> SeedStats:
    """Insert ``count`` studies numbered from ``first`` (accessions ``PREFIX-0001``...), each
    with ``samples_per_study`` samples and R1/R2 files on its first two samples; one transaction
    per batch. Leaves the accession counter at the last number, so new studies do not collide."""
    rng = random.Random(seed * 1_000_003 + first)
    now = datetime.now(UTC)
    stats = SeedStats()
    for numbers in _chunks(first, first + count, batch_studies):
        studies, samples, files = [], [], []
        for number in numbers:
            study, organism = _study_row(rng, number, owner_id=owner_id, prefix=prefix, now=now)
            study_samples = _sample_rows(rng, study, organism, samples_per_study)
            studies.append(study)
            samples.extend(study_samples)
            files.extend(_file_rows(rng, study, study_samples, owner_id))
            stats.accessions.append(study["accession"])
            status = study["status"].value
            stats.by_status[status] = stats.by_status.get(status, 0) + 1
        async with engine.begin() as connection:
            await connection.execute(insert(Study), studies)
            if samples:
                await connection.execute(insert(Sample), samples)
            if files:
                await connection.execute(insert(SampleFile), files)
        stats.studies += len(studies)
        stats.samples += len(samples)
        stats.files += len(files)
    async with engine.begin() as connection:
        # The studies' kept counters, from the same recount the migration fills them with.
        await connection.execute(repair_statement())
        for statement in totals_repair_statements():
            await connection.execute(statement)
        await connection.execute(
            update(AccessionCounter)
            .where(AccessionCounter.name == ACCESSION_COUNTER)
            .values(value=first + count - 1)
        )
    return stats
