"""src/storage: the same tests run against the local backend and against S3 (moto server)."""

from __future__ import annotations

import json
import random
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import pytest_asyncio

from src.config import Settings
from src.storage import (
    MIN_PART_SIZE,
    LocalStorage,
    ObjectNotFoundError,
    Storage,
    StorageError,
    StoredEntry,
    WriterBusyError,
    build_storage,
    content_disposition,
    part_size_for,
    validate_key,
    validate_prefix,
)
from src.storage.s3 import S3Storage

pytestmark = pytest.mark.asyncio

ROOT = Path(__file__).resolve().parent.parent
PART = MIN_PART_SIZE
MIB = 1024 * 1024
KEY = "studies/3f0c1a52-0d6b-4d51-9a37-9c0c1b1d2e11/7d4e8e0a-5b7e-4c39-9f44-1f6c1f0e8a21"

StorageFactory = Callable[[], Awaitable[Storage]]


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed * 1_000_003 + size).randbytes(size)


def chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(iterator: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in iterator])


async def stored_names(storage: Storage) -> list[str]:
    """Every file or object the backend holds, unfinished multipart uploads included."""
    if isinstance(storage, LocalStorage):
        root = storage.root

        def walk() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        return await anyio.to_thread.run_sync(walk)
    assert isinstance(storage, S3Storage)
    client = await storage._client()
    listed = await client.list_objects_v2(Bucket=storage.bucket)
    names = [item["Key"] for item in listed.get("Contents", [])]
    uploads = await client.list_multipart_uploads(Bucket=storage.bucket)
    names += [f"multipart:{u['Key']}" for u in uploads.get("Uploads", [])]
    return sorted(names)


async def put(storage: Storage, key: str, data: bytes) -> None:
    writer = await storage.open_writer(key)
    for chunk in chunks(data, 700_001):
        await writer.write(chunk)
    assert await writer.commit() == len(data)


# ------------------------------------------------------------------------------- fixtures


def s3_config(moto_url: str, bucket: str) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "endpoint_url": moto_url,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "part_size": PART,
        "create_bucket": True,
    }


@pytest_asyncio.fixture(params=["local", "s3"])
async def make_storage(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageFactory]:
    """Builds Storage instances on the same root or bucket, as separate processes would."""
    created: list[Storage] = []
    if request.param == "local":
        root = tmp_path / "objects"

        def build() -> Storage:
            return LocalStorage(root)
    else:
        config = s3_config(request.getfixturevalue("moto_url"), f"t-{uuid.uuid4().hex[:24]}")

        def build() -> Storage:
            return S3Storage(**config)

    async def make() -> Storage:
        storage = build()
        created.append(storage)
        await storage.startup()
        return storage

    yield make
    for storage in created:
        await storage.close()


@pytest_asyncio.fixture
async def storage(make_storage: StorageFactory) -> Storage:
    return await make_storage()


# ----------------------------------------------------------------------- writing and reading


@pytest.mark.parametrize("size", [0, 1000, PART, 2 * PART + 12_345])
async def test_write_commit_read_back(storage: Storage, size: int) -> None:
    data = payload(size)
    await put(storage, KEY, data)

    assert await storage.size(KEY) == size
    assert await storage.exists(KEY)
    read_chunks = [chunk async for chunk in storage.open_range(KEY, chunk_size=64 * 1024)]
    assert b"".join(read_chunks) == data
    assert all(0 < len(chunk) <= 64 * 1024 for chunk in read_chunks)
    assert await stored_names(storage) == [KEY]


async def test_commit_replaces_an_existing_object(storage: Storage) -> None:
    await put(storage, KEY, b"old contents")
    await put(storage, KEY, b"new")
    assert await read_all(storage.open_range(KEY)) == b"new"


async def test_range_reads(storage: Storage) -> None:
    data = payload(10_000)
    await put(storage, KEY, data)
    n = len(data)
    cases = [
        (0, 0, data[:1]),
        (0, None, data),
        (0, n - 1, data),
        (n - 1, n - 1, data[-1:]),
        (n - 1, None, data[-1:]),
        (123, 4567, data[123:4568]),
        (100, n + 500, data[100:]),
        (n, None, b""),
        (n + 10, n + 20, b""),
    ]
    for start, end, expected in cases:
        got = await read_all(storage.open_range(KEY, start, end, chunk_size=1000))
        assert got == expected, (start, end)


async def test_range_arguments_are_checked_at_once(storage: Storage) -> None:
    with pytest.raises(ValueError, match="range"):
        storage.open_range(KEY, -1, None)
    with pytest.raises(ValueError, match="range"):
        storage.open_range(KEY, 10, 9)


async def test_missing_object(storage: Storage) -> None:
    assert await storage.size(KEY) is None
    assert not await storage.exists(KEY)
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.open_range(KEY))
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.open_range(KEY, 5, 10))


async def test_a_folder_is_not_an_object(storage: Storage) -> None:
    await put(storage, "studies/s1/f1", b"x")
    assert await storage.size("studies/s1") is None
    with pytest.raises(ObjectNotFoundError):
        await read_all(storage.open_range("studies/s1"))


async def test_nothing_is_visible_before_commit(storage: Storage) -> None:
    writer = await storage.open_writer(KEY)
    await writer.write(payload(PART + 10))
    assert not await storage.exists(KEY)
    await writer.commit()
    assert await storage.size(KEY) == PART + 10


@pytest.mark.parametrize("size", [10, 2 * PART + 10])
async def test_abort_leaves_nothing(storage: Storage, size: int) -> None:
    writer = await storage.open_writer(KEY)
    for chunk in chunks(payload(size), MIB):
        await writer.write(chunk)
    await writer.abort()
    await writer.abort()

    assert not await storage.exists(KEY)
    assert await stored_names(storage) == []
    with pytest.raises(StorageError):
        await writer.write(b"more")


async def test_abort_of_a_resumable_writer_leaves_nothing(storage: Storage) -> None:
    writer = await storage.open_resumable(KEY)
    for chunk in chunks(payload(PART + 3 * MIB), 2 * MIB):
        await writer.write(chunk)
        await writer.flush()
    await writer.abort()

    assert await stored_names(storage) == []


async def test_leaving_a_block_with_an_error_aborts(storage: Storage) -> None:
    async def upload_that_fails() -> None:
        async with await storage.open_writer(KEY) as writer:
            await writer.write(payload(PART + 1))
            raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await upload_that_fails()
    assert await stored_names(storage) == []


async def test_a_finished_writer_refuses_more(storage: Storage) -> None:
    writer = await storage.open_writer(KEY)
    await writer.write(b"abc")
    await writer.commit()
    with pytest.raises(StorageError, match="finished"):
        await writer.write(b"d")
    with pytest.raises(StorageError, match="finished"):
        await writer.commit()
    await writer.abort()  # a no-op once committed
    assert await read_all(storage.open_range(KEY)) == b"abc"


# ------------------------------------------------------------------------ resumable writes


@pytest.mark.parametrize(
    ("total", "chunk", "cut"),
    [
        pytest.param(3000, 1000, 2000, id="tail-smaller-than-a-part"),
        pytest.param(3 * PART, 3 * MIB, 3 * 3 * MIB, id="across-a-part-boundary"),
        pytest.param(PART + 2 * MIB, PART, PART, id="exactly-on-a-part-boundary"),
        pytest.param(2 * PART + 1, PART // 2, 0, id="nothing-written-yet"),
    ],
)
async def test_resume_in_a_fresh_instance(
    make_storage: StorageFactory, total: int, chunk: int, cut: int
) -> None:
    data = payload(total)
    first = await make_storage()
    writer = await first.open_resumable(KEY)
    state = writer.state
    for piece in chunks(data[:cut], chunk):
        await writer.write(piece)
        state = await writer.flush()
        assert state == writer.state
    assert state["size"] == cut
    await writer.release()
    saved = json.loads(json.dumps(state))

    other = await make_storage()  # another process: shares nothing but the saved state
    resumed = await other.resume_writer(KEY, saved)
    assert resumed.size == cut
    assert await read_all(other.read_pending(KEY, saved)) == data[:cut]
    for piece in chunks(data[cut:], chunk):
        await resumed.write(piece)
        await resumed.flush()
    assert await read_all(other.read_pending(KEY, resumed.state)) == data
    assert await resumed.commit() == total

    assert await read_all(other.open_range(KEY)) == data
    assert await stored_names(other) == [KEY]


async def test_unflushed_bytes_are_dropped_on_resume(make_storage: StorageFactory) -> None:
    flushed, unflushed, rest = payload(3 * MIB // 2, 1), payload(9 * MIB // 2, 2), payload(1234, 3)
    first = await make_storage()
    writer = await first.open_resumable(KEY)
    await writer.write(flushed)
    state = await writer.flush()
    await writer.write(unflushed)  # crosses the part boundary: S3 stages a part, local spills
    assert writer.size == len(flushed) + len(unflushed)
    assert writer.state == state
    await writer.release()

    other = await make_storage()
    resumed = await other.resume_writer(KEY, state)
    assert resumed.size == len(flushed)
    assert await read_all(other.read_pending(KEY, state)) == flushed
    await resumed.write(rest)
    await resumed.commit()
    assert await read_all(other.open_range(KEY)) == flushed + rest


async def test_a_local_upload_has_one_writer_at_a_time(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = await storage.open_resumable(KEY)
    await writer.write(b"first ")
    state = await writer.flush()
    with pytest.raises(WriterBusyError):
        await storage.resume_writer(KEY, state)
    await writer.release()
    again = await storage.resume_writer(KEY, state)
    with pytest.raises(WriterBusyError):
        await storage.resume_writer(KEY, state)
    await again.write(b"second")
    await again.commit()
    assert await read_all(storage.open_range(KEY)) == b"first second"


async def test_the_lock_is_held_across_processes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = await storage.open_resumable(KEY)
    await writer.write(b"bytes")
    state = await writer.flush()
    await writer.release()
    holder = await anyio.open_process(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'r+b'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.read()",
            str(storage._temp_path(KEY, state["token"])),
        ]
    )
    assert holder.stdout is not None
    assert holder.stdin is not None
    assert (await holder.stdout.receive()).strip() == b"held"
    with pytest.raises(WriterBusyError):
        await storage.resume_writer(KEY, state)
    await holder.stdin.aclose()
    await holder.wait()
    resumed = await storage.resume_writer(KEY, state)
    assert resumed.size == 5
    await resumed.abort()


KILLED_WRITER = """
import json, os, random, signal, sys
import anyio
from src.storage import LocalStorage
from src.storage.s3 import S3Storage

async def main():
    config = json.loads(sys.argv[1])
    kind = config.pop("kind")
    storage = LocalStorage(config["root"]) if kind == "local" else S3Storage(**config)
    await storage.startup()
    writer = await storage.open_resumable(sys.argv[2])
    for seed, size in ((1, 3 * 1024 * 1024), (2, 3 * 1024 * 1024)):
        await writer.write(random.Random(seed).randbytes(size))
        print(json.dumps(await writer.flush()), flush=True)
    await writer.write(random.Random(3).randbytes(int(sys.argv[3])))
    os.kill(os.getpid(), signal.SIGKILL)

anyio.run(main)
"""


async def test_flushed_bytes_survive_a_killed_process(
    make_storage: StorageFactory, tmp_path: Path
) -> None:
    storage = await make_storage()
    if isinstance(storage, LocalStorage):
        config: dict[str, Any] = {"kind": "local", "root": str(storage.root)}
    else:
        assert isinstance(storage, S3Storage)
        config = {"kind": "s3", **s3_config(storage.endpoint_url or "", storage.bucket)}
    unflushed = 5 * MIB  # local: reaches the file; S3: completes and stages a part
    result = await anyio.run_process(
        [sys.executable, "-c", KILLED_WRITER, json.dumps(config), KEY, str(unflushed)],
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == -9, result.stderr.decode()
    state = json.loads(result.stdout.decode().strip().splitlines()[-1])
    flushed = random.Random(1).randbytes(3 * MIB) + random.Random(2).randbytes(3 * MIB)
    assert state["size"] == len(flushed)

    resumed = await storage.resume_writer(KEY, state)
    assert resumed.size == len(flushed)
    assert await read_all(storage.read_pending(KEY, state)) == flushed
    await resumed.write(b"end")
    await resumed.commit()
    assert await read_all(storage.open_range(KEY)) == flushed + b"end"
    assert await stored_names(storage) == [KEY]


async def test_abort_state_discards_an_unfinished_upload(make_storage: StorageFactory) -> None:
    first = await make_storage()
    writer = await first.open_resumable(KEY)
    await writer.write(payload(PART + MIB))
    state = await writer.flush()
    await writer.release()

    other = await make_storage()
    await other.abort_state(KEY, state)
    await other.abort_state(KEY, state)
    assert await stored_names(other) == []
    with pytest.raises(ObjectNotFoundError):
        await other.resume_writer(KEY, state)
    with pytest.raises(ObjectNotFoundError):
        await read_all(other.read_pending(KEY, state))


async def test_a_commit_whose_staged_data_is_gone_fails_cleanly(storage: Storage) -> None:
    writer = await storage.open_resumable(KEY)
    await writer.write(payload(PART + MIB))
    state = await writer.flush()
    await storage.abort_state(KEY, state)  # e.g. an operator cleaned up behind our back

    with pytest.raises(StorageError):
        await writer.commit()
    assert not await storage.exists(KEY)
    with pytest.raises(StorageError, match="failed earlier"):
        await writer.write(b"x")
    await writer.abort()
    assert await stored_names(storage) == []


def _wrong_backend(state: dict[str, Any]) -> None:
    state["backend"] = "s3" if state["backend"] == "local" else "local"


def _path_in_token(state: dict[str, Any]) -> None:
    state["token"] = "../../../etc/passwd"


def _negative_size(state: dict[str, Any]) -> None:
    state["size"] = -1


def _future_version(state: dict[str, Any]) -> None:
    state["version"] = 99


@pytest.mark.parametrize(
    "corrupt", [_wrong_backend, _path_in_token, _negative_size, _future_version]
)
async def test_a_malformed_state_is_refused(
    storage: Storage, corrupt: Callable[[dict[str, Any]], None]
) -> None:
    writer = await storage.open_resumable(KEY)
    await writer.write(b"abc")
    state = await writer.flush()
    corrupt(state)
    with pytest.raises(ValueError, match="state"):
        await storage.resume_writer(KEY, state)
    with pytest.raises(ValueError, match="state"):
        storage.read_pending(KEY, state)
    with pytest.raises(ValueError, match="state"):
        await storage.abort_state(KEY, state)
    await writer.abort()


async def test_a_state_with_inconsistent_sizes_is_refused(make_storage: StorageFactory) -> None:
    storage = await make_storage()
    writer = await storage.open_resumable(KEY)
    await writer.write(payload(1000))
    state = await writer.flush()
    await writer.release()
    if isinstance(storage, S3Storage):
        state["size"] += 1  # no longer the sum of the staged pieces
        with pytest.raises(ValueError, match="sizes"):
            await storage.resume_writer(KEY, state)
    else:
        state["size"] += 1  # claims more than the temp file holds
        with pytest.raises(StorageError, match="lost"):
            await storage.resume_writer(KEY, state)


# --------------------------------------------------------------------------------- deleting


async def test_delete_is_idempotent(storage: Storage) -> None:
    await put(storage, KEY, b"data")
    await storage.delete(KEY)
    assert not await storage.exists(KEY)
    await storage.delete(KEY)
    await storage.delete("studies/never/written")


async def test_delete_prefix_removes_a_study_and_nothing_else(storage: Storage) -> None:
    await put(storage, "studies/s1/a", b"a")
    await put(storage, "studies/s1/sub/b", b"b")
    await put(storage, "studies/s10/c", b"c")
    await put(storage, "studies/s1x", b"d")
    pending = await storage.open_resumable("studies/s1/pending")
    await pending.write(b"flushed")
    await pending.flush()
    await pending.release()
    in_flight = await storage.open_writer("studies/s1/in-flight")
    await in_flight.write(payload(PART))  # S3: a multipart upload is open

    await storage.delete_prefix("studies/s1/")

    assert await stored_names(storage) == ["studies/s10/c", "studies/s1x"]
    await in_flight.abort()  # its upload is already gone; aborting is still safe
    await storage.delete_prefix("studies/s1/")
    await storage.delete_prefix("studies/none/")


@pytest.mark.parametrize("prefix", ["", "/", "studies/s1", "../", "studies//", "/studies/"])
async def test_delete_prefix_refuses_bad_prefixes(storage: Storage, prefix: str) -> None:
    with pytest.raises(ValueError, match="invalid storage"):
        await storage.delete_prefix(prefix)


# --------------------------------------------------------------------------- keys and misc

BAD_KEYS = [
    "",
    "/etc/passwd",
    "a/../b",
    "..",
    "../x",
    "a/./b",
    "a//b",
    "a/",
    ".hidden",
    "studies/s1/.f.upload",
    "a b",
    "a\\b",
    "café",
    "a\x00b",
    "a/b\n",
    "x" * 201,
    "/".join(["abcd"] * 300),
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_bad_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        validate_key(key)
    calls: list[Callable[[], Any]] = [
        lambda: storage.open_writer(key),
        lambda: storage.open_resumable(key),
        lambda: storage.size(key),
        lambda: storage.exists(key),
        lambda: storage.delete(key),
        lambda: storage.presign_get(key, filename="f.fastq"),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid storage key"):
            await call()
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.open_range(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.local_path(key)
    assert await stored_names(storage) == []


async def test_generated_keys_are_accepted() -> None:
    for key in [KEY, "a", "A-b_c.d/e.fastq.gz", "x" * 200]:
        assert validate_key(key) == key
    assert validate_prefix("studies/s1/") == "studies/s1/"


async def test_presign(storage: Storage) -> None:
    data = payload(2048)
    await put(storage, KEY, data)
    url = await storage.presign_get(KEY, filename='reads "R1" ü.fastq.gz', expires=120)
    if isinstance(storage, LocalStorage):
        assert url is None
        return
    assert url is not None
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200
    assert response.content == data
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="reads _R1_ _.fastq.gz"')
    assert "filename*=UTF-8''reads%20%22R1%22%20%C3%BC.fastq.gz" in disposition
    with pytest.raises(ValueError, match="expiry"):
        await storage.presign_get(KEY, filename="f", expires=0)


async def test_local_path(storage: Storage) -> None:
    await put(storage, KEY, b"served by nginx")
    path = storage.local_path(KEY)
    if isinstance(storage, S3Storage):
        assert path is None
        return
    assert path is not None
    assert path.is_absolute()
    assert await anyio.Path(path).read_bytes() == b"served by nginx"


async def test_ping(storage: Storage) -> None:
    await storage.ping()
    if isinstance(storage, LocalStorage):
        await anyio.to_thread.run_sync(shutil.rmtree, storage.root)
    else:
        assert isinstance(storage, S3Storage)
        client = await storage._client()
        await client.delete_bucket(Bucket=storage.bucket)
    with pytest.raises(StorageError):
        await storage.ping()


async def test_s3_startup_refuses_a_missing_bucket_unless_asked(moto_url: str) -> None:
    config = s3_config(moto_url, f"t-{uuid.uuid4().hex[:24]}")
    strict = S3Storage(**{**config, "create_bucket": False})
    try:
        with pytest.raises(StorageError, match="does not exist"):
            await strict.startup()
    finally:
        await strict.close()


async def test_s3_part_size_has_a_floor() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3Storage(bucket="b", part_size=PART - 1)


async def test_build_storage(tmp_path: Path, moto_url: str) -> None:
    local = build_storage(Settings(storage_backend="local", data_dir=tmp_path))
    assert isinstance(local, LocalStorage)
    await local.startup()
    await local.ping()
    assert local.root == (tmp_path / "objects").absolute()
    await local.close()

    settings = Settings(
        storage_backend="s3",
        s3_endpoint_url=moto_url,
        s3_bucket=f"t-{uuid.uuid4().hex[:24]}",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        s3_presign_expires=600,
    )
    remote = build_storage(settings)
    assert isinstance(remote, S3Storage)
    try:
        await remote.startup()  # creates the bucket outside production
        await remote.ping()
        assert remote.presign_expires == 600
    finally:
        await remote.close()


# ------------------------------------------------------------------------- scanning (fsck)


async def scanned(storage: Storage) -> list[StoredEntry]:
    return sorted([entry async for entry in storage.scan()], key=lambda e: (e.key, e.name))


async def test_scan_of_an_empty_storage_is_empty(storage: Storage) -> None:
    assert await scanned(storage) == []


async def test_scan_lists_objects_and_the_data_of_unfinished_writes(storage: Storage) -> None:
    """A committed object; a whole-file write under way (on S3 once a part is sent: a multipart
    upload); a resumable write's flushed data, under the token of its state."""
    other = KEY[:-1] + "0"
    third = KEY[:-1] + "9"
    await put(storage, KEY, payload(1000))
    plain = await storage.open_writer(other)
    await plain.write(payload(PART + 10))
    resumable = await storage.open_resumable(third)
    await resumable.write(payload(PART + 20))
    state = await resumable.flush()

    entries = await scanned(storage)
    by_key = {entry.key: entry for entry in entries}
    assert sorted(by_key) == sorted([KEY, other, third])
    assert len(entries) == 3
    committed = by_key[KEY]
    assert (committed.temporary, committed.size, committed.name) == (False, 1000, KEY)
    assert committed.modified.tzinfo is not None
    assert by_key[other].temporary
    assert by_key[other].size >= PART
    staged = by_key[third]
    assert (staged.temporary, staged.token, staged.size) == (True, state["token"], PART + 20)
    await plain.abort()
    await resumable.release()


async def test_remove_entry_removes_exactly_what_was_listed(storage: Storage) -> None:
    other = KEY[:-1] + "0"
    third = KEY[:-1] + "9"
    await put(storage, KEY, payload(10))
    plain = await storage.open_writer(other)
    await plain.write(payload(PART + 10))
    resumable = await storage.open_resumable(third)
    await resumable.write(payload(PART + 20))
    await resumable.flush()
    await resumable.release()
    if isinstance(storage, LocalStorage):
        await plain.abort()  # a live local writer's data is never removed (next test)
    entries = [e for e in await scanned(storage) if e.key != KEY]

    for entry in entries:
        await storage.remove_entry(entry)
        await storage.remove_entry(entry)  # idempotent
    assert [e.key for e in await scanned(storage)] == [KEY]
    assert await stored_names(storage) == [KEY]
    (committed,) = await scanned(storage)
    await storage.remove_entry(committed)
    assert await stored_names(storage) == []
    await plain.abort()


async def test_a_local_temp_file_held_by_a_live_writer_is_kept(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    writer = await storage.open_writer(KEY)
    await writer.write(b"still arriving")
    (entry,) = await scanned(storage)

    with pytest.raises(WriterBusyError):
        await storage.remove_entry(entry)
    assert [e.name for e in await scanned(storage)] == [entry.name]
    await writer.abort()
    await storage.remove_entry(entry)
    assert await scanned(storage) == []


async def test_scan_under_a_prefix(storage: Storage) -> None:
    await put(storage, KEY, b"in")
    await put(storage, "elsewhere/" + KEY, b"out")
    writer = await storage.open_resumable("elsewhere/x")
    await writer.write(b"staged")
    await writer.flush()
    await writer.release()

    assert [e.key for e in await scanned(storage)] == sorted(
        [KEY, "elsewhere/" + KEY, "elsewhere/x"]
    )
    assert [e.key async for e in storage.scan("studies/")] == [KEY]
    with pytest.raises(ValueError, match="prefix"):
        storage.scan("studies")


async def test_scan_leaves_out_what_is_not_ours(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / ".ping.0123").write_bytes(b"ok")
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "notes (copy).txt").write_bytes(b"hand-made")
    assert await scanned(storage) == []


async def test_part_sizes_double_every_thousand_parts() -> None:
    assert part_size_for(1, PART) == PART
    assert part_size_for(1000, PART) == PART
    assert part_size_for(1001, PART) == 2 * PART
    assert part_size_for(10_000, PART) == 512 * PART
    total = sum(part_size_for(n, 8 * MIB) for n in range(1, 10_001))
    assert total > 5 * 1024**4  # S3's largest object fits in 10,000 parts


async def test_content_disposition() -> None:
    assert content_disposition("a.fastq.gz") == 'attachment; filename="a.fastq.gz"'
    header = content_disposition("ü;\\.fq")
    assert header.startswith('attachment; filename="___.fq"; filename*=UTF-8')


async def test_local_storage_never_imports_the_s3_backend(tmp_path: Path) -> None:
    """The S3 client stack is imported only when configured: an app on local storage, built and
    with its storage made, has loaded neither src.storage.s3 nor aiobotocore."""
    code = (
        "import sys\n"
        "from src.app import create_app\n"
        "from src.config import Settings\n"
        "from src.storage import build_storage\n"
        f"settings = Settings(data_dir={str(tmp_path)!r}, storage_backend='local')\n"
        "create_app(settings)\n"
        "build_storage(settings)\n"
        "print(sorted(name for name in ('src.storage.s3', 'aiobotocore') if name in sys.modules))\n"
    )
    result = await anyio.run_process([sys.executable, "-c", code], cwd=ROOT, check=True)
    assert result.stdout.decode().strip() == "[]", result.stdout + result.stderr
