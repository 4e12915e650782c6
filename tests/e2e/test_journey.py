"""The whole journey of a study through nginx, on each storage backend.

A researcher registers, logs in, creates a study, imports a sample sheet and uploads FASTQ files
three ways (multipart form, tus with tuspy in several chunks, raw PUT); the study is ready and is
submitted; an admin makes a colleague a reviewer, who approves it; an anonymous visitor finds it by
search and downloads a file whole and by range, with matching checksums; the dashboards count it.
Each step is a test of its own, in order, sharing the ``Journey`` of its backend; a step whose
predecessor failed fails at once, naming the step that broke.

With local storage the download is handed to nginx (X-Accel-Redirect): asked directly, the API
answers with that header and no body, so the bytes the visitor receives did not pass through it.
With S3 the API streams the object itself.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from tusclient import client as tus_client

from tests.e2e.conftest import Stack
from tests.e2e.helpers import Fastq, bearer, expect, gzipped_fastq, login

pytestmark = pytest.mark.e2e

PASSWORD = "journey-password-0123"
READS = 3000
SHEET = (
    "Sample_ID,Sample,Organism,Tissue,Sex,Date_Sample_Prep,Biological_Repeat\n"
    "S1,Liver one,Mus musculus,liver,F,2024-03,1\n"
    "S2,Liver two,Mus musculus,liver,male,2024,2\n"
)


@dataclass
class Journey:
    """What the steps of one backend's journey hand on to the next."""

    stack: Stack
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    done: list[str] = field(default_factory=list)
    researcher_token: str = ""
    researcher_email: str = ""
    admin_token: str = ""
    everything_before: dict[str, Any] = field(default_factory=dict)
    accession: str = ""
    study_id: str = ""
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    fastq: dict[str, Fastq] = field(
        default_factory=lambda: {
            "S1_R1.fastq.gz": gzipped_fastq("S1_R1.fastq.gz", reads=READS, mate="1"),
            "S1_R2.fastq.gz": gzipped_fastq("S1_R2.fastq.gz", reads=READS, mate="2"),
            "S2.fastq.gz": gzipped_fastq("S2.fastq.gz", reads=READS // 2, mate=None),
        }
    )

    def after(self, *steps: str) -> None:
        """Fail at once when an earlier step did not complete."""
        missing = [step for step in steps if step not in self.done]
        if missing:
            pytest.fail(f"earlier step(s) failed: {', '.join(missing)}")

    @property
    def researcher(self) -> dict[str, str]:
        return bearer(self.researcher_token)


@pytest.fixture(scope="session")
def journey(stack: Stack) -> Journey:
    return Journey(stack=stack)


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client() as client:
        yield client


class TestJourney:
    def test_register_and_login(self, journey: Journey, client: httpx.Client) -> None:
        journey.admin_token = login(client, journey.stack.admin_email, journey.stack.admin_password)
        journey.everything_before = expect(
            client.get(
                "/api/v1/dashboard/summary",
                headers=bearer(journey.admin_token),
                params={"scope": "all"},
            ),
            200,
        ).json()

        journey.researcher_email = f"Researcher.{journey.tag}@Example.org"
        registered = expect(
            client.post(
                "/api/v1/auth/register",
                json={
                    "email": journey.researcher_email,
                    "password": PASSWORD,
                    "full_name": "Rosalind Franklin",
                },
            ),
            201,
        ).json()
        assert registered["email"] == journey.researcher_email.lower()
        assert registered["role"] == "researcher"
        assert not {"password", "password_hash"} & set(registered)
        again = client.post(
            "/api/v1/auth/register",
            json={
                "email": journey.researcher_email.upper(),
                "password": PASSWORD,
                "full_name": "X",
            },
        )
        assert expect(again, 409).json()["code"] == "EMAIL_TAKEN"

        response = expect(
            client.post(
                "/api/v1/auth/login",
                json={"email": journey.researcher_email, "password": PASSWORD},
            ),
            200,
        )
        pair = response.json()
        assert pair["token_type"] == "bearer"
        cookie = response.headers["set-cookie"].lower()
        assert pair["refresh_token"].lower() in cookie
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        journey.researcher_token = pair["access_token"]
        me = expect(client.get("/api/v1/auth/me", headers=journey.researcher), 200).json()
        assert me["id"] == registered["id"]
        # nginx passes the request id through both ways.
        traced = client.get(
            "/api/v1/auth/me", headers={**journey.researcher, "X-Request-ID": "e2e-1"}
        )
        assert traced.headers["x-request-id"] == "e2e-1"
        journey.done.append("register_and_login")

    def test_create_study(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("register_and_login")
        study = expect(
            client.post(
                "/api/v1/studies",
                headers=journey.researcher,
                json={
                    "title": f"Liver regeneration atlas {journey.tag}",
                    "description": "Bulk RNA-seq of regenerating mouse liver.",
                    "authors": ["Rosalind Franklin", "Ada Lovelace"],
                },
            ),
            201,
        ).json()
        assert study["status"] == "draft"
        assert re.fullmatch(r"MOSAIC-\d{4,}", study["accession"])
        assert study["my_role"] == "owner"
        journey.accession, journey.study_id = study["accession"], study["id"]
        by_accession = expect(
            client.get(f"/api/v1/studies/{journey.accession}", headers=journey.researcher), 200
        )
        assert by_accession.json()["id"] == journey.study_id
        assert by_accession.headers.get("etag")
        # nginx refuses a JSON body over 1 MiB itself, in the API's error format.
        too_big = client.patch(
            f"/api/v1/studies/{journey.accession}",
            headers={**journey.researcher, "Content-Type": "application/json"},
            content=b'{"description": "' + b"x" * (2 * 1024 * 1024) + b'"}',
        )
        assert expect(too_big, 413).json()["code"] == "PAYLOAD_TOO_LARGE"
        assert too_big.json()["request_id"] == too_big.headers["x-request-id"]
        # Not public: an anonymous visitor cannot tell it exists.
        hidden = expect(client.get(f"/api/v1/studies/{journey.accession}"), 404)
        assert hidden.json()["code"] == "STUDY_NOT_FOUND"
        journey.done.append("create_study")

    def test_upload_sample_sheet(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("create_study")
        path = f"/api/v1/studies/{journey.accession}/sample-sheet"
        files = {"file": ("samples.csv", SHEET.encode(), "text/csv")}
        checked = expect(client.post(path, headers=journey.researcher, files=files), 200).json()
        assert checked["valid"] is True
        assert checked["mode"] == "validate"
        assert checked["row_count"] == 2
        assert any(w["row"] == 2 and w["column"].lower() == "sex" for w in checked["warnings"])
        applied = expect(
            client.post(path, headers=journey.researcher, files=files, params={"mode": "append"}),
            201,
        ).json()
        assert applied["created"] == 2
        samples = expect(
            client.get(f"/api/v1/studies/{journey.accession}/samples", headers=journey.researcher),
            200,
        ).json()
        assert samples["total"] == 2
        by_id = {sample["sample_id"]: sample for sample in samples["items"]}
        assert by_id["S1"]["sex"] == "female"
        assert by_id["S1"]["organism"] == "Mus musculus"
        assert by_id["S2"]["date_sample_prep"] == "2024"
        journey.done.append("upload_sample_sheet")

    def test_upload_multipart(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("upload_sample_sheet")
        fastq = journey.fastq["S1_R1.fastq.gz"]
        path = f"/api/v1/studies/{journey.accession}/samples/S1/files"
        wrong = client.post(
            path,
            headers=journey.researcher,
            files={"file": (fastq.filename, fastq.data, "application/gzip")},
            data={"md5": "0" * 32},
        )
        assert expect(wrong, 422).json()["code"] == "CHECKSUM_MISMATCH"
        assert expect(client.get(path, headers=journey.researcher), 200).json() == []

        created = expect(
            client.post(
                path,
                headers=journey.researcher,
                files={"file": (fastq.filename, fastq.data, "application/gzip")},
                data={"md5": fastq.md5, "sha256": fastq.sha256},
            ),
            201,
        ).json()
        assert created["status"] == "valid", created["errors"]
        assert created["read"] == "R1"
        assert (created["size"], created["md5"], created["sha256"]) == (
            fastq.size,
            fastq.md5,
            fastq.sha256,
        )
        assert (created["read_count"], created["base_count"]) == (
            fastq.read_count,
            fastq.base_count,
        )
        journey.files[fastq.filename] = created
        journey.done.append("upload_multipart")

    def test_upload_tus(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("upload_sample_sheet")
        fastq = journey.fastq["S1_R2.fastq.gz"]
        options = client.options("/api/v1/uploads", headers=journey.researcher)
        assert expect(options, 204).headers["tus-version"].startswith("1.0.0")
        assert "checksum" in options.headers["tus-extension"]

        tus = tus_client.TusClient(
            f"{journey.stack.url}/api/v1/uploads", headers=journey.researcher
        )
        # Several chunks, so several PATCH requests, each of which nginx may send to either worker.
        chunk_size = max(16 * 1024, fastq.size // 5)
        uploader = tus.uploader(
            file_stream=io.BytesIO(fastq.data),
            chunk_size=chunk_size,
            upload_checksum=True,
            metadata={
                "study": journey.accession,
                "sample_id": "S1",
                "filename": fastq.filename,
                "read": "R2",
                "sha256": fastq.sha256,
            },
        )
        uploader.upload()
        assert uploader.offset == fastq.size
        file_id = uploader.request.response_headers.get("upload-file-id")
        assert file_id, uploader.request.response_headers
        created = expect(client.get(f"/api/v1/files/{file_id}", headers=journey.researcher), 200)
        record = created.json()
        assert record["status"] == "valid", record["errors"]
        assert (record["read"], record["filename"]) == ("R2", fastq.filename)
        assert (record["size"], record["md5"], record["sha256"]) == (
            fastq.size,
            fastq.md5,
            fastq.sha256,
        )
        assert record["read_count"] == fastq.read_count
        head = client.head(uploader.url, headers={**journey.researcher, "Tus-Resumable": "1.0.0"})
        assert head.status_code in {404, 410} or head.headers.get("upload-offset") == str(
            fastq.size
        )
        journey.files[fastq.filename] = record
        journey.done.append("upload_tus")

    def test_upload_raw_put(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("upload_sample_sheet")
        fastq = journey.fastq["S2.fastq.gz"]
        content_md5 = base64.b64encode(hashlib.md5(fastq.data).digest()).decode()
        created = expect(
            client.put(
                f"/api/v1/studies/{journey.accession}/samples/S2/files/{fastq.filename}",
                headers={
                    **journey.researcher,
                    "Content-MD5": content_md5,
                    "X-Checksum-SHA256": fastq.sha256,
                    "Content-Type": "application/octet-stream",
                },
                content=fastq.data,
            ),
            201,
        ).json()
        assert created["status"] == "valid", created["errors"]
        assert created["read"] == "single"
        assert created["sha256"] == fastq.sha256
        assert created["read_count"] == fastq.read_count
        journey.files[fastq.filename] = created
        journey.done.append("upload_raw_put")

    def test_readiness_and_submit(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("upload_multipart", "upload_tus", "upload_raw_put")
        study = f"/api/v1/studies/{journey.accession}"
        readiness = expect(client.get(f"{study}/readiness", headers=journey.researcher), 200)
        assert readiness.json() == {"ready": True, "problems": []}
        submitted = expect(client.post(f"{study}/submit", headers=journey.researcher), 200).json()
        assert submitted["status"] == "in_review"
        assert submitted["submitted_at"]
        assert (submitted["sample_count"], submitted["file_count"]) == (2, 3)
        assert submitted["total_bytes"] == sum(f.size for f in journey.fastq.values())
        locked = client.patch(study, headers=journey.researcher, json={"title": "Changed"})
        assert expect(locked, 409).json()["code"] == "STUDY_LOCKED"
        journey.done.append("submit")

    def test_reviewer_approves(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("submit")
        email = f"reviewer.{journey.tag}@example.org"
        reviewer = expect(
            client.post(
                "/api/v1/auth/register",
                json={"email": email, "password": PASSWORD, "full_name": "Barbara McClintock"},
            ),
            201,
        ).json()
        reviewer_token = login(client, email, PASSWORD)
        study = f"/api/v1/studies/{journey.accession}"
        refused = client.post(
            f"{study}/review", headers=bearer(reviewer_token), json={"decision": "approve"}
        )
        assert refused.status_code in {403, 404}, refused.text
        promoted = expect(
            client.patch(
                f"/api/v1/auth/users/{reviewer['id']}",
                headers=bearer(journey.admin_token),
                json={"role": "reviewer"},
            ),
            200,
        ).json()
        assert promoted["role"] == "reviewer"
        queue = expect(
            client.get(
                "/api/v1/studies",
                headers=bearer(reviewer_token),
                params={"scope": "all", "status": "in_review"},
            ),
            200,
        ).json()
        assert journey.accession in [item["accession"] for item in queue["items"]]
        approved = expect(
            client.post(
                f"{study}/review",
                headers=bearer(reviewer_token),
                json={"decision": "approve", "comment": "Complete and consistent."},
            ),
            200,
        ).json()
        assert approved["status"] == "published"
        assert approved["published_at"]
        events = expect(client.get(f"{study}/events", headers=journey.researcher), 200).json()
        actions = " ".join(event["action"] for event in events["items"])
        assert "submit" in actions
        assert "approve" in actions or "publish" in actions
        journey.done.append("review")

    def test_anonymous_search_and_download(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("review")
        found = expect(client.get("/api/v1/studies", params={"q": journey.tag}), 200).json()
        assert [item["accession"] for item in found["items"]] == [journey.accession]
        assert found["items"][0]["my_role"] == "public"
        files = expect(
            client.get(f"/api/v1/studies/{journey.accession}/samples/S1/files"), 200
        ).json()
        assert {f["filename"] for f in files} == {"S1_R1.fastq.gz", "S1_R2.fastq.gz"}
        record = next(f for f in files if f["filename"] == "S1_R1.fastq.gz")
        fastq = journey.fastq["S1_R1.fastq.gz"]
        url = record["download_url"]

        whole = expect(client.get(url), 200)
        assert hashlib.sha256(whole.content).hexdigest() == fastq.sha256
        assert whole.headers["x-checksum-sha256"] == fastq.sha256
        assert whole.headers["etag"].strip('"') == fastq.sha256
        assert "attachment" in whole.headers["content-disposition"]
        assert fastq.filename in whole.headers["content-disposition"]
        assert whole.headers["accept-ranges"] == "bytes"
        assert "x-accel-redirect" not in whole.headers

        part = expect(client.get(url, headers={"Range": "bytes=100-1123"}), 206)
        assert part.headers["content-range"] == f"bytes 100-1123/{fastq.size}"
        assert part.content == fastq.data[100:1124]
        tail = expect(client.get(url, headers={"Range": "bytes=-500"}), 206)
        assert tail.content == fastq.data[-500:]
        head = expect(client.head(url), 200)
        assert int(head.headers["content-length"]) == fastq.size
        outside = client.get(url, headers={"Range": f"bytes={fastq.size + 10}-"})
        assert expect(outside, 416).headers.get("content-range") == f"bytes */{fastq.size}"

        # What the API itself sent back, asked directly rather than through nginx.
        direct = expect(httpx.get(f"{journey.stack.api_url}{url}", timeout=60), 200)
        if journey.stack.backend == "local":
            accel = direct.headers.get("x-accel-redirect", "")
            assert accel.startswith("/_protected/"), dict(direct.headers)
            assert direct.content == b""
            assert (
                journey.stack.data_dir / "objects" / accel.removeprefix("/_protected/")
            ).is_file()
        else:
            assert "x-accel-redirect" not in direct.headers
            assert hashlib.sha256(direct.content).hexdigest() == fastq.sha256
        journey.done.append("download")

    def test_dashboard_numbers(self, journey: Journey, client: httpx.Client) -> None:
        journey.after("download")
        fastq = list(journey.fastq.values())
        total_bytes = sum(f.size for f in fastq)
        mine = expect(
            client.get("/api/v1/dashboard/summary", headers=journey.researcher), 200
        ).json()
        assert mine["studies"]["total"] == 1
        assert mine["studies"]["by_status"] == {"draft": 0, "in_review": 0, "published": 1}
        assert mine["samples"] == 2
        assert mine["files"] == {"total": 3, "valid": 3, "invalid": 0, "uploading": 0}
        assert mine["bytes"] == total_bytes
        assert mine["reads"] == sum(f.read_count for f in fastq)
        assert mine["bases"] == sum(f.base_count for f in fastq)
        assert mine["recent_events"], mine

        stats = expect(client.get("/api/v1/stats"), 200).json()
        assert stats == {
            "studies": 1,
            "samples": 2,
            "files": 3,
            "bytes": total_bytes,
            "organisms": 1,
        }

        everything = expect(
            client.get(
                "/api/v1/dashboard/summary",
                headers=bearer(journey.admin_token),
                params={"scope": "all"},
            ),
            200,
        ).json()
        before = journey.everything_before
        assert everything["users"]["total"] == before["users"]["total"] + 2
        for role in ("researcher", "reviewer"):
            assert everything["users"]["by_role"][role] == before["users"]["by_role"][role] + 1
        assert everything["studies"]["by_status"]["published"] == (
            before["studies"]["by_status"]["published"] + 1
        )
        assert everything["samples"] == before["samples"] + 2
        assert everything["files"]["valid"] == before["files"]["valid"] + 3
        assert everything["bytes"] == before["bytes"] + total_bytes
        queue = [entry.get("accession") for entry in everything["review_queue"]]
        assert journey.accession not in queue
        refused = client.get(
            "/api/v1/dashboard/summary", headers=journey.researcher, params={"scope": "all"}
        )
        assert expect(refused, 403).json()["code"] == "FORBIDDEN"
        journey.stack.assert_running()
        journey.done.append("dashboard")
