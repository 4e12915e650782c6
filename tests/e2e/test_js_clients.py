"""MOSAIC as JavaScript clients meet it: tus-js-client under Node, through nginx.

tus-js-client is the client most browser apps use for tus. The Node script
``tests/js/tus_upload.mjs`` uploads a FASTQ file in small chunks, stops after the first chunk (as
a closed tab or a crash would), then resumes from the upload's URL with a new Upload object; the
test checks what the server made of it. ``npm ci`` in tests/js (``.ci/run`` does it) installs the
pinned client.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require
from tests.e2e.conftest import ROOT, Stack
from tests.e2e.helpers import Fastq, bearer, expect, gzipped_fastq, login

pytestmark = pytest.mark.e2e

JS_DIR = ROOT / "tests" / "js"
NODE_TIMEOUT = 120
CHUNK_SIZE = 32 * 1024
PASSWORD = "js-client-password-0123"


def node_binary() -> str:
    node = shutil.which("node")
    require(node is not None, "node is not installed (apt-get install nodejs)")
    require(
        (JS_DIR / "node_modules" / "tus-js-client").is_dir(),
        "tus-js-client is not installed (cd tests/js && npm ci)",
    )
    assert node is not None
    return node


@dataclass
class Depositor:
    """A fresh researcher with a draft study holding one sample, S1."""

    token: str
    accession: str
    sample_id: str = "S1"

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def new_depositor(client: httpx.Client) -> Depositor:
    email = f"js-{uuid.uuid4().hex[:10]}@example.org"
    expect(
        client.post(
            "/api/v1/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Tus Client"},
        ),
        201,
    )
    token = login(client, email, PASSWORD)
    study = expect(
        client.post(
            "/api/v1/studies",
            headers=bearer(token),
            json={
                "title": "Uploaded with tus-js-client",
                "samples": [{"sample_id": "S1", "organism": "Mus musculus"}],
            },
        ),
        201,
    ).json()
    return Depositor(token=token, accession=study["accession"])


def fastq_file(tmp_path: Path, name: str = "S1_R1.fastq.gz") -> tuple[Fastq, Path]:
    """A gzipped FASTQ of several chunks, on disk for the script."""
    fastq = gzipped_fastq(name, reads=3000, mate="1")
    assert fastq.size > 3 * CHUNK_SIZE
    path = tmp_path / name
    path.write_bytes(fastq.data)
    return fastq, path


def run_tus_upload(
    stack: Stack,
    depositor: Depositor,
    path: Path,
    *,
    endpoint: str = "/api/v1/uploads",
    abort_after_chunks: int | None = None,
    upload_url: str | None = None,
) -> dict[str, Any]:
    """Run tests/js/tus_upload.mjs; its JSON report."""
    options = {
        "endpoint": f"{stack.url}{endpoint}",
        "token": depositor.token,
        "path": str(path),
        "chunkSize": CHUNK_SIZE,
        "abortAfterChunks": abort_after_chunks,
        "uploadUrl": upload_url,
        "metadata": {
            "study": depositor.accession,
            "sample_id": depositor.sample_id,
            "filename": path.name,
        },
    }
    done = subprocess.run(
        [node_binary(), str(JS_DIR / "tus_upload.mjs"), json.dumps(options)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_tus_js_client_resumes_an_aborted_upload(stack: Stack, tmp_path: Path) -> None:
    fastq, path = fastq_file(tmp_path)
    with stack.client() as client:
        depositor = new_depositor(client)
        report = run_tus_upload(stack, depositor, path, abort_after_chunks=1)

        assert report["aborted"] is True
        assert report["url"] == report["firstUrl"], "resumed the same upload, not a new one"
        assert report["resumedFrom"] == CHUNK_SIZE, report
        methods = [method for method, _ in report["requests"]]
        assert methods.count("POST") == 1, report["requests"]
        assert methods.count("HEAD") == 1, report["requests"]
        assert methods.count("PATCH") == -(-fastq.size // CHUNK_SIZE), report["requests"]
        assert all(status in {201, 200, 204} for _, status in report["requests"]), report

        file_id = report["fileId"]
        assert file_id, report
        record = expect(client.get(f"/api/v1/files/{file_id}", headers=depositor.headers), 200)
        created = record.json()
        assert created["status"] == "valid", created["errors"]
        assert (created["filename"], created["read"]) == (fastq.filename, "R1")
        assert (created["size"], created["md5"], created["sha256"]) == (
            fastq.size,
            fastq.md5,
            fastq.sha256,
        )
        assert created["read_count"] == fastq.read_count
        download = expect(
            client.get(f"/api/v1/files/{file_id}/download", headers=depositor.headers), 200
        )
        assert download.content == fastq.data
        files = expect(
            client.get(
                f"/api/v1/studies/{depositor.accession}/samples/S1/files",
                headers=depositor.headers,
            ),
            200,
        ).json()
        assert [entry["id"] for entry in files] == [file_id]


def test_tus_js_client_rerunning_a_finished_upload_sees_it_done(
    stack: Stack, tmp_path: Path
) -> None:
    """API.md: HEAD on a finished upload (until it expires) answers Upload-Offset = length and
    Upload-File-Id, so a client re-running it (it kept the URL) finishes without a new file."""
    fastq, path = fastq_file(tmp_path)
    with stack.client() as client:
        depositor = new_depositor(client)
        first = run_tus_upload(stack, depositor, path)
        assert first["fileId"], first
        again = run_tus_upload(stack, depositor, path, upload_url=first["url"])
        assert again["url"] == first["url"], again
        assert [method for method, _ in again["requests"]] == ["HEAD"], again["requests"]
        assert again["resumedFrom"] == fastq.size, again
        assert again["fileId"] == first["fileId"], again
        files = expect(
            client.get(
                f"/api/v1/studies/{depositor.accession}/samples/S1/files",
                headers=depositor.headers,
            ),
            200,
        ).json()
        assert [entry["id"] for entry in files] == [first["fileId"]]


def test_tus_js_client_with_a_trailing_slash_endpoint(stack: Stack, tmp_path: Path) -> None:
    """API.md: POST /api/v1/uploads/ is the same endpoint, never a redirect."""
    fastq, path = fastq_file(tmp_path)
    with stack.client() as client:
        depositor = new_depositor(client)
        report = run_tus_upload(stack, depositor, path, endpoint="/api/v1/uploads/")
        assert report["requests"][0] == ["POST", 201], report["requests"]
        record = expect(
            client.get(f"/api/v1/files/{report['fileId']}", headers=depositor.headers), 200
        ).json()
        assert (record["status"], record["sha256"]) == ("valid", fastq.sha256)
