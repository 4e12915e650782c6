"""The tus tests' caller and study: an owner with a draft study of one sample (S1). Each test
module chooses its storage backends through its own ``settings`` fixture."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.models import User
from src.config import Settings
from src.sampleFileUpload.tus.constants import TUS_VERSION
from src.study.models import Study
from tests.factories import auth_headers, create_user
from tests.study.factories import create_study


@pytest.fixture
async def owner(session: AsyncSession) -> User:
    return await create_user(session, full_name="Tess Tus")


@pytest.fixture
def headers(settings: Settings, owner: User) -> dict[str, str]:
    return {**auth_headers(settings, owner), "Tus-Resumable": TUS_VERSION}


@pytest.fixture
async def study(session: AsyncSession, owner: User) -> Study:
    return await create_study(session, owner=owner, samples=1)
