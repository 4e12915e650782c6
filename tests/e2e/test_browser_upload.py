"""A browser app on another origin uploads with tus-js-client and reads a download's checksum.

The page (tests/js/browser/upload.html, with tus-js-client's browser bundle from node_modules) is
served by a small server of the test's own under ``BROWSER_APP_ORIGIN``, a host name headless
Chromium maps to it; the API, reached through nginx at 127.0.0.1, allows that origin (the stacks
set CORS_ORIGINS). Everything the page does crosses origins, so it works only if CORS answers
every request (preflights included) and exposes the headers it reads: Location and Upload-Offset
for tus, Upload-File-Id at the end, X-Checksum-SHA256 on the download.
"""

from __future__ import annotations

import functools
import html
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import require
from tests.e2e.conftest import BROWSER_APP_ORIGIN, ROOT, Stack
from tests.e2e.helpers import Fastq, expect
from tests.e2e.test_docs_browser import chromium_binary, run_chromium
from tests.e2e.test_js_clients import Depositor, fastq_file, new_depositor

pytestmark = pytest.mark.e2e

PAGE_DIR = ROOT / "tests" / "js" / "browser"
TUS_BUNDLE = ROOT / "tests" / "js" / "node_modules" / "tus-js-client" / "dist" / "tus.min.js"
CHUNK_SIZE = 32 * 1024


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A static server for the page, its script and the file to upload; (its folder, port)."""
    require(TUS_BUNDLE.is_file(), "tus-js-client is not installed (cd tests/js && npm ci)")
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copy(PAGE_DIR / "upload.html", folder / "upload.html")
    shutil.copy(TUS_BUNDLE, folder / "tus.min.js")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def run_page(
    stack: Stack, page_server: tuple[Path, int], tmp_path: Path, *, download: bool
) -> tuple[Fastq, Depositor, dict[str, Any]]:
    """Upload a FASTQ from the page (and download it if asked); the page's report."""
    binary = chromium_binary()
    require(binary is not None, "chromium is not installed (apt-get install chromium)")
    assert binary is not None
    folder, port = page_server
    fastq, path = fastq_file(folder)
    with stack.client() as client:
        depositor = new_depositor(client)
    options = {
        "api": stack.url,
        "token": depositor.token,
        "study": depositor.accession,
        "sample_id": depositor.sample_id,
        "file": f"/{path.name}",
        "chunkSize": CHUNK_SIZE,
        "download": download,
    }
    app_host = urlsplit(BROWSER_APP_ORIGIN).hostname
    page = f"{BROWSER_APP_ORIGIN}/upload.html#{quote(json.dumps(options))}"
    dom = run_chromium(
        binary,
        tmp_path / "profile",
        "--dump-dom",
        page,
        resolver_rules=f"MAP {app_host} 127.0.0.1:{port}, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    )
    assert dom.returncode == 0, dom.stderr[-3000:]
    text = dom.stdout.split('<pre id="result">', 1)[1].split("</pre>", 1)[0]
    assert text != "running", f"the page did not finish\n{dom.stderr[-3000:]}"
    report: dict[str, Any] = json.loads(html.unescape(text))
    assert "error" not in report, report
    methods = [method for method, _ in report["requests"]]
    assert methods[0] == "POST", report
    assert methods.count("PATCH") == -(-fastq.size // CHUNK_SIZE), report
    assert report["fileId"], report
    with stack.client() as client:
        record = expect(
            client.get(f"/api/v1/files/{report['fileId']}", headers=depositor.headers), 200
        ).json()
    assert (record["status"], record["sha256"]) == ("valid", fastq.sha256)
    return fastq, depositor, report


def test_browser_app_uploads_with_tus_across_origins(
    stack: Stack, page_server: tuple[Path, int], tmp_path: Path
) -> None:
    run_page(stack, page_server, tmp_path, download=False)


def test_browser_app_reads_the_checksum_of_a_download(
    stack: Stack, page_server: tuple[Path, int], tmp_path: Path
) -> None:
    """On every stack: with local storage nginx sends the file (X-Accel-Redirect) and re-emits
    the API's CORS headers, so the browser reads the download and its checksum headers."""
    fastq, _, report = run_page(stack, page_server, tmp_path, download=True)
    assert report["status"] == 200, report
    assert report["size"] == fastq.size, report
    assert report["sha256"] == fastq.sha256, report
    assert report["md5"] == fastq.md5, report
    assert report["requestId"], report
