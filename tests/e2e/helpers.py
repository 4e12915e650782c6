"""Small helpers of the end-to-end tests: FASTQ data, checked responses, logging in."""

from __future__ import annotations

import gzip
import hashlib
import random
from dataclasses import dataclass

import httpx

BASES = "ACGT"


@dataclass(frozen=True)
class Fastq:
    """A FASTQ file's bytes and what the API should find in it."""

    filename: str
    data: bytes
    read_count: int
    base_count: int

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


def fastq_records(reads: int, *, mate: str | None, length: int, seed: int) -> bytes:
    """``reads`` 4-line records named ``@r<i>`` (``@r<i>/1`` or ``/2`` for a mate)."""
    generator = random.Random(seed)
    suffix = f"/{mate}" if mate else ""
    lines = []
    for index in range(1, reads + 1):
        sequence = "".join(generator.choices(BASES, k=length))
        quality = "".join(generator.choices("#+5?FIJ", k=length))
        lines.append(f"@r{index}{suffix}\n{sequence}\n+\n{quality}\n")
    return "".join(lines).encode()


def gzipped_fastq(filename: str, *, reads: int, mate: str | None, length: int = 100) -> Fastq:
    """A gzip-compressed FASTQ file (R1/R2 of one pair share read names and read count)."""
    seed = {"1": 1, "2": 2}.get(mate or "", 3) + reads
    plain = fastq_records(reads, mate=mate, length=length, seed=seed)
    return Fastq(
        filename=filename,
        data=gzip.compress(plain, compresslevel=6, mtime=0),
        read_count=reads,
        base_count=reads * length,
    )


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """Assert the status, showing the request and the whole answer when it is not the one."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url} -> {response.status_code}, "
        f"expected {status}\nheaders: {dict(response.headers)}\nbody: {response.text[:3000]}"
    )
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: httpx.Client, email: str, password: str) -> str:
    """Log in through nginx; the access token."""
    response = expect(
        client.post("/api/v1/auth/login", json={"email": email, "password": password}), 200
    )
    return str(response.json()["access_token"])
