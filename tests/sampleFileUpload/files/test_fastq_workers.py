"""FASTQ validation in worker processes (fastq_workers.py) and the lane that feeds it
(ingest.ValidationLane): the same reports as the validator in-process, lanes kept apart on one
worker, a dead worker replaced, abandoned lanes forgotten, the lag bound, and what an upload
answers when its worker dies (503, nothing kept; tus resumes from the stored bytes)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from typing import cast

import anyio
import anyio.to_thread
import httpx
import psutil
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files.exceptions import ValidatorUnavailableError
from src.sampleFileUpload.files.fastq import FastqReport, FastqValidator
from src.sampleFileUpload.files.fastq_workers import (
    FastqWorkers,
    InThreadValidation,
    RemoteValidation,
    WorkerStoppedError,
    report_from_json,
    report_to_json,
)
from src.sampleFileUpload.files.ingest import FileDigest, ValidationLane, ValidationLaneBrokenError
from src.study.models import SampleFile, Study
from tests.sampleFileUpload.fastq_samples import BROKEN, GOOD_GZ, gz, md5, records, sha256
from tests.sampleFileUpload.files.test_uploads import stored_objects
from tests.sampleFileUpload.tus.test_tus import TUS, create, patch
from tests.study.factories import create_study


def worker_pids(workers: FastqWorkers) -> list[int]:
    """Process ids of the pool's running workers."""
    with workers._lock:
        return [worker.process.pid for worker in workers._workers if worker.alive]


def in_process(data: bytes) -> FastqReport:
    validator = FastqValidator()
    validator.feed(data)
    return validator.finish()


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def workers() -> Iterator[FastqWorkers]:
    pool = FastqWorkers(1)
    yield pool
    pool.close()


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(timeout=10)


class TestReportsOverTheWire:
    @pytest.mark.parametrize("name", sorted(BROKEN))
    def test_json_round_trip_keeps_every_field(self, name: str) -> None:
        report = in_process(BROKEN[name][1])
        assert report_from_json(report_to_json(report)) == report

    @pytest.mark.parametrize("name", ["good", *sorted(BROKEN)])
    def test_a_worker_reports_what_the_validator_does(
        self, workers: FastqWorkers, name: str
    ) -> None:
        data = GOOD_GZ if name == "good" else BROKEN[name][1]
        validation = workers.open()
        assert isinstance(validation, RemoteValidation)
        for piece in pieces(data, 777):
            validation.feed(piece)
        assert validation.finish() == in_process(data)

    def test_lanes_sharing_a_worker_stay_apart(self, workers: FastqWorkers) -> None:
        first, second = gz(records(300, seed=1)), records(200, seed=2, prefix="other")
        lanes = [workers.open(), workers.open()]
        assert len(worker_pids(workers)) == 1
        for a, b in itertools.zip_longest(pieces(first, 500), pieces(second, 300)):
            if a is not None:
                lanes[0].feed(a)
            if b is not None:
                lanes[1].feed(b)
        assert lanes[1].finish() == in_process(second)
        assert lanes[0].finish() == in_process(first)

    def test_threads_may_share_a_worker(self, workers: FastqWorkers) -> None:
        files = [gz(records(400, seed=n)) for n in range(4)]
        reports: dict[int, FastqReport] = {}

        def run(n: int) -> None:
            lane = workers.open()
            for piece in pieces(files[n], 1000):
                lane.feed(piece)
            reports[n] = lane.finish()

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert reports == {n: in_process(files[n]) for n in range(4)}


class TestWorkerLifecycle:
    def test_workers_start_on_first_use(self, workers: FastqWorkers) -> None:
        assert worker_pids(workers) == []
        workers.open().discard()
        assert len(worker_pids(workers)) == 1

    def test_no_workers_means_in_thread(self) -> None:
        pool = FastqWorkers(0)
        validation = pool.open()
        assert isinstance(validation, InThreadValidation)
        validation.feed(GOOD_GZ)
        assert validation.finish() == in_process(GOOD_GZ)
        assert worker_pids(pool) == []

    def test_a_dead_worker_fails_its_lanes_and_is_replaced(self, workers: FastqWorkers) -> None:
        lane = workers.open()
        lane.feed(GOOD_GZ[:100])
        (pid,) = worker_pids(workers)
        kill(pid)
        with pytest.raises(WorkerStoppedError):
            lane.feed(GOOD_GZ[100:])
        with pytest.raises(WorkerStoppedError):
            lane.finish()
        fresh = workers.open()
        assert worker_pids(workers) != [pid]
        fresh.feed(GOOD_GZ)
        assert fresh.finish() == in_process(GOOD_GZ)

    def test_discard_forgets_the_lane(self, workers: FastqWorkers) -> None:
        lane = workers.open()
        lane.feed(GOOD_GZ[:50])
        lane.discard()
        lane.discard()  # idempotent
        (worker,) = workers._workers
        assert worker.lanes == 0
        # The same lane number now starts from nothing: the worker kept no state for it.
        again = RemoteValidation(workers, worker, lane._lane)  # type: ignore[attr-defined]
        worker.lanes += 1
        again.feed(GOOD_GZ)
        assert again.finish() == in_process(GOOD_GZ)

    def test_close_stops_the_workers(self) -> None:
        pool = FastqWorkers(2)
        pool.open().discard()
        pool.open().discard()
        processes = [psutil.Process(pid) for pid in worker_pids(pool)]
        assert len(processes) == 2
        pool.close()
        assert not any(
            process.is_running() and process.status() != "zombie" for process in processes
        )
        with pytest.raises(WorkerStoppedError):
            pool.open()

    def test_a_worker_ignores_ctrl_c(self, workers: FastqWorkers) -> None:
        lane = workers.open()
        (pid,) = worker_pids(workers)
        lane.feed(GOOD_GZ[:10])  # started: its signal handler is in place
        os.kill(pid, signal.SIGINT)
        lane.feed(GOOD_GZ[10:])
        assert lane.finish() == in_process(GOOD_GZ)


class _Gated:
    """A validation whose feeds wait for permission, to hold the lane behind."""

    def __init__(self) -> None:
        self.allowed = threading.Semaphore(0)
        self.fed: list[bytes] = []
        self.discarded = threading.Event()

    def feed(self, block: bytes | bytearray) -> None:
        self.allowed.acquire()
        self.fed.append(bytes(block))

    def finish(self) -> FastqReport:
        return in_process(b"".join(self.fed))

    def discard(self) -> None:
        self.discarded.set()


class _GatedWorkers:
    """Stands in for FastqWorkers: every lane it opens is ``gated``."""

    def __init__(self, gated: _Gated) -> None:
        self.gated = gated

    def open(self) -> _Gated:
        return self.gated


class TestValidationLane:
    async def test_submit_runs_ahead_of_the_validator_by_the_lag(self) -> None:
        gated = _Gated()
        lane = ValidationLane(gated, lag=3)
        with anyio.fail_after(60):
            for n in range(3):  # one being fed and two queued: no wait
                await lane.submit(b"%d" % n)
        with anyio.move_on_after(0.2) as scope:
            await lane.submit(b"3")
        assert scope.cancelled_caught, "the fourth block should wait for the first"
        with pytest.raises(ValidationLaneBrokenError):
            await lane.submit(b"4")
        for _ in range(4):
            gated.allowed.release()
        lane.close()
        await anyio.to_thread.run_sync(gated.discarded.wait, 5)
        assert gated.discarded.is_set()

    async def test_finish_waits_for_every_block_in_order(self) -> None:
        gated = _Gated()
        data = records(50)
        lane = ValidationLane(gated, lag=len(data))
        for piece in pieces(data, 100):
            await lane.submit(piece)
        for _ in range(len(data) // 100 + 1):
            gated.allowed.release()
        assert await lane.finish() == in_process(data)
        assert b"".join(gated.fed) == data
        lane.close()  # a no-op once finished
        assert not gated.discarded.is_set()

    async def test_close_drops_what_is_queued(self) -> None:
        gated = _Gated()
        lane = ValidationLane(gated, lag=8)
        for n in range(5):
            await lane.submit(b"%d" % n)
        gated.allowed.release()
        lane.close()
        gated.allowed.release()
        await anyio.to_thread.run_sync(gated.discarded.wait, 5)
        assert len(gated.fed) <= 2
        with pytest.raises(ValidationLaneBrokenError):
            await lane.submit(b"x")

    async def test_the_lane_hashes_each_block_once_the_validator_took_it(self) -> None:
        gated = _Gated()
        running_md5, running_sha256 = hashlib.md5(), hashlib.sha256()
        lane = ValidationLane(gated, lag=8, hashes=(running_md5, running_sha256))
        data = records(30)
        parts = list(pieces(data, 1000))
        for piece in parts:
            await lane.submit(piece)
        assert running_md5.hexdigest() == md5(b"")  # the validator has taken nothing yet
        for _ in parts:
            gated.allowed.release()
        await lane.drain()
        assert (running_md5.hexdigest(), running_sha256.hexdigest()) == (md5(data), sha256(data))
        assert await lane.finish() == in_process(data)

    async def test_a_chunk_checksum_is_complete_when_update_returns(self) -> None:
        """A tus chunk's Upload-Checksum is compared before the chunk is answered, so its digest
        may not lag behind with the whole-file hashes."""
        gated = _Gated()
        digest = FileDigest(cast(FastqWorkers, _GatedWorkers(gated)))
        data = records(20)
        chunk_md5 = hashlib.md5()
        await digest.update(data, extra=(chunk_md5,))
        assert chunk_md5.hexdigest() == md5(data)
        assert digest.size == len(data)
        gated.allowed.release()
        ingested = await digest.finish()
        assert (ingested.md5, ingested.sha256, ingested.report) == (
            md5(data),
            sha256(data),
            in_process(data),
        )

    async def test_a_dead_worker_is_a_503(self, workers: FastqWorkers) -> None:
        digest = FileDigest(workers)
        await digest.update(GOOD_GZ[:100])
        await asyncio.sleep(0)
        await anyio.to_thread.run_sync(kill, worker_pids(workers)[0])

        async def the_rest() -> None:
            await digest.update(GOOD_GZ[100:])
            await digest.finish()

        with pytest.raises(ValidatorUnavailableError) as caught:
            await the_rest()
        assert (caught.value.status_code, caught.value.code) == (503, "VALIDATOR_UNAVAILABLE")
        digest.close()

    async def test_a_shut_down_pool_is_a_503(self) -> None:
        pool = FastqWorkers(1)
        pool.close()
        with pytest.raises(ValidatorUnavailableError):
            FileDigest(pool)

    async def test_digest_matches_one_pass(self, workers: FastqWorkers) -> None:
        data = gz(records(3000))
        with FileDigest(workers) as digest:
            for piece in pieces(data, 4096):
                await digest.update(piece)
            ingested = await digest.finish()
        assert (ingested.md5, ingested.sha256, ingested.size) == (
            md5(data),
            sha256(data),
            len(data),
        )
        assert ingested.report == in_process(data)


# ---------------------------------------------------------------------------------------------
# Through the API: the worker dies during an upload.

FILES = "/api/v1/studies/{study}/samples/S1/files"


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    """conftest's owner and headers, with a draft study of one sample (S1)."""
    return await create_study(session, owner=owner, samples=1)


def small_blocks(app: FastAPI) -> None:
    app.state.files_config = FilesConfig(ingest_block_bytes=64 * 1024)


async def worker_pid(app: FastAPI) -> int:
    workers: FastqWorkers = app.state.fastq_workers
    if not worker_pids(workers):
        workers.open().discard()
    return worker_pids(workers)[0]


class TestWorkerDiesDuringAnUpload:
    async def test_put_answers_503_and_keeps_nothing(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        small_blocks(app)
        data = gz(records(20_000))
        pid = await worker_pid(app)

        async def body() -> AsyncIterator[bytes]:
            for number, piece in enumerate(pieces(data, 64 * 1024)):
                if number == 3:
                    await anyio.to_thread.run_sync(kill, pid)
                yield piece

        response = await client.put(
            FILES.format(study=study.accession) + "/S1_R1.fastq.gz",
            headers=headers,
            content=body(),
        )
        assert response.status_code == 503, response.text
        assert response.json()["code"] == "VALIDATOR_UNAVAILABLE"
        assert await session.scalar(select(func.count(SampleFile.id))) == 0
        assert await stored_objects(app.state.storage) == []
        # The next upload gets a new worker.
        again = await client.put(
            FILES.format(study=study.accession) + "/S1_R1.fastq.gz", headers=headers, content=data
        )
        assert again.status_code == 201, again.text
        assert again.json()["status"] == "valid"

    async def test_tus_chunk_is_refused_then_resumes_from_the_stored_bytes(
        self, app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str], study: Study
    ) -> None:
        small_blocks(app)
        tus = {**headers, **TUS}
        data = gz(records(20_000))
        location = (await create(client, tus, study, len(data))).headers["location"]
        half = len(data) // 2
        assert (await patch(client, location, tus, 0, data[:half])).status_code == 204
        await anyio.to_thread.run_sync(kill, await worker_pid(app))
        refused = await patch(client, location, tus, half, data[half:])
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "VALIDATOR_UNAVAILABLE"
        offset = (await client.head(location, headers=tus)).headers["upload-offset"]
        assert offset == str(half)
        last = await patch(client, location, tus, half, data[half:])
        assert last.status_code == 204, last.text
        file = await client.get(f"/api/v1/files/{last.headers['upload-file-id']}", headers=tus)
        assert (file.json()["status"], file.json()["md5"]) == ("valid", md5(data))
        assert file.json()["read_count"] == 20_000
