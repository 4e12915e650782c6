"""Run the sequence-file suites against both storage backends: local disk and S3 (a moto
server on a real loopback socket). Each test module imports ``settings`` from
here, which parametrises every test of the module over the two backends; each S3 test gets its
own bucket, so "nothing was kept" is checked on an empty bucket."""

from __future__ import annotations

import uuid

import pytest
from pydantic import SecretStr

from src.config import Settings


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The suite's settings with the storage backend of this run."""
    if request.param == "local":
        return settings
    moto = request.getfixturevalue("moto_url")
    return settings.model_copy(
        update={
            "storage_backend": "s3",
            "s3_endpoint_url": moto,
            "s3_bucket": f"t-{uuid.uuid4().hex[:24]}",
            "s3_access_key_id": SecretStr("testing"),
            "s3_secret_access_key": SecretStr("testing"),
        }
    )


def server_environment(settings: Settings) -> dict[str, str]:
    """Environment variables giving a real API process the same storage as ``settings``."""
    if settings.storage_backend != "s3":
        return {}
    assert settings.s3_endpoint_url is not None
    return {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": settings.s3_endpoint_url,
        "S3_BUCKET": settings.s3_bucket,
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
        "S3_REGION": settings.s3_region,
    }
