"""Render MOSAIC's nginx configuration for a run outside docker compose (tests, a local try-out).

docker compose mounts ``nginx/nginx.conf`` and fills ``nginx/default.conf.template`` with the nginx
image's envsubst step. This module reads the same two files and returns one self-contained
nginx.conf for ``nginx -p PREFIX -c FILE`` in the foreground: the template's ``${MOSAIC_*}``
placeholders are substituted, and only the lines of nginx.conf marked ``# render.py`` (user, pid,
logs, mime types, the conf.d include) are swapped for paths under the prefix. Standard library only.

    python nginx/render.py --listen-port 8080 --upstream 127.0.0.1:8000 \
        --objects-dir data/objects --prefix-dir /tmp/mosaic-nginx
    nginx -p /tmp/mosaic-nginx -c /tmp/mosaic-nginx/nginx.conf
"""

from __future__ import annotations

import argparse
import os
import pwd
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

NGINX_DIR = Path(__file__).resolve().parent
MAIN_CONFIG = NGINX_DIR / "nginx.conf"
SERVER_TEMPLATE = NGINX_DIR / "default.conf.template"
SYSTEM_MIME_TYPES = Path("/etc/nginx/mime.types")
# A little above MAX_UPLOAD_BYTES (50 GiB): a multipart body of a largest allowed file has framing
# around it, and an oversized upload should get the API's FILE_TOO_LARGE, not nginx's 413.
DEFAULT_UPLOAD_MAX_BODY_SIZE = "51g"
RENDER_MARKER = "# render.py"
TEMP_DIRECTIVES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")

_PLACEHOLDER = re.compile(r"\$\{(MOSAIC_[A-Z0-9_]+)\}")
# nginx arguments are written unquoted below, so refuse anything that would need quoting.
_PLAIN_ARGUMENT = re.compile(r"^[^\s;{}'\"$#]+$")
# CORS_ORIGINS goes inside a quoted string of the template's map: no quote, "|", "$" or "\\".
_ORIGIN_LIST = re.compile(r"^[^;{}'\"$#|\\]*$")


def placeholders() -> set[str]:
    """The ``MOSAIC_*`` names the server template expects (docker compose must set each one)."""
    return set(_PLACEHOLDER.findall(SERVER_TEMPLATE.read_text()))


def render_server(values: Mapping[str, str]) -> str:
    """The server template with every placeholder substituted, as envsubst does in the image."""
    template = SERVER_TEMPLATE.read_text()
    missing = placeholders() - set(values)
    if missing:
        raise KeyError(f"no value for {', '.join(sorted(missing))}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _plain(value: str | os.PathLike[str]) -> str:
    text = os.fspath(value)
    if not _PLAIN_ARGUMENT.match(text):
        raise ValueError(f"not usable unquoted in nginx.conf: {text!r}")
    return text


def _origins(value: str) -> str:
    if not _ORIGIN_LIST.match(value):
        raise ValueError(f"not usable as MOSAIC_CORS_ORIGINS: {value!r}")
    return value


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line.strip() else "" for line in text.splitlines())


def render(
    *,
    listen_port: int,
    upstreams: Sequence[str],
    objects_dir: str | os.PathLike[str],
    prefix_dir: str | os.PathLike[str],
    listen_host: str = "127.0.0.1",
    upload_max_body_size: str = DEFAULT_UPLOAD_MAX_BODY_SIZE,
    cors_origins: str = "",
) -> str:
    """A full nginx.conf serving ``listen_host:listen_port`` and proxying to ``upstreams``.

    ``upstreams`` are ``host:port`` addresses of API processes; ``cors_origins`` is the API's
    CORS_ORIGINS, so nginx's own errors carry CORS headers for the same origins. Pid, logs and
    temp files go under ``prefix_dir`` (see ``prepare_prefix``); ``daemon off`` keeps nginx in the
    foreground. Started as root, the workers run as the same user, so they can read
    ``objects_dir`` wherever it is.
    """
    if not upstreams:
        raise ValueError("at least one upstream is needed")
    prefix = Path(prefix_dir).resolve()
    objects = Path(objects_dir).resolve()
    server = render_server(
        {
            "MOSAIC_LISTEN": f"{_plain(listen_host)}:{int(listen_port)}",
            "MOSAIC_UPSTREAM_SERVERS": "\n    ".join(f"server {_plain(u)};" for u in upstreams),
            "MOSAIC_OBJECTS_DIR": _plain(objects),
            "MOSAIC_UPLOAD_MAX_BODY_SIZE": _plain(upload_max_body_size),
            "MOSAIC_CORS_ORIGINS": _origins(cors_origins),
        }
    )
    temp_paths = "\n".join(
        f"{name}_temp_path {_plain(prefix / 'temp' / name)};" for name in TEMP_DIRECTIVES
    )
    if os.geteuid() == 0:
        user = f"user {pwd.getpwuid(0).pw_name};"
    else:
        user = "# user: workers run as the unprivileged user that starts nginx"
    mime_types = (
        f"include {_plain(SYSTEM_MIME_TYPES)};"
        if SYSTEM_MIME_TYPES.is_file()
        else "types { application/json json; text/plain txt; text/html html; }"
    )
    replacements = {
        "user nginx;": user,
        "pid /var/run/nginx.pid;": f"pid {_plain(prefix / 'nginx.pid')};\ndaemon off;",
        "error_log /var/log/nginx/error.log warn;": (
            f"error_log {_plain(prefix / 'logs' / 'error.log')} warn;"
        ),
        "include /etc/nginx/mime.types;": mime_types,
        "access_log /var/log/nginx/access.log mosaic;": (
            f"access_log {_plain(prefix / 'logs' / 'access.log')} mosaic;"
        ),
        "include /etc/nginx/conf.d/*.conf;": f"{temp_paths}\n\n{server}",
    }
    used: set[str] = set()
    lines: list[str] = []
    for line in MAIN_CONFIG.read_text().splitlines():
        if not line.rstrip().endswith(RENDER_MARKER):
            lines.append(line)
            continue
        directive = line.split("#", 1)[0].strip()
        if directive not in replacements or directive in used:
            raise ValueError(f"nginx.conf line marked {RENDER_MARKER!r} not understood: {line!r}")
        used.add(directive)
        indent = line[: len(line) - len(line.lstrip())]
        lines.append(
            _indent(replacements[directive], indent) if indent else replacements[directive]
        )
    if unused := set(replacements) - used:
        raise ValueError(f"nginx.conf no longer has: {', '.join(sorted(unused))}")
    return "\n".join(lines) + "\n"


def prepare_prefix(prefix_dir: str | os.PathLike[str]) -> Path:
    """Create the log and temp directories nginx expects under the prefix; return the prefix."""
    prefix = Path(prefix_dir).resolve()
    for directory in [prefix / "logs", *(prefix / "temp" / name for name in TEMP_DIRECTIVES)]:
        directory.mkdir(parents=True, exist_ok=True)
    return prefix


def write_config(
    *,
    listen_port: int,
    upstreams: Sequence[str],
    objects_dir: str | os.PathLike[str],
    prefix_dir: str | os.PathLike[str],
    **options: str,
) -> Path:
    """Render into ``PREFIX/nginx.conf`` with the prefix's directories made; return the file."""
    prefix = prepare_prefix(prefix_dir)
    config = prefix / "nginx.conf"
    config.write_text(
        render(
            listen_port=listen_port,
            upstreams=upstreams,
            objects_dir=objects_dir,
            prefix_dir=prefix,
            **options,
        )
    )
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listen-port", type=int, default=8080)
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument(
        "--upstream", action="append", dest="upstreams", help="host:port of an API process"
    )
    parser.add_argument("--objects-dir", default="data/objects")
    parser.add_argument("--prefix-dir", required=True)
    parser.add_argument("--upload-max-body-size", default=DEFAULT_UPLOAD_MAX_BODY_SIZE)
    parser.add_argument(
        "--cors-origins", default="", help="the API's CORS_ORIGINS (comma-separated origins)"
    )
    args = parser.parse_args(argv)
    config = write_config(
        listen_port=args.listen_port,
        listen_host=args.listen_host,
        upstreams=args.upstreams or ["127.0.0.1:8000"],
        objects_dir=args.objects_dir,
        prefix_dir=args.prefix_dir,
        upload_max_body_size=args.upload_max_body_size,
        cors_origins=args.cors_origins,
    )
    sys.stdout.write(f"nginx -p {config.parent} -c {config}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
