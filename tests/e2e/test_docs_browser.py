"""/docs and /redoc through nginx, rendered by headless Chromium with no network beyond loopback.

Every host name but 127.0.0.1 resolves to nothing (``--host-resolver-rules``), so a CDN asset
would fail to load and Swagger UI would not render. The test asserts that every operation of
/openapi.json appears in the rendered page, that the browser fetched the assets from nginx, and
keeps a screenshot under test-output/e2e/ for a person to look at.

A failed request is not always a broken page (ReDoc hides a logo it cannot load), so each page is
also loaded with Chromium's network log on, under a host name of its own (Swagger UI skips its
online validator for 127.0.0.1 and localhost only): every URL the browser asked for must be on
the page's own origin.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import require
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
CHROMIUM_TIMEOUT = 90


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    return None


def run_chromium(
    binary: str,
    profile: Path,
    *arguments: str,
    resolver_rules: str = "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules={resolver_rules}",
            "--window-size=1280,2000",
            "--virtual-time-budget=10000",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT,
        check=False,
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails if the file is not a PNG."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_docs_render_offline(local_stack: Stack, output_dir: Path, tmp_path: Path) -> None:
    binary = chromium_binary()
    require(binary is not None, "chromium is not installed (apt-get install chromium)")
    assert binary is not None
    docs = f"{local_stack.url}/docs"
    html = httpx.get(docs, timeout=30).text
    assert "/static/docs/swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"https?://", html), "the docs page loads a remote asset"
    schema = httpx.get(f"{local_stack.url}/openapi.json", timeout=30).json()
    # Swagger UI lists an operation once under each of its tags.
    operations = sum(
        max(1, len(operation.get("tags", [])))
        for path in schema["paths"].values()
        for method, operation in path.items()
        if method in HTTP_METHODS
    )

    dom = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", docs)
    assert dom.returncode == 0, dom.stderr[-3000:]
    rendered = len(re.findall(r'class="opblock-summary-path"', dom.stdout))
    assert rendered == operations, (
        f"{rendered} of {operations} operations rendered\n{dom.stdout[:2000]}\n{dom.stderr[-2000:]}"
    )
    assert "/api/v1/studies/{study}/submit" in dom.stdout
    assert 'class="swagger-ui"' in dom.stdout

    screenshot = output_dir / "docs-swagger-ui.png"
    screenshot.unlink(missing_ok=True)
    shot = run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={screenshot}", docs)
    assert shot.returncode == 0, shot.stderr[-3000:]
    assert screenshot.is_file(), shot.stderr[-3000:]
    assert png_size(screenshot) == (1280, 2000)
    # A blank page compresses to a few kilobytes; a rendered list of operations does not.
    assert screenshot.stat().st_size > 50_000, screenshot.stat().st_size

    # The browser got the assets and the schema from nginx itself.
    browser_requests = [
        line for line in local_stack.nginx_access_log().splitlines() if "HeadlessChrome" in line
    ]
    for asset in (
        "/static/docs/swagger-ui-bundle.js",
        "/static/docs/swagger-ui.css",
        "/openapi.json",
    ):
        assert any(f"GET {asset} " in line and '" 200 ' in line for line in browser_requests), asset


# A name for the stack only the browser knows: Swagger UI treats 127.0.0.1 as local and would
# not show what it does for a real host.
DOCS_HOST = "mosaic-docs.test"


def page_requests(net_log: Path, origin: str) -> list[str]:
    """The URLs of the requests the page at ``origin`` made (its navigation excluded): those
    whose initiator is that origin. The browser's own traffic (update checks, accounts) is not
    the page's and is left out."""
    text = net_log.read_text(errors="replace").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        # A log cut short at exit lacks its closing brackets.
        log = json.loads(text.rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator") == origin
    ]


@pytest.mark.parametrize(("page", "rendered"), [("/docs", "swagger-ui"), ("/redoc", "redoc-wrap")])
def test_docs_make_no_request_outside_the_server(
    local_stack: Stack, tmp_path: Path, page: str, rendered: str
) -> None:
    binary = chromium_binary()
    require(binary is not None, "chromium is not installed (apt-get install chromium)")
    assert binary is not None
    port = urlsplit(local_stack.url).port
    origin = f"http://{DOCS_HOST}:{port}"
    net_log = tmp_path / "net-log.json"
    dom = run_chromium(
        binary,
        tmp_path / "profile",
        f"--log-net-log={net_log}",
        "--dump-dom",
        f"{origin}{page}",
        resolver_rules=f"MAP {DOCS_HOST} 127.0.0.1, MAP * ~NOTFOUND",
    )
    assert dom.returncode == 0, dom.stderr[-3000:]
    assert rendered in dom.stdout, dom.stdout[:2000]
    assert "/api/v1/studies/{study}/submit" in dom.stdout or "submit_study" in dom.stdout

    requests = page_requests(net_log, origin)
    assert f"{origin}/openapi.json" in requests, requests
    outside = [url for url in requests if not url.startswith(f"{origin}/")]
    assert not outside, outside
