"""FASTQ bytes for upload tests: good files of any size and each kind of broken one."""

from __future__ import annotations

import gzip
import hashlib
import random
import zlib


def records(count: int, *, length: int = 50, seed: int = 0, prefix: str = "read") -> bytes:
    """``count`` well-formed 4-line records with deterministic bases and qualities."""
    rng = random.Random(seed)
    lines = []
    for n in range(count):
        bases = "".join(rng.choice("ACGT") for _ in range(length))
        quality = "".join(chr(rng.randint(33, 73)) for _ in range(length))
        lines.append(f"@{prefix}{n} 1:N:0\n{bases}\n+\n{quality}\n")
    return "".join(lines).encode()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


GOOD = records(200)
GOOD_GZ = gz(GOOD)


def bad_crc() -> bytes:
    data = bytearray(gz(records(20)))
    data[-8] ^= 0xFF  # the CRC32 of the member
    return bytes(data)


def binary() -> bytes:
    return zlib.compress(bytes(range(256)) * 64)[:2000] + bytes(range(256))


# name -> (file name, bytes, the first error code the validator must report)
BROKEN: dict[str, tuple[str, bytes, str]] = {
    "truncated_gzip": ("trunc.fastq.gz", GOOD_GZ[: len(GOOD_GZ) // 2], "GZIP_TRUNCATED"),
    "bad_crc": ("crc.fastq.gz", bad_crc(), "GZIP_BAD_CRC"),
    "crlf": ("crlf.fastq", records(3).replace(b"\n", b"\r\n"), "CRLF_LINE_ENDINGS"),
    "missing_plus": ("plus.fastq", b"@r1\nACGT\nIIII\nIIII\n", "MISSING_PLUS"),
    "length_mismatch": ("len.fastq", b"@r1\nACGT\n+\nIII\n", "LENGTH_MISMATCH"),
    "quality_out_of_range": ("qual.fastq", b"@r1\nACGT\n+\nII I\n", "BAD_QUALITY"),
    "empty": ("empty.fastq", b"", "FASTQ_EMPTY"),
    "no_at": ("noat.fastq", records(2) + b"r3\nACGT\n+\nIIII\n", "MISSING_AT"),
    "binary_named_gz": ("binary.fastq.gz", binary(), "NOT_FASTQ"),
}
