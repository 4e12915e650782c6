"""``mosaic`` as a user runs it (the installed console script, in a subprocess) against the real
API: log in, create a study from a sheet, upload a run of 8 samples x 2 reads, resume a killed
run, report broken files, submit, download and verify."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

from mosaic_client.state import FileState, UploadState, fingerprint

from tests.client.conftest import PASSWORD, Server, User, restart_server
from tests.client.data import SAMPLES, write_run, write_sheet
from tests.sampleFileUpload.fastq_samples import records

COMMANDS = (
    *("login", "logout", "whoami", "create", "sheet"),
    *("upload", "status", "submit", "download"),
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _create(user: User, home: Path, samples: list[str] = SAMPLES) -> str:
    sheet = write_sheet(home / "samples.csv", samples)
    result = user.run(
        "create",
        "--title",
        "Liver RNA-seq",
        "--description",
        "Eight mice",
        "--author",
        "Ada Lovelace",
        "--author",
        "Alan Turing",
        "--sheet",
        sheet,
        "--json",
    )
    assert result.code == 0, result.stdout + result.stderr
    body = result.json()
    assert body["sheet"]["valid"] is True
    assert body["sheet"]["created"] == len(samples)
    accession: str = body["accession"]
    return accession


def _uploads(records_: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """tus requests grouped by upload (its path), creations included."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records_:
        key = record["location"] if record["method"] == "POST" else record["path"]
        if key:
            grouped.setdefault(key, []).append(record)
    return grouped


def _total(files: list[Path]) -> int:
    return sum(path.stat().st_size for path in files)


def _all_stored(user: User, accession: str, files: list[Path]) -> None:
    with user.api() as api:
        for path in files:
            sample_id = path.name.split("_S")[0]
            stored = api.get(f"/api/v1/studies/{accession}/samples/{sample_id}/files").json()
            match = [f for f in stored if f["filename"] == path.name]
            assert len(match) == 1
            assert match[0]["status"] == "valid"
            assert match[0]["sha256"] == _sha256(path)


def _rerun_sends_only_what_the_server_lacks(
    user: User, server: Server, accession: str, files: list[Path], mark: int
) -> None:
    """After an interrupted run (its tus requests are ``server.requests()[mark:]``), what the
    server holds of each upload is asked (HEAD); the re-run must finish every file and send
    exactly the rest: no byte the server had, none twice."""
    first = server.requests()[mark:]
    mark = len(server.requests())
    first_run = _uploads(first)
    finished = {key for key, group in first_run.items() if any(r["file_id"] for r in group)}
    length = {key: group[0]["length"] for key, group in first_run.items()}
    acknowledged: dict[str, int] = {}
    with user.api() as api:
        for key in first_run.keys() - finished:
            head = api.head(key, headers={"Tus-Resumable": "1.0.0"})
            # Every byte had arrived and the server finished the file: HEAD says so with the
            # file's id while the upload is kept (404 once it has expired).
            if head.status_code == 404 or "upload-file-id" in head.headers:
                finished.add(key)
                continue
            assert head.status_code == 200
            acknowledged[key] = int(head.headers["upload-offset"])
    assert acknowledged, "the interruption came after every file had finished"
    assert any(0 < offset < length[key] for key, offset in acknowledged.items())
    assert sum(r["received"] for r in first) >= _total(files) // 3

    result = user.run("upload", accession, "run", "--jobs", "3", "--json")
    assert result.code == 0, result.stdout + result.stderr
    outcome = {Path(f["file"]).name: f for f in result.json()["files"]}
    assert {f["status"] for f in outcome.values()} <= {"valid", "skipped"}
    assert sum(f["status"] == "skipped" for f in outcome.values()) == len(finished)

    second_run = _uploads(server.requests()[mark:])
    assert not second_run.keys() & finished  # finished files: not a byte
    # An upload the server created but whose URL the killed run never recorded holds no byte
    # (a chunk needs the URL): the re-run sends that file anew, as a new upload (in `new` below).
    for key in [k for k, offset in acknowledged.items() if offset == 0 and k not in second_run]:
        assert not any(r["method"] == "PATCH" for r in first_run[key])
        del acknowledged[key]
    for key, offset in acknowledged.items():
        patches = [r for r in second_run[key] if r["method"] == "PATCH"]
        assert patches[0]["offset"] == offset  # continued exactly where the server was
        assert sum(r["received"] for r in patches) == length[key] - offset
    new = second_run.keys() - acknowledged.keys()
    for key in new:
        assert sum(r["received"] for r in second_run[key]) == second_run[key][0]["length"]
    resent = sum(r["received"] for group in second_run.values() for r in group)
    expected = sum(length[k] - acknowledged[k] for k in acknowledged) + sum(
        second_run[k][0]["length"] for k in new
    )
    assert resent == expected
    _all_stored(user, accession, files)


class TestHelp:
    def test_every_command_shows_examples(self, user: User) -> None:
        result = user.run("--help")
        assert result.code == 0
        assert "examples:" in result.stdout
        for command in COMMANDS:
            assert command in result.stdout
            sub = user.run(command, "--help")
            assert sub.code == 0, command
            assert "examples:" in sub.stdout
            assert f"mosaic {command}" in sub.stdout
            assert "--json" in sub.stdout

    def test_unknown_options_are_usage_errors(self, user: User) -> None:
        assert user.run("upload", "MOSAIC-0001").code == 2
        assert user.run("sheet", "X", "f.csv", "--mode", "merge").code == 2
        assert user.run("frobnicate").code == 2


class TestLogin:
    def test_login_whoami_logout(self, user: User) -> None:
        wrong = user.run("login", "--email", user.email, "--json", stdin="not-the-password\n")
        assert wrong.code == 1
        assert wrong.json()["error"]["code"] == "INVALID_CREDENTIALS"
        assert user.run("whoami").code == 2  # not logged in: a usage problem

        logged = user.run("login", "--email", user.email, "--json", stdin=PASSWORD + "\n")
        assert logged.code == 0
        credentials = Path(logged.json()["credentials"])
        assert credentials.parent == user.config_dir
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600

        me = user.run("whoami", "--json")
        assert me.code == 0
        assert me.json()["email"] == user.email
        assert user.email in user.run("whoami").stdout

        out = user.run("logout", "--json")
        assert out.json() == {"url": user.server.url, "logged_out": True}
        assert user.run("whoami").code == 2

    def test_the_url_of_the_last_login_is_the_default(self, user: User) -> None:
        user.login()
        env = user.env()
        del env["MOSAIC_URL"]
        assert user.run("whoami", "--json", env=env).json()["url"] == user.server.url

    def test_mosaic_token_for_pipelines(self, user: User) -> None:
        result = user.run("whoami", "--json", env=user.env(MOSAIC_TOKEN=user.token()))
        assert result.code == 0
        assert result.json()["email"] == user.email
        assert not (user.config_dir / "credentials.json").exists()


class TestSheet:
    def test_cell_errors_as_a_table_and_the_annotated_report(self, user: User) -> None:
        user.login()
        accession = _create(user, user.home, SAMPLES[:1])
        bad = user.home / "bad.csv"
        bad.write_text(
            "Sample_ID,Organism,Sex,Date_Sample_Prep\n"
            "LIV_M2,Mus musculus,female,2024-01-01\n"
            "LIV_M3,Mus musculus,sometimes,03/04/2022\n"
        )
        report = user.home / "report.csv"
        result = user.run("sheet", accession, bad, "--mode", "append", "--report", report)
        assert result.code == 3, result.stderr
        assert "row" in result.stdout
        assert "Sex" in result.stdout
        assert "Date_Sample_Prep" in result.stdout
        annotated = report.read_text()
        assert "errors" in annotated.splitlines()[0].lower()
        assert "LIV_M3" in annotated

        as_json = user.run("sheet", accession, bad, "--json").json()
        assert as_json["valid"] is False
        assert {(e["row"], e["column"]) for e in as_json["errors"]} >= {
            (3, "Sex"),
            (3, "Date_Sample_Prep"),
        }
        # Nothing was saved by the refused append; a valid one is applied.
        good = write_sheet(user.home / "good.csv", ["LIV_M2"])
        applied = user.run("sheet", accession, good, "--mode", "append", "--json")
        assert applied.code == 0
        assert applied.json()["created"] == 1


class TestUpload:
    def test_eight_samples_two_reads_three_at_a_time_then_submit_and_download(
        self, user: User, client_server: Server
    ) -> None:
        user.login()
        accession = _create(user, user.home)
        files = write_run(user.home / "run")

        plan = user.run("upload", accession, "run", "--dry-run", "--json")
        assert plan.code == 0
        body = plan.json()
        assert body["unplaced"] == []
        placed = {Path(item["file"]).name: item["sample_id"] for item in body["plan"]}
        assert placed["LIV_M10_S8_R1_001.fastq.gz"] == "LIV_M10"  # not LIV_M1
        assert placed["LIV_M1_S1_R2_001.fastq.gz"] == "LIV_M1"
        assert {item["read"] for item in body["plan"]} == {"R1", "R2"}

        before = len(client_server.requests())
        result = user.run("upload", accession, "run", "--jobs", "3", "--chunk-size", "16K")
        assert result.code == 0, result.stdout + result.stderr
        assert "16 valid" in result.stdout
        assert "LIV_M10_S8_R1_001.fastq.gz" in result.stdout

        uploads = _uploads(client_server.requests()[before:])
        assert len(uploads) == 16
        received = sum(r["received"] for group in uploads.values() for r in group)
        assert received == sum(path.stat().st_size for path in files)  # nothing sent twice

        # A re-run of a finished run sends nothing. Counted across the re-run alone: under load
        # the first run may retry a request (a creation refused as busy, say), which is fine.
        after = len(client_server.requests())
        again = user.run("upload", accession, "run", "--json")
        assert again.code == 0
        assert {f["status"] for f in again.json()["files"]} == {"skipped"}
        assert len(client_server.requests()) == after

        status = user.run("status", accession, "--json")
        assert status.code == 0, status.stdout
        assert status.json()["ready"] is True
        assert status.json()["file_count"] == 16

        submitted = user.run("submit", accession)
        assert submitted.code == 0, submitted.stderr
        assert "published" in submitted.stdout

        out = user.home / "download"
        fetched = user.run("download", accession, "--out", out, "--jobs", "3", "--json")
        assert fetched.code == 0, fetched.stdout + fetched.stderr
        assert {f["status"] for f in fetched.json()["files"]} == {"downloaded"}
        for path in files:
            sample_id = placed[path.name]
            assert (out / sample_id / path.name).read_bytes() == path.read_bytes()

        # An interrupted download (a part file) is continued; a damaged one is refused.
        victim = files[0]
        target = out / placed[victim.name] / victim.name
        file_id = next(f["file_id"] for f in fetched.json()["files"] if Path(f["path"]) == target)
        part = target.with_name(f".{target.name}.{file_id}.part")
        target.unlink()
        part.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
        resumed = user.run("download", accession, "--out", out, "--json")
        assert resumed.code == 0
        statuses = {Path(f["path"]).name: f["status"] for f in resumed.json()["files"]}
        assert statuses[victim.name] == "downloaded"
        assert sum(s == "skipped" for s in statuses.values()) == 15
        assert target.read_bytes() == victim.read_bytes()
        assert not part.exists()

        target.unlink()
        part.write_bytes(b"X" * (victim.stat().st_size // 2))
        damaged = user.run("download", file_id, "--out", out / placed[victim.name], "--json")
        assert damaged.code == 1
        assert damaged.json()["files"][0]["status"] == "failed"
        assert "SHA-256" in damaged.json()["files"][0]["message"]
        assert not target.exists()
        assert not part.exists()
        single = user.run("download", file_id, "--out", out / placed[victim.name])
        assert single.code == 0
        assert target.read_bytes() == victim.read_bytes()

        # Published and public: anyone can download it, without logging in.
        anonymous = user.env(MOSAIC_CONFIG_DIR=str(user.home / "nobody"))
        public = user.run("download", accession, "--out", user.home / "public", env=anonymous)
        assert public.code == 0, public.stderr
        assert _sha256(user.home / "public" / placed[victim.name] / victim.name) == _sha256(victim)

    def test_a_killed_run_resumes_without_resending_acknowledged_bytes(
        self, user: User, client_server: Server
    ) -> None:
        user.login()
        accession = _create(user, user.home)
        files = write_run(user.home / "run", reads=3000)
        mark = len(client_server.requests())

        # The server stops reading bodies once a third of the run has arrived; the client is
        # killed (-9, no clean-up) while it waits, then the server sees the connections drop.
        client_server.hold(after=_total(files) // 3)
        process = subprocess.Popen(
            user.command("upload", accession, "run", "--jobs", "3", "--chunk-size", "32K"),
            env=user.env(),
            cwd=user.home,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            client_server.wait_held()
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            client_server.release()
        assert process.returncode == -signal.SIGKILL
        _rerun_sends_only_what_the_server_lacks(user, client_server, accession, files, mark)

    def test_ctrl_c_stops_the_run_and_the_next_one_continues(
        self, user: User, client_server: Server
    ) -> None:
        user.login()
        accession = _create(user, user.home)
        files = write_run(user.home / "run", reads=3000)
        mark = len(client_server.requests())
        client_server.hold(after=_total(files) // 3)
        process = subprocess.Popen(
            user.command("upload", accession, "run", "--jobs", "3", "--chunk-size", "32K"),
            env=user.env(),
            cwd=user.home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            client_server.wait_held()
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            client_server.release()
        assert process.returncode == 130, stderr
        assert "Run the same command again" in stderr
        _rerun_sends_only_what_the_server_lacks(user, client_server, accession, files, mark)

    def test_a_server_restart_mid_run_is_ridden_out(
        self, own_server: Server, tmp_path: Path
    ) -> None:
        home = tmp_path / "home"
        home.mkdir()
        user = User(own_server, home)
        user.login()
        accession = _create(user, home)
        files = write_run(home / "run", reads=3000)
        own_server.hold(after=_total(files) // 3)
        process = subprocess.Popen(
            user.command(
                "upload", accession, "run", "--jobs", "3", "--chunk-size", "32K", "--json"
            ),
            env=user.env(),
            cwd=home,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            own_server.wait_held()
            before = own_server.requests()
            restart_server(own_server)  # a crash (-9) while three uploads are mid-chunk
            stdout, stderr = process.communicate(timeout=300)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, stdout + stderr
        assert {f["status"] for f in json.loads(stdout)["files"]} == {"valid"}

        after = own_server.requests()  # the new process's count
        old, new = _uploads(before), _uploads(after)
        length = {r["location"]: r["length"] for r in before + after if r["method"] == "POST"}
        for key, group in new.items():
            patches = [r for r in group if r["method"] == "PATCH" and r["status"] == 204]
            resumed_at = patches[0]["offset"]
            acknowledged = max(
                [r["answered_offset"] or 0 for r in old.get(key, []) if r["status"] in (201, 204)],
                default=0,
            )
            assert resumed_at >= acknowledged  # nothing the old process acknowledged, again
            assert sum(r["received"] for r in group) == length[key] - resumed_at
        _all_stored(user, accession, files)

    def test_a_run_killed_between_a_creation_and_its_record_sends_that_file_anew(
        self, user: User
    ) -> None:
        """The server created the upload, but the run died before writing its URL down: the
        re-run knows the "uploading" file of that name is its own (it marked the creation
        first), removes it and sends the file; no byte of it had been sent."""
        user.login()
        accession = _create(user, user.home, ["LIV_M1"])
        files = write_run(user.home / "run", samples=["LIV_M1"])
        path = files[0]
        metadata = {"study": accession, "sample_id": "LIV_M1", "filename": path.name}
        encoded = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in metadata.items()
        )
        with user.api() as api:
            created = api.post(
                "/api/v1/uploads",
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": str(path.stat().st_size),
                    "Upload-Metadata": encoded,
                },
            )
            assert created.status_code == 201, created.text
        size, mtime_ns = fingerprint(path)
        UploadState(user.server.url, accession, user.config_dir).put(
            path,
            FileState(
                size=size,
                mtime_ns=mtime_ns,
                sha256=_sha256(path),
                sample_id="LIV_M1",
                creating=True,
            ),
        )

        result = user.run("upload", accession, "run", "--json")
        assert result.code == 0, result.stdout + result.stderr
        assert {f["status"] for f in result.json()["files"]} == {"valid"}
        _all_stored(user, accession, files)

    def test_an_invalid_file_is_reported_with_its_sample_and_line(self, user: User) -> None:
        user.login()
        accession = _create(user, user.home, ["LIV_M1", "LIV_M2"])
        run = user.home / "run"
        write_run(run, samples=["LIV_M1"])
        broken = records(5, prefix="LIV_M2.") + b"@LIV_M2.5 1:N:0\nACGT\n+\nIII\n"
        (run / "LIV_M2_R1.fastq.gz").write_bytes(gzip.compress(broken))

        result = user.run("upload", accession, run, "--json")
        assert result.code == 3, result.stdout + result.stderr
        files = {Path(f["file"]).name: f for f in result.json()["files"]}
        bad = files["LIV_M2_R1.fastq.gz"]
        assert bad["status"] == "invalid"
        assert bad["sample_id"] == "LIV_M2"
        assert bad["errors"][0]["code"] == "LENGTH_MISMATCH"
        assert bad["errors"][0]["line"] == 24
        assert {files[n]["status"] for n in files if n != "LIV_M2_R1.fastq.gz"} == {"valid"}

        table = user.run("upload", accession, run)
        assert table.code == 3
        row = next(line for line in table.stdout.splitlines() if "LIV_M2_R1" in line)
        assert "LIV_M2" in row
        assert "skipped" in row  # stored before, and still reported as a problem (exit 3)
        assert "line 24" in table.stdout

    def test_files_that_cannot_be_placed_stop_the_run_until_mapped(self, user: User) -> None:
        user.login()
        accession = _create(user, user.home, ["LIV_M1"])
        run = user.home / "run"
        write_run(run, samples=["LIV_M1"])
        stray = run / "mystery_R1.fastq.gz"
        stray.write_bytes(gzip.compress(records(50, seed=99, prefix="LIV_M1.")))

        dry = user.run("upload", accession, run, "--dry-run")
        assert dry.code == 3
        assert "mystery_R1.fastq.gz" in dry.stdout
        assert "cannot be placed" in dry.stdout

        refused = user.run("upload", accession, run, "--json")
        assert refused.code == 3
        assert [Path(u["file"]).name for u in refused.json()["unplaced"]] == [stray.name]
        with user.api() as api:
            stored = api.get(f"/api/v1/studies/{accession}/samples/LIV_M1/files").json()
        assert stored == []  # nothing was uploaded

        mapping = user.home / "map.tsv"
        mapping.write_text("mystery_R1.fastq.gz\tLIV_M1\n")
        mapped = user.run("upload", accession, run, "--map", mapping, "--json")
        assert mapped.code == 0, mapped.stdout
        outcome = {Path(f["file"]).name: f for f in mapped.json()["files"]}
        assert {f["status"] for f in outcome.values()} == {"valid"}
        assert outcome[stray.name]["sample_id"] == "LIV_M1"
        assert outcome[stray.name]["read"] == "R1"
