"""Dependencies of the sequence-file routes: the module's settings, a file as the caller may see
or change it (401, 404, 403, 409 in that order, like studies), and a request body that reports a
client going away as a clean 400."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from starlette.requests import ClientDisconnect

from src.auth.dependencies import CurrentUser, OptionalUser
from src.dependencies import SessionDep, StorageDep
from src.sampleFileUpload.config import FilesConfig
from src.sampleFileUpload.files import service
from src.sampleFileUpload.files.exceptions import FileNotFoundInStudyError, IncompleteBodyError
from src.sampleFileUpload.files.fastq_workers import FastqWorkers
from src.sampleFileUpload.files.uploads import Receiver
from src.study import visibility
from src.study.constants import AccessRole, FileStatus
from src.study.dependencies import DraftForEditor, EditableSample
from src.study.exceptions import StudyNotFoundError
from src.study.models import SampleFile
from src.study.permissions import ensure_editable_draft
from src.study.visibility import StudyView


def get_files_config(request: Request) -> FilesConfig:
    config: FilesConfig = request.app.state.files_config
    return config


FilesConfigDep = Annotated[FilesConfig, Depends(get_files_config)]


def get_fastq_workers(request: Request) -> FastqWorkers:
    workers: FastqWorkers = request.app.state.fastq_workers
    return workers


FastqWorkersDep = Annotated[FastqWorkers, Depends(get_fastq_workers)]


def get_receiver(
    request: Request,
    view: DraftForEditor,
    sample: EditableSample,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    config: FilesConfigDep,
    workers: FastqWorkersDep,
) -> Receiver:
    """A whole-file upload to a sample the caller may edit, in a draft study."""
    return Receiver(
        session,
        sessions=request.app.state.sessionmaker,
        storage=storage,
        config=config,
        workers=workers,
        user=user,
        view=view,
        sample=sample,
    )


ReceiverDep = Annotated[Receiver, Depends(get_receiver)]

FileId = Annotated[uuid.UUID, Path(description="The file's id.")]


@dataclass(frozen=True)
class FileAccess:
    """A file with its study as the caller sees it."""

    file: SampleFile
    view: StudyView


async def _file_as_seen(session: SessionDep, file_id: uuid.UUID, user: OptionalUser) -> FileAccess:
    file = await service.get_file(session, file_id=file_id)
    if file is None:
        raise FileNotFoundInStudyError
    study_id = file.sample_record.study_id
    try:
        view = await visibility.get_view(session, reference=str(study_id), user=user)
    except StudyNotFoundError:
        raise FileNotFoundInStudyError from None
    # The public sees finished, valid files only: the rest of a study is the team's business.
    if view.my_role == AccessRole.PUBLIC and file.status != FileStatus.VALID:
        raise FileNotFoundInStudyError
    return FileAccess(file=file, view=view)


async def visible_file(session: SessionDep, file_id: FileId, user: OptionalUser) -> FileAccess:
    return await _file_as_seen(session, file_id, user)


async def editable_file(session: SessionDep, file_id: FileId, user: CurrentUser) -> FileAccess:
    access = await _file_as_seen(session, file_id, user)
    ensure_editable_draft(access.view)
    return access


VisibleFile = Annotated[FileAccess, Depends(visible_file)]
EditableFile = Annotated[FileAccess, Depends(editable_file)]


async def request_body(request: Request) -> AsyncIterator[bytes]:
    """The body as it arrives; a client that disconnects mid-body is a 400, not a 500."""
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect:
        raise IncompleteBodyError from None
