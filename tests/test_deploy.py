"""The deployment files: docker-compose.yml, the Dockerfile and the nginx configuration.

No Docker engine is needed: compose files are checked with ``docker compose config``, the
Dockerfile with hadolint, and nginx for real: the configuration rendered by ``nginx/render.py``
(from the same files compose mounts) must pass ``nginx -t`` and, run in the foreground on loopback
in front of a small stand-in API, must route, limit, stream and hand off downloads as designed.
A missing tool skips its tests locally and fails them under CI=true.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from nginx import render as nginx_render

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
UPLOAD_PATHS = [
    "/api/v1/studies/MSC000001/samples/S1/files",
    "/api/v1/studies/MSC000001/samples/S1/files/reads_R1.fastq.gz",
    "/api/v1/uploads",
    "/api/v1/uploads/0f3c2a",
]
SMALL_BODY_PATHS = ["/api/v1/studies", "/api/v1/auth/token", "/api/v1/uploadsX"]
SHEET_PATH = "/api/v1/studies/MSC000001/sample-sheet"
DUMMY_ENV = {
    "POSTGRES_PASSWORD": "postgres-password-for-tests",
    "SECRET_KEY": "k" * 48,
    "S3_ACCESS_KEY_ID": "mosaic",
    "S3_SECRET_ACCESS_KEY": "s3-secret-for-tests",
}


def require_tool(*names: str) -> str:
    """The first of ``names`` found (PATH, the venv, /usr/sbin); else skip, or fail under CI."""
    for name in names:
        for candidate in (
            shutil.which(name),
            Path(sys.executable).parent / name,
            Path("/usr/sbin") / name,
        ):
            if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    message = f"{' or '.join(names)} not installed"
    if IN_CI:
        pytest.fail(f"required in CI: {message}")
    pytest.skip(message)


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


# --- docker compose ------------------------------------------------------------------------------


def compose_command() -> list[str]:
    """``docker-compose`` (Debian's package), or the ``docker compose`` plugin."""
    if found := shutil.which("docker-compose"):
        return [found]
    docker = shutil.which("docker")
    if docker and run([docker, "compose", "version"]).returncode == 0:
        return [docker, "compose"]
    require_tool("docker-compose")
    raise AssertionError("unreachable")


def compose_project(tmp_path: Path, env: dict[str, str]) -> Path:
    """A copy of the files compose reads, with a generated .env beside them."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "docker-compose.yml", project)
    shutil.copy(REPO / "Dockerfile", project)
    shutil.copytree(REPO / "nginx", project / "nginx")
    (project / ".env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    return project


def compose_config(project: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if k not in DUMMY_ENV and not k.startswith("COMPOSE")
    }
    return run(
        [*compose_command(), "-f", str(project / "docker-compose.yml"), "config"],
        cwd=project,
        env=env,
    )


def volume_entry(entry: str | dict[str, Any]) -> tuple[str, str, bool]:
    """(source, target, read_only) from the short (compose v1) or long (v2) syntax."""
    if isinstance(entry, dict):
        return str(entry["source"]), str(entry["target"]), bool(entry.get("read_only"))
    source, target, *mode = entry.split(":")
    return source, target, bool(mode) and "ro" in mode[0].split(",")


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = compose_project(tmp_path_factory.mktemp("compose"), DUMMY_ENV)
    result = compose_config(project)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


class TestComposeFile:
    def test_only_nginx_publishes_a_port(self, compose: dict[str, Any]) -> None:
        services = compose["services"]
        assert set(services) >= {"nginx", "api", "postgres", "minio"}
        published = {name for name, service in services.items() if service.get("ports")}
        assert published == {"nginx"}
        (port,) = services["nginx"]["ports"]
        assert int(port["target"]) == 80
        assert int(port["published"]) == 8080

    def test_api_uses_postgres_and_waits_for_healthy_dependencies(
        self, compose: dict[str, Any]
    ) -> None:
        api = compose["services"]["api"]
        env = api["environment"]
        assert env["DATABASE_URL"] == (
            "postgresql+asyncpg://mosaic:postgres-password-for-tests@postgres:5432/mosaic"
        )
        assert env["SECRET_KEY"] == DUMMY_ENV["SECRET_KEY"]
        assert env["ENVIRONMENT"] == "production"
        assert env["DOWNLOAD_ACCEL"] == "nginx"
        assert env["STORAGE_BACKEND"] in {"local", "s3"}
        assert {name: dep["condition"] for name, dep in api["depends_on"].items()} == {
            "postgres": "service_healthy",
            "minio": "service_healthy",
        }
        assert "--workers" in api["command"]
        for name in ("postgres", "minio"):
            assert compose["services"][name]["healthcheck"]["test"]

    def test_nginx_shares_the_data_volume_read_only(self, compose: dict[str, Any]) -> None:
        api_mounts = [volume_entry(v) for v in compose["services"]["api"]["volumes"]]
        nginx_mounts = [volume_entry(v) for v in compose["services"]["nginx"]["volumes"]]
        assert ("data", "/data", False) in api_mounts
        assert ("data", "/data", True) in nginx_mounts
        objects_dir = compose["services"]["nginx"]["environment"]["MOSAIC_OBJECTS_DIR"]
        assert objects_dir == compose["services"]["api"]["environment"]["DATA_DIR"] + "/objects"
        targets = {target for _, target, read_only in nginx_mounts if read_only}
        assert {"/etc/nginx/nginx.conf", "/etc/nginx/templates/default.conf.template"} <= targets

    def test_nginx_environment_fills_every_template_placeholder(
        self, compose: dict[str, Any]
    ) -> None:
        env = compose["services"]["nginx"]["environment"]
        assert {k for k in env if k.startswith("MOSAIC_")} == nginx_render.placeholders()
        assert env["NGINX_ENVSUBST_FILTER"] == "^MOSAIC_"

    def test_no_secret_is_written_in_the_file(self) -> None:
        text = (REPO / "docker-compose.yml").read_text()
        for variable in DUMMY_ENV:
            assert re.search(rf"\$\{{{variable}:\?[^}}]+\}}", text), variable
        assert not re.search(r"(PASSWORD|SECRET)[A-Z_]*:\s*[\"']?[A-Za-z0-9]", text)

    def test_missing_secret_stops_compose(self, tmp_path: Path) -> None:
        env = {k: v for k, v in DUMMY_ENV.items() if k != "SECRET_KEY"}
        result = compose_config(compose_project(tmp_path, env))
        assert result.returncode != 0
        assert "set SECRET_KEY in .env" in result.stderr


# --- Dockerfile ----------------------------------------------------------------------------------


class TestDockerfile:
    def test_passes_hadolint(self) -> None:
        hadolint = require_tool("hadolint")
        result = run([hadolint, "--no-color", "Dockerfile"], cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr

    def test_runs_unprivileged_with_a_healthcheck(self) -> None:
        text = (REPO / "Dockerfile").read_text()
        bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
        assert len(bases) >= 2, "multi-stage build"
        for base in bases:
            assert re.fullmatch(r"python:3\.1[12]\.\d+-slim(-\w+)?", base), base
        (user,) = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
        assert user.split(":")[0] not in {"root", "0"}
        assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, flags=re.MULTILINE)
        assert re.search(r"^EXPOSE 8000$", text, flags=re.MULTILINE)
        assert '"--host", "0.0.0.0"' in text
        ignored = (REPO / ".dockerignore").read_text().splitlines()
        # The build context starts from nothing, so .env and data/ never get into the image.
        assert "*" in ignored
        assert not [line for line in ignored if line.startswith("!") and ".env" in line]


# --- nginx configuration -------------------------------------------------------------------------


@dataclass
class Location:
    modifier: str  # "", "=", "~", "~*" or "^~"
    pattern: str
    directives: dict[str, str] = field(default_factory=dict)

    def matches(self, path: str) -> bool:
        if self.modifier == "=":
            return path == self.pattern
        if self.modifier in {"~", "~*"}:
            flags = re.IGNORECASE if self.modifier == "~*" else 0
            return re.search(self.pattern, path, flags) is not None
        return path.startswith(self.pattern)


def parse_locations(config: str) -> tuple[dict[str, str], list[Location]]:
    """The server block's own directives and its locations, in order (one level, as written)."""
    server = config[config.index("server {") :]
    server_directives: dict[str, str] = {}
    locations: list[Location] = []
    current: Location | None = None
    for raw in server.splitlines()[1:]:
        line = raw.split("#", 1)[0].strip()
        if opened := re.match(r"location\s+(=|~\*|~|\^~)?\s*(\S+)\s*\{$", line):
            current = Location(opened.group(1) or "", opened.group(2))
            locations.append(current)
        elif line == "}":
            if current is None:
                break
            current = None
        elif line.endswith(";"):
            name, _, value = line[:-1].partition(" ")
            (current.directives if current else server_directives)[name] = value.strip()
    return server_directives, locations


def select_location(locations: list[Location], path: str) -> Location:
    """nginx's choice: exact match, else longest prefix unless a regex (in order) matches."""
    for location in locations:
        if location.modifier == "=" and location.matches(path):
            return location
    prefixes = [loc for loc in locations if loc.modifier in {"", "^~"} and loc.matches(path)]
    longest = max(prefixes, key=lambda loc: len(loc.pattern), default=None)
    if longest is not None and longest.modifier == "^~":
        return longest
    for location in locations:
        if location.modifier in {"~", "~*"} and location.matches(path):
            return location
    assert longest is not None, f"no location for {path}"
    return longest


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("rendered")
    return nginx_render.render(
        listen_port=8080,
        upstreams=["127.0.0.1:8001", "127.0.0.1:8002"],
        objects_dir=base / "objects",
        prefix_dir=base / "prefix",
    )


class TestNginxConfig:
    def test_rendered_config_passes_nginx_t(self, tmp_path: Path) -> None:
        nginx = require_tool("nginx")
        config = nginx_render.write_config(
            listen_port=free_port(),
            upstreams=["127.0.0.1:8001"],
            objects_dir=tmp_path / "objects",
            prefix_dir=tmp_path / "prefix",
        )
        result = run([nginx, "-t", "-p", str(config.parent), "-c", str(config)])
        assert result.returncode == 0, result.stderr
        assert "test is successful" in result.stderr

    def test_render_reuses_the_compose_files(self, rendered: str) -> None:
        rendered_lines = [line.strip() for line in rendered.splitlines()]
        directives = [line for line in rendered_lines if line and not line.startswith("#")]
        assert not [line for line in directives if "${" in line or "/etc/nginx/conf.d" in line]
        kept = [
            line.strip()
            for line in nginx_render.MAIN_CONFIG.read_text().splitlines()
            if not line.rstrip().endswith(nginx_render.RENDER_MARKER)
        ]
        assert [line for line in kept if line not in rendered_lines] == []
        server = nginx_render.render_server(
            dict.fromkeys(nginx_render.placeholders(), "PLACEHOLDER")
        )
        template_lines = [line.strip() for line in server.splitlines() if "PLACEHOLDER" not in line]
        assert [line for line in template_lines if line not in rendered_lines] == []
        assert "server 127.0.0.1:8001;" in rendered_lines
        assert "server 127.0.0.1:8002;" in rendered_lines

    def test_envsubst_renders_the_template_like_render_py(self) -> None:
        envsubst = require_tool("envsubst")
        values = {
            "MOSAIC_LISTEN": "80",
            "MOSAIC_UPSTREAM_SERVERS": "server api:8000;",
            "MOSAIC_OBJECTS_DIR": "/data/objects",
            "MOSAIC_UPLOAD_MAX_BODY_SIZE": "51g",
            "MOSAIC_CORS_ORIGINS": "https://app.example.org, http://localhost:5173",
        }
        # What the nginx image's 20-envsubst-on-templates.sh runs, with NGINX_ENVSUBST_FILTER.
        shell_format = " ".join(f"${{{name}}}" for name in values)
        result = run(
            [envsubst, shell_format],
            input=nginx_render.SERVER_TEMPLATE.read_text(),
            env={"PATH": os.environ.get("PATH", ""), "HOST": "wrong", **values},
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == nginx_render.render_server(values)

    @pytest.mark.parametrize("path", UPLOAD_PATHS)
    def test_upload_routes_stream_large_bodies(self, rendered: str, path: str) -> None:
        _, locations = parse_locations(rendered)
        directives = select_location(locations, path).directives
        assert directives["proxy_request_buffering"] == "off"
        assert directives["proxy_buffering"] == "off"
        assert directives["client_max_body_size"] == nginx_render.DEFAULT_UPLOAD_MAX_BODY_SIZE
        assert int(directives["proxy_read_timeout"].rstrip("s")) >= 600
        assert int(directives["client_body_timeout"].rstrip("s")) >= 120
        assert directives["proxy_pass"] == "http://mosaic_api"

    @pytest.mark.parametrize("path", [*SMALL_BODY_PATHS, SHEET_PATH])
    def test_other_routes_keep_small_buffered_bodies(self, rendered: str, path: str) -> None:
        server, locations = parse_locations(rendered)
        directives = select_location(locations, path).directives
        assert "proxy_request_buffering" not in directives
        expected = "25m" if path == SHEET_PATH else "1m"
        assert directives.get("client_max_body_size", server["client_max_body_size"]) == expected

    def test_protected_location_is_internal(self, rendered: str, tmp_path: Path) -> None:
        _, locations = parse_locations(rendered)
        location = select_location(locations, "/_protected/studies/a/b")
        assert location.pattern == "/_protected/"
        assert "internal" in location.directives
        assert location.directives["alias"].endswith("/objects/")

    def test_headers_are_set_once_for_every_location(self, rendered: str) -> None:
        server, locations = parse_locations(rendered)
        # add_header or proxy_set_header inside a location would silently drop the server's ones.
        for location in locations:
            assert "add_header" not in location.directives, location.pattern
            assert "proxy_set_header" not in location.directives, location.pattern
        for header in ("X-Request-ID", "X-Content-Type-Options", "X-Frame-Options"):
            assert re.search(rf"add_header {header} .* always;", rendered), header
        assert re.search(r"proxy_set_header X-Forwarded-For \$remote_addr;", rendered)
        assert server["proxy_http_version"] == "1.1"


# --- nginx running in front of a stand-in API ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


ALLOWED_ORIGIN = "http://mosaic-app.test"
# CORS_ORIGINS as an operator might write it (spaces after commas), the allowed origin among them.
CORS_ORIGINS = f"https://app.example.org, {ALLOWED_ORIGIN}"
# Origins that are not in CORS_ORIGINS, though close to one or built to slip into the list.
FOREIGN_ORIGINS = [
    "http://elsewhere.test",
    f"{ALLOWED_ORIGIN}.evil.test",
    f"http://evil.{ALLOWED_ORIGIN.removeprefix('http://')}",
    ALLOWED_ORIGIN.replace(".", "x"),
    f"{ALLOWED_ORIGIN},https://app.example.org",
    f"x|{ALLOWED_ORIGIN}",
    "https://app.example.org, http://mosaic-app.test",
]


class StandInAPI(http.server.ThreadingHTTPServer):
    """Echoes what reached it as JSON; answers downloads with X-Accel-Redirect like the API."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StandInHandler)
        self.headers_seen = threading.Event()


class StandInHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StandInAPI

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def handle_one(self) -> None:
        self.server.headers_seen.set()
        remaining = int(self.headers.get("Content-Length") or 0)
        received = 0
        while remaining:
            chunk = self.rfile.read(min(remaining, 65536))
            if not chunk:
                break
            received += len(chunk)
            remaining -= len(chunk)
        if self.path.endswith("/download"):
            self.send_response(200)
            self.send_header("X-Accel-Redirect", "/_protected/studies/s1/f1")
            self.send_header("Content-Type", "application/gzip")
            self.send_header("Content-Disposition", 'attachment; filename="reads.fastq.gz"')
            self.send_header("X-Checksum-SHA256", "ab" * 32)
            if self.headers.get("Origin") == ALLOWED_ORIGIN:
                self.send_header("Access-Control-Allow-Origin", ALLOWED_ORIGIN)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Access-Control-Expose-Headers", "ETag, X-Checksum-SHA256")
                self.send_header("Vary", "Origin")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.dumps(
            {"path": self.path, "headers": dict(self.headers.items()), "received": received}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Request-ID", self.headers.get("X-Request-ID", "missing"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


for _method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
    setattr(StandInHandler, f"do_{_method}", StandInHandler.handle_one)


@dataclass
class ProxyUnderTest:
    port: int
    api: StandInAPI
    object_bytes: bytes

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()


@contextlib.contextmanager
def running_nginx(base: Path, *, upstream: str, objects: Path) -> Iterator[int]:
    """nginx from the project's files in front of ``upstream``, with CORS_ORIGINS; its port."""
    nginx = require_tool("nginx")
    port = free_port()
    config = nginx_render.write_config(
        listen_port=port,
        upstreams=[upstream],
        objects_dir=objects,
        prefix_dir=base / "prefix",
        cors_origins=CORS_ORIGINS,
    )
    process = subprocess.Popen(
        [nginx, "-p", str(config.parent), "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"nginx exited: {output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("nginx did not start listening")
                time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyUnderTest]:
    base = tmp_path_factory.mktemp("nginx-run")
    objects = base / "objects"
    (objects / "studies" / "s1").mkdir(parents=True)
    object_bytes = bytes(range(256)) * 400
    (objects / "studies" / "s1" / "f1").write_bytes(object_bytes)
    api = StandInAPI()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        upstream = f"127.0.0.1:{api.server_address[1]}"
        with running_nginx(base, upstream=upstream, objects=objects) as port:
            yield ProxyUnderTest(port, api, object_bytes)
    finally:
        api.shutdown()
        api.server_close()


@pytest.fixture(scope="module")
def proxy_to_stopped_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyUnderTest]:
    """nginx whose API is down: nothing listens on the upstream's port."""
    base = tmp_path_factory.mktemp("nginx-no-api")
    api = StandInAPI()
    upstream = f"127.0.0.1:{api.server_address[1]}"
    api.server_close()
    with running_nginx(base, upstream=upstream, objects=base / "objects") as port:
        yield ProxyUnderTest(port, api, b"")


def sent_upstream(body: bytes) -> dict[str, Any]:
    received: dict[str, Any] = json.loads(body)
    return received


class TestNginxInFront:
    def test_request_id_is_passed_through_and_returned_once(self, proxy: ProxyUnderTest) -> None:
        response, body = proxy.request("GET", "/healthz", headers={"X-Request-ID": "client-id.1"})
        assert response.status == 200
        assert response.headers.get_all("X-Request-ID") == ["client-id.1"]
        upstream = sent_upstream(body)["headers"]
        assert upstream["X-Request-ID"] == "client-id.1"
        assert upstream["X-Forwarded-For"] == "127.0.0.1"
        assert upstream["X-Forwarded-Proto"] == "http"
        assert upstream["Host"] == f"127.0.0.1:{proxy.port}"

    def test_unusable_request_id_is_replaced(self, proxy: ProxyUnderTest) -> None:
        response, body = proxy.request("GET", "/healthz", headers={"X-Request-ID": "bad id\t!"})
        (returned,) = response.headers.get_all("X-Request-ID") or []
        assert re.fullmatch(r"[0-9a-f]{32}", returned)
        assert sent_upstream(body)["headers"]["X-Request-ID"] == returned

    def test_forwarded_for_cannot_be_forged(self, proxy: ProxyUnderTest) -> None:
        _, body = proxy.request("GET", "/healthz", headers={"X-Forwarded-For": "10.9.8.7"})
        assert sent_upstream(body)["headers"]["X-Forwarded-For"] == "127.0.0.1"

    def test_security_headers_are_on_every_response(self, proxy: ProxyUnderTest) -> None:
        for method, path, body in [
            ("GET", "/api/v1/studies", None),
            ("POST", "/api/v1/studies", b"x" * (2 * 1024 * 1024)),  # nginx's own 413
        ]:
            response, _ = proxy.request(method, path, body=body)
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]

    def test_small_body_limit_answers_in_the_api_error_format(self, proxy: ProxyUnderTest) -> None:
        response, body = proxy.request("POST", "/api/v1/studies", body=b"x" * (2 * 1024 * 1024))
        assert response.status == 413
        assert response.headers["Content-Type"] == "application/json"
        error = json.loads(body)
        assert error["code"] == "PAYLOAD_TOO_LARGE"
        assert error["request_id"] == response.headers["X-Request-ID"]

    def test_sheet_route_accepts_twenty_megabytes(self, proxy: ProxyUnderTest) -> None:
        response, body = proxy.request("POST", SHEET_PATH, body=b"x" * (20 * 1024 * 1024))
        assert response.status == 200
        assert sent_upstream(body)["received"] == 20 * 1024 * 1024
        response, _ = proxy.request("POST", SHEET_PATH, body=b"x" * (26 * 1024 * 1024))
        assert response.status == 413

    @pytest.mark.parametrize(
        ("method", "path"),
        [("PUT", UPLOAD_PATHS[1]), ("POST", UPLOAD_PATHS[0]), ("PATCH", UPLOAD_PATHS[3])],
    )
    def test_upload_reaches_the_api_before_the_body_ends(
        self, proxy: ProxyUnderTest, method: str, path: str
    ) -> None:
        assert self._headers_forwarded_while_body_pending(proxy, method, path)

    def test_other_routes_are_buffered_until_the_body_ends(self, proxy: ProxyUnderTest) -> None:
        # The same probe must be able to fail: a buffered route waits for the whole body.
        assert not self._headers_forwarded_while_body_pending(proxy, "POST", SHEET_PATH)

    @staticmethod
    def _headers_forwarded_while_body_pending(
        proxy: ProxyUnderTest, method: str, path: str
    ) -> bool:
        total = 4 * 1024 * 1024
        first = b"@" * (256 * 1024)
        proxy.api.headers_seen.clear()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n"
                "Content-Type: application/offset+octet-stream\r\n"
                "Connection: close\r\n\r\n".encode()
                + first
            )
            forwarded_early = proxy.api.headers_seen.wait(timeout=2)
            sock.sendall(b"@" * (total - len(first)))
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line.split()[1] == b"200", response[:500]
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["received"] == total
        return forwarded_early

    def test_download_is_served_by_nginx_with_ranges(self, proxy: ProxyUnderTest) -> None:
        path = "/api/v1/files/F1/download"
        response, body = proxy.request("GET", path)
        assert response.status == 200
        assert body == proxy.object_bytes
        assert response.headers["Content-Type"] == "application/gzip"
        assert response.headers["Content-Disposition"] == 'attachment; filename="reads.fastq.gz"'
        assert len(response.headers.get_all("X-Request-ID") or []) == 1

        response, body = proxy.request("GET", path, headers={"Range": "bytes=100-199"})
        assert response.status == 206
        assert body == proxy.object_bytes[100:200]
        assert response.headers["Content-Range"] == f"bytes 100-199/{len(proxy.object_bytes)}"

        response, _ = proxy.request("GET", path, headers={"Range": "bytes=999999-"})
        assert response.status == 416

        response, body = proxy.request("HEAD", path)
        assert response.status == 200
        assert int(response.headers["Content-Length"]) == len(proxy.object_bytes)

    def test_download_keeps_the_apis_cors_and_checksum_headers(self, proxy: ProxyUnderTest) -> None:
        path = "/api/v1/files/F1/download"
        for method in ("GET", "HEAD"):
            response, _ = proxy.request(method, path, headers={"Origin": ALLOWED_ORIGIN})
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            exposed = response.headers["Access-Control-Expose-Headers"]
            assert "X-Checksum-SHA256" in exposed
            assert response.headers.get_all("Vary") == ["Origin"]
            assert response.headers["X-Checksum-SHA256"] == "ab" * 32
        response, _ = proxy.request("GET", path, headers={"Origin": "http://elsewhere.test"})
        assert response.headers.get("Access-Control-Allow-Origin") is None
        assert response.headers.get("Vary") is None

    def test_own_413_carries_cors_for_an_allowed_origin_only(self, proxy: ProxyUnderTest) -> None:
        too_big = b"x" * (2 * 1024 * 1024)
        response, body = proxy.request(
            "POST", "/api/v1/studies", body=too_big, headers={"Origin": ALLOWED_ORIGIN}
        )
        assert response.status == 413
        assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
        assert_nginx_cors(response)
        for origin in FOREIGN_ORIGINS:
            response, _ = proxy.request(
                "POST", "/api/v1/studies", body=too_big, headers={"Origin": origin}
            )
            assert response.status == 413
            assert_no_cors(response, origin)

    def test_protected_files_are_not_reachable_directly(self, proxy: ProxyUnderTest) -> None:
        response, body = proxy.request("GET", "/_protected/studies/s1/f1")
        assert response.status == 404
        assert proxy.object_bytes[:100] not in body


def assert_nginx_cors(response: http.client.HTTPResponse) -> None:
    """nginx's own CORS answer for ALLOWED_ORIGIN: each header once."""
    assert response.headers.get_all("Access-Control-Allow-Origin") == [ALLOWED_ORIGIN]
    assert response.headers.get_all("Access-Control-Allow-Credentials") == ["true"]
    assert response.headers.get_all("Access-Control-Expose-Headers") == ["X-Request-ID"]
    assert response.headers.get_all("Vary") == ["Origin"]


def assert_no_cors(response: http.client.HTTPResponse, origin: str) -> None:
    for header in ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Vary"):
        assert response.headers.get(header) is None, (origin, header)


class TestNginxWithTheApiDown:
    @pytest.mark.parametrize("path", ["/api/v1/studies", UPLOAD_PATHS[1], "/healthz"])
    def test_unreachable_api_answers_in_the_error_format_with_cors(
        self, proxy_to_stopped_api: ProxyUnderTest, path: str
    ) -> None:
        response, body = proxy_to_stopped_api.request(
            "GET", path, headers={"Origin": ALLOWED_ORIGIN}
        )
        assert response.status == 502
        assert response.headers["Content-Type"] == "application/json"
        error = json.loads(body)
        assert error["code"] == "SERVICE_UNAVAILABLE"
        assert error["request_id"] == response.headers["X-Request-ID"]
        assert_nginx_cors(response)

    def test_unreachable_api_gives_no_cors_to_other_origins(
        self, proxy_to_stopped_api: ProxyUnderTest
    ) -> None:
        for origin in FOREIGN_ORIGINS:
            response, _ = proxy_to_stopped_api.request(
                "GET", "/api/v1/studies", headers={"Origin": origin}
            )
            assert response.status == 502
            assert_no_cors(response, origin)
        response, _ = proxy_to_stopped_api.request("GET", "/api/v1/studies")
        assert_no_cors(response, "no Origin")
