"""API.md: removing a member, or the study leaving draft, ends the unfinished tus uploads that
may no longer go on: their rows, their ``uploading`` files and their stored bytes, so the owner
can submit. A PATCH in flight at that moment commits nothing; the clean-up task treats an upload
that may not go on as final. A finished upload still answers HEAD to whoever sees the study."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.sampleFileUpload.tus import cleanup
from src.sampleFileUpload.tus.writer import ChunkWriter
from src.storage import ObjectWriter
from src.study import service as study_service
from src.study.constants import FileStatus, MemberRole, StudyStatus
from src.study.models import SampleFile, Study, Upload
from tests.factories import auth_headers, create_user
from tests.sampleFileUpload.fastq_samples import GOOD_GZ
from tests.sampleFileUpload.files.test_uploads import stored_objects
from tests.sampleFileUpload.tus import test_tus
from tests.sampleFileUpload.tus.test_tus import (
    PATCH_TYPE,
    TUS,
    create,
    leave_draft,
    patch,
    revoke_access,
    settings,
)
from tests.study.factories import add_member, create_study

__all__ = ["settings"]  # fixture: every test on local disk and on S3

HALF = len(GOOD_GZ) // 2


@pytest.fixture
async def editor(session: AsyncSession, study: Study) -> User:
    editor = await create_user(session, full_name="Eddie Editor")
    await add_member(session, study=study, user=editor, role=MemberRole.EDITOR)
    await session.commit()
    return editor


@pytest.fixture
def editor_headers(settings: Settings, editor: User) -> dict[str, str]:
    return {**auth_headers(settings, editor), **TUS}


@pytest.fixture
def committed_keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of every object committed to storage during the test."""
    keys: list[str] = []
    original = ObjectWriter.commit

    async def spy(self: ObjectWriter) -> int:
        keys.append(self.key)
        return await original(self)

    monkeypatch.setattr(ObjectWriter, "commit", spy)
    return keys


async def started_upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    study: Study,
    filename: str = "S1_extra.fastq.gz",
) -> str:
    """An upload with its first half stored."""
    created = await create(client, headers, study, len(GOOD_GZ), filename=filename)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    first = await patch(client, location, headers, 0, GOOD_GZ[:HALF])
    assert first.status_code == 204, first.text
    return location


async def finished_upload(
    client: httpx.AsyncClient, headers: dict[str, str], study: Study, filename: str
) -> tuple[str, str]:
    created = await create(client, headers, study, len(GOOD_GZ), filename=filename)
    location = created.headers["location"]
    done = await patch(client, location, headers, 0, GOOD_GZ)
    assert done.status_code == 204, done.text
    return location, done.headers["upload-file-id"]


async def unfinished_rows(session: AsyncSession) -> tuple[int, int]:
    """(unfinished uploads, uploading files)."""
    uploads = await session.scalar(
        select(func.count(Upload.id)).where(Upload.finished_at.is_(None))
    )
    uploading = await session.scalar(
        select(func.count(SampleFile.id)).where(SampleFile.status == FileStatus.UPLOADING)
    )
    return int(uploads or 0), int(uploading or 0)


async def objects(app: FastAPI) -> list[str]:
    return await stored_objects(app.state.storage)


def study_url(study: Study, tail: str = "") -> str:
    return f"/api/v1/studies/{study.accession}{tail}"


async def remove_member(
    client: httpx.AsyncClient, study: Study, member: User, headers: dict[str, str]
) -> None:
    removed = await client.delete(study_url(study, f"/members/{member.id}"), headers=headers)
    assert removed.status_code == 204, removed.text


async def last_chunk_interrupted(
    client: httpx.AsyncClient,
    location: str,
    headers: dict[str, str],
    meanwhile: Callable[[], Awaitable[None]],
) -> httpx.Response:
    """The answer to the upload's last chunk (from HALF), ``meanwhile`` done once the server
    took its first piece and asks for more."""
    reading, go_on = anyio.Event(), anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield GOOD_GZ[HALF : HALF + 100]
        reading.set()  # the server took the first piece and asks for more
        await go_on.wait()
        yield GOOD_GZ[HALF + 100 :]

    responses: list[httpx.Response] = []

    async def send_last_chunk() -> None:
        responses.append(
            await client.patch(
                location,
                headers={**headers, **PATCH_TYPE, "Upload-Offset": str(HALF)},
                content=body(),
            )
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(send_last_chunk)
            await reading.wait()
            await meanwhile()
            go_on.set()
    (response,) = responses
    return response


def run_first(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    first: Callable[[ChunkWriter], Awaitable[None]],
) -> None:
    """``ChunkWriter.<name>`` does ``first`` before it does its own work."""
    original = getattr(ChunkWriter, name)

    async def first_then_original(self: ChunkWriter, *args: Any) -> Any:
        await first(self)
        return await original(self, *args)

    monkeypatch.setattr(ChunkWriter, name, first_then_original)


async def assert_nothing_stored(
    app: FastAPI, session: AsyncSession, committed_keys: list[str]
) -> None:
    """No object was committed, none is stored, no unfinished upload or uploading file left."""
    assert committed_keys == []
    assert await objects(app) == []
    assert await unfinished_rows(session) == (0, 0)


class TestRemovingAMember:
    async def test_their_upload_ends_and_the_owner_can_submit(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
    ) -> None:
        await finished_upload(client, headers, study, "S1.fastq.gz")
        kept = await objects(app)
        location = await started_upload(client, editor_headers, study)
        assert await objects(app) != kept  # the editor's half is stored

        await remove_member(client, study, editor, headers)

        assert await unfinished_rows(session) == (0, 0)
        assert await objects(app) == kept
        head = await client.head(location, headers=editor_headers)
        assert head.status_code == 404
        again = await patch(client, location, editor_headers, HALF, GOOD_GZ[HALF:])
        assert (again.status_code, again.json()["code"]) == (404, "UPLOAD_NOT_FOUND")
        submitted = await client.post(study_url(study, "/submit"), headers=headers)
        assert submitted.status_code == 200, submitted.text
        assert submitted.json()["status"] == StudyStatus.IN_REVIEW

    async def test_only_that_members_uploads_end(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
    ) -> None:
        other = await create_user(session)
        await add_member(session, study=study, user=other, role=MemberRole.EDITOR)
        await session.commit()
        other_headers = {**auth_headers(settings, other), **TUS}
        await started_upload(client, editor_headers, study)
        staying = await started_upload(client, other_headers, study, filename="S1_other.fq.gz")
        mine = await started_upload(client, headers, study, filename="S1_mine.fq.gz")

        await remove_member(client, study, editor, headers)

        assert await unfinished_rows(session) == (2, 2)
        for location, caller in ((staying, other_headers), (mine, headers)):
            done = await patch(client, location, caller, HALF, GOOD_GZ[HALF:])
            assert done.status_code == 204, done.text
            assert done.headers["upload-file-id"]

    async def test_made_a_viewer_their_upload_ends(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
    ) -> None:
        location = await started_upload(client, editor_headers, study)
        made_viewer = await client.put(
            study_url(study, "/members"),
            headers=headers,
            json={"email": editor.email, "role": "viewer"},
        )
        assert made_viewer.status_code == 200, made_viewer.text
        assert await unfinished_rows(session) == (0, 0)
        assert await objects(app) == []
        assert (await client.head(location, headers=editor_headers)).status_code == 404

    async def test_a_chunk_in_flight_stores_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
        committed_keys: list[str],
    ) -> None:
        """The member is removed while the last chunk streams: the chunk is refused once it
        arrived, no object is committed, and what it wrote after the removal is removed too."""
        location = await started_upload(client, editor_headers, study)

        async def remove_editor() -> None:
            await remove_member(client, study, editor, headers)

        response = await last_chunk_interrupted(client, location, editor_headers, remove_editor)
        assert (response.status_code, response.json()["code"]) == (404, "UPLOAD_NOT_FOUND")
        await assert_nothing_stored(app, session, committed_keys)
        assert await session.scalar(select(func.count(SampleFile.id))) == 0

    async def test_removed_as_the_last_byte_arrives_nothing_is_committed(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
        committed_keys: list[str],
    ) -> None:
        """Removed after the last byte was recorded, before the file is: the re-check before
        the object is committed refuses it, and the upload goes."""
        location = await started_upload(client, editor_headers, study)

        async def remove_editor(_: ChunkWriter) -> None:
            await remove_member(client, study, editor, headers)

        run_first(monkeypatch, "finish", remove_editor)
        response = await patch(client, location, editor_headers, HALF, GOOD_GZ[HALF:])
        assert response.status_code == 404, response.text
        assert response.json()["code"] in ("STUDY_NOT_FOUND", "UPLOAD_NOT_FOUND")
        await assert_nothing_stored(app, session, committed_keys)

    async def test_a_re_check_refusal_at_recording_removes_the_committed_object(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
        committed_keys: list[str],
    ) -> None:
        """Removed between the re-check and the recording (where the study's lock orders the
        two): the object just committed goes again with the upload."""
        location = await started_upload(client, editor_headers, study)

        async def remove_editor(writer: ChunkWriter) -> None:
            await writer.session.commit()
            await remove_member(client, study, editor, headers)

        run_first(monkeypatch, "_record_file", remove_editor)
        response = await patch(client, location, editor_headers, HALF, GOOD_GZ[HALF:])
        assert (response.status_code, response.json()["code"]) == (404, "STUDY_NOT_FOUND")
        assert len(committed_keys) == 1
        assert await objects(app) == []
        assert await unfinished_rows(session) == (0, 0)


class TestLeavingDraft:
    async def test_submit_is_refused_while_another_editor_uploads(
        self,
        client: httpx.AsyncClient,
        headers: dict[str, str],
        study: Study,
        editor_headers: dict[str, str],
    ) -> None:
        """DESIGN.md: submitting needs no file still uploading, so submit refuses (409, with
        the readiness problems) rather than end an editor's upload; the upload goes on."""
        await finished_upload(client, headers, study, "S1.fastq.gz")
        location = await started_upload(client, editor_headers, study)
        refused = await client.post(study_url(study, "/submit"), headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (409, "STUDY_INCOMPLETE")
        assert "FILE_UPLOADING" in {error["code"] for error in refused.json()["errors"]}
        done = await patch(client, location, editor_headers, HALF, GOOD_GZ[HALF:])
        assert done.status_code == 204, done.text
        submitted = await client.post(study_url(study, "/submit"), headers=headers)
        assert submitted.status_code == 200, submitted.text

    async def test_an_upload_created_while_submitting_ends(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        headers: dict[str, str],
        study: Study,
        editor_headers: dict[str, str],
    ) -> None:
        """One the readiness check did not see (created concurrently, PostgreSQL reading
        committed rows): the study leaves draft, the upload ends with it."""
        await finished_upload(client, headers, study, "S1.fastq.gz")
        kept = await objects(app)
        location = await started_upload(client, editor_headers, study)

        async def ready(*args: object, **kwargs: object) -> list[object]:
            return []

        monkeypatch.setattr(study_service, "find_problems", ready)
        submitted = await client.post(study_url(study, "/submit"), headers=headers)
        assert submitted.status_code == 200, submitted.text
        assert await unfinished_rows(session) == (0, 0)
        assert await objects(app) == kept
        assert (await client.head(location, headers=editor_headers)).status_code == 404

    async def test_deleting_the_study_mid_chunk_leaves_nothing(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        headers: dict[str, str],
        study: Study,
        committed_keys: list[str],
    ) -> None:
        location = await started_upload(client, headers, study)

        async def delete_study() -> None:
            deleted = await client.delete(study_url(study), headers=headers)
            assert deleted.status_code == 204, deleted.text

        response = await last_chunk_interrupted(client, location, headers, delete_study)
        assert (response.status_code, response.json()["code"]) == (404, "UPLOAD_NOT_FOUND")
        assert committed_keys == []
        assert await objects(app) == []


class TestFinishedUploadAfterward:
    async def test_head_still_says_done_once_the_study_left_draft(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        study: Study,
    ) -> None:
        location, file_id = await finished_upload(client, headers, study, "S1.fastq.gz")
        await leave_draft(session, study)
        head = await client.head(location, headers=headers)
        assert head.status_code == 200
        assert head.headers["upload-offset"] == head.headers["upload-length"]
        assert head.headers["upload-file-id"] == file_id
        again = await patch(client, location, headers, len(GOOD_GZ), b"")
        assert (again.status_code, again.headers["upload-file-id"]) == (204, file_id)

    async def test_but_not_to_a_caller_who_no_longer_sees_the_study(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
    ) -> None:
        location, _ = await finished_upload(client, editor_headers, study, "S1.fastq.gz")
        await revoke_access(session, editor)
        assert (await client.head(location, headers=editor_headers)).status_code == 404
        # A viewer still sees it.
        await add_member(session, study=study, user=editor, role=MemberRole.VIEWER)
        await session.commit()
        assert (await client.head(location, headers=editor_headers)).status_code == 200


class TestCleanupTask:
    async def test_a_stranded_upload_whose_uploader_lost_access_is_discarded(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
        committed_keys: list[str],
    ) -> None:
        await test_tus.TestStrandedUploads().strand(
            client, monkeypatch, editor_headers, study, GOOD_GZ
        )
        # Access lost without the upload being ended (as a race with removal could leave it).
        await revoke_access(session, editor)
        assert await cleanup.finish_stranded_uploads(app) == 0
        await assert_nothing_stored(app, session, committed_keys)
        assert await session.scalar(select(func.count(Upload.id))) == 0

    async def test_unfinished_uploads_that_may_not_go_on_are_discarded(
        self,
        client: httpx.AsyncClient,
        app: FastAPI,
        session: AsyncSession,
        settings: Settings,
        headers: dict[str, str],
        study: Study,
        editor: User,
        editor_headers: dict[str, str],
    ) -> None:
        other_study = await create_study(session, owner=editor, samples=1, title="Another")
        await session.commit()
        allowed = await started_upload(client, editor_headers, other_study)
        await started_upload(client, editor_headers, study)
        await started_upload(client, headers, study, filename="S1_mine.fq.gz")
        kept = await objects(app)
        await revoke_access(session, editor)
        sweep = (app.state.sessionmaker, app.state.storage)
        assert await cleanup.end_unauthorised_uploads(*sweep) == 1
        assert await unfinished_rows(session) == (2, 2)
        assert len(await objects(app)) == len(kept) - 1
        # The study leaves draft: the owner's upload may not go on either.
        await leave_draft(session, study)
        assert await cleanup.end_unauthorised_uploads(*sweep) == 1
        assert await unfinished_rows(session) == (1, 1)
        assert await cleanup.end_unauthorised_uploads(*sweep) == 0
        done = await patch(client, allowed, editor_headers, HALF, GOOD_GZ[HALF:])
        assert done.status_code == 204, done.text
