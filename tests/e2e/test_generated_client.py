"""A typed Python client generated from the served document drives the API end to end.

openapi-python-client turns /openapi.json into a package (one module per operation, named by
its operationId; one model per schema). The test generates it into a temporary folder, requires
a clean generation (no warnings), imports it, and, against the API's uvicorn on its free port,
registers and logs in, creates a study, adds a sample, lists studies anonymously and reads the
dashboard, all through the generated functions and models.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.e2e.helpers import expect

pytestmark = pytest.mark.e2e

PACKAGE = "mosaic_generated_client"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PASSWORD = "generated-client-password-0123"


@pytest.fixture
def generated(local_stack: Stack, tmp_path: Path) -> Iterator[ModuleType]:
    """The client package generated from the served document, importable as ``PACKAGE``."""
    document = tmp_path / "openapi.json"
    document.write_bytes(expect(httpx.get(f"{local_stack.api_url}/openapi.json"), 200).content)
    # Formatting the output (ruff, by default) is no part of what is tested. The generator knows
    # no tus chunk type: its own override reads application/offset+octet-stream as the binary
    # body it is, as a user generating a client would configure it.
    config = tmp_path / "config.yaml"
    config.write_text(
        "post_hooks: []\n"
        "content_type_overrides:\n"
        "  application/offset+octet-stream: application/octet-stream\n"
    )
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Warning" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_drives_a_deposit(generated: ModuleType, local_stack: Stack) -> None:
    models = module("models")
    base_url = local_stack.api_url
    anonymous = generated.Client(base_url=base_url, raise_on_unexpected_status=True)
    email = f"generated-{uuid.uuid4().hex[:8]}@example.org"

    # Operations that also work anonymously declare security [{}] or [bearer, {}];
    # openapi-python-client types them as needing an AuthenticatedClient, but a plain Client
    # works (it sends no Authorization header), as the contract says.
    user = module("api.auth.register").sync(
        client=anonymous,
        body=models.RegisterIn(email=email, password=PASSWORD, full_name="Generated Client"),
    )
    assert isinstance(user, models.UserRead)
    assert (user.email, user.role.value) == (email, "researcher")
    pair = module("api.auth.login").sync(
        client=anonymous, body=models.LoginIn(email=email, password=PASSWORD)
    )
    assert isinstance(pair, models.TokenPair)
    researcher = generated.AuthenticatedClient(
        base_url=base_url, token=pair.access_token, raise_on_unexpected_status=True
    )
    me = module("api.auth.read_me").sync(client=researcher)
    assert isinstance(me, models.UserRead)
    assert me.id == user.id

    study = module("api.studies.create_study").sync(
        client=researcher,
        body=models.StudyCreate(title="Generated client study", authors=["Ada Lovelace"]),
    )
    assert isinstance(study, models.StudyRead)
    assert study.status.value == "draft"
    assert study.my_role.value == "owner"
    sample = module("api.samples.create_sample").sync(
        study.accession,
        client=researcher,
        body=models.SampleCreate(sample_id="S1", organism="Mus musculus", sex="female"),
    )
    assert isinstance(sample, models.SampleRead)
    assert (sample.sample_id, sample.organism, sample.files) == ("S1", "Mus musculus", [])
    samples = module("api.samples.list_samples").sync(study.accession, client=researcher)
    assert isinstance(samples, models.PaginatedSampleRead)
    assert [item.sample_id for item in samples.items] == ["S1"]

    mine = module("api.studies.list_studies").sync(client=researcher)
    assert isinstance(mine, models.PaginatedStudyRead)
    assert study.accession in {item.accession for item in mine.items}
    public = module("api.studies.list_studies").sync(client=anonymous)
    assert isinstance(public, models.PaginatedStudyRead)
    assert study.accession not in {item.accession for item in public.items}
    assert all(item.my_role.value == "public" for item in public.items)
    hidden = module("api.studies.get_study").sync_detailed(study.accession, client=anonymous)
    assert hidden.status_code == 404
    assert isinstance(hidden.parsed, models.ErrorOut)
    assert hidden.parsed.code == "STUDY_NOT_FOUND"

    summary = module("api.dashboard.dashboard_summary").sync(client=researcher)
    assert isinstance(summary, models.Summary)
    assert summary.studies.total == 1
    assert summary.studies.by_status.draft == 1
    assert summary.samples == 1
    stats = module("api.statistics.public_stats").sync(client=anonymous)
    assert isinstance(stats, models.PublicStats)
    assert stats.studies == public.total
