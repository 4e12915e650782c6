"""The real API, as ``python main.py serve`` runs it, behind an ASGI layer that counts the body
bytes the server receives on each tus request and can hold uploads at a given byte count.

    python -m tests.client.counting_server --host 127.0.0.1 --port 8123

Settings come from the environment, as for main.py. The layer answers under ``/__test/``:

- ``GET /__test/requests``: every tus PATCH/POST so far: method, path, Upload-Offset and
  Upload-Length sent, body bytes received, status, Location, Upload-Offset and Upload-File-Id
  answered.
- ``POST /__test/hold?after=N``: from now on, once N more body bytes of tus requests have
  arrived, stop reading request bodies (the server waits, as on a stalled link).
- ``GET /__test/held``: answers once a request is being held.
- ``POST /__test/release``: read bodies again (a killed client's requests then see the
  disconnect), and answer once no tus request is in flight any more.

The counts are what the server's own socket delivered to the application, so a test can say how
many bytes the server received, not what a client claims it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import uvicorn

from src.app import create_app
from src.config import Settings
from src.database import upgrade_database

Scope = dict[str, Any]
Message = dict[str, Any]


class Counter:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.records: list[dict[str, Any]] = []
        self.hold_after: int | None = None
        self.since_hold = 0
        self.held = asyncio.Event()
        self.released = asyncio.Event()
        self.released.set()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/__test/"):
            await self.control(scope, send)
            return
        if path.startswith("/api/v1/uploads") and scope["method"] in {"PATCH", "POST"}:
            await self.counted(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def counted(self, scope: Scope, receive: Any, send: Any) -> None:
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        record: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "offset": int(headers.get("upload-offset", "0")),
            "length": int(headers["upload-length"]) if "upload-length" in headers else None,
            "location": None,
            "received": 0,
            "status": None,
            "answered_offset": None,
            "file_id": None,
        }
        self.records.append(record)

        async def counting_receive() -> Message:
            if self.hold_after is not None and self.since_hold >= self.hold_after:
                self.held.set()
                await self.released.wait()
            message: Message = await receive()
            if message["type"] == "http.request":
                size = len(message.get("body", b""))
                record["received"] += size
                self.since_hold += size
            return message

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record["status"] = message["status"]
                for key, value in message.get("headers", []):
                    if key.lower() == b"upload-offset":
                        record["answered_offset"] = int(value)
                    if key.lower() == b"upload-file-id":
                        record["file_id"] = value.decode()
                    if key.lower() == b"location":
                        record["location"] = value.decode()
            await send(message)

        self.in_flight += 1
        self.idle.clear()
        try:
            await self.app(scope, counting_receive, recording_send)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()

    async def control(self, scope: Scope, send: Any) -> None:
        action = scope["path"].removeprefix("/__test/")
        body: Any = {"ok": True}
        if action == "requests":
            body = self.records
        elif action == "hold":
            query = dict(
                part.split("=", 1) for part in scope["query_string"].decode().split("&") if part
            )
            self.hold_after = int(query["after"])
            self.since_hold = 0
            self.held.clear()
            self.released.clear()
        elif action == "held":
            await self.held.wait()
        elif action == "release":
            self.hold_after = None
            self.released.set()
            await self.idle.wait()
        else:
            body = {"unknown": action}
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings()
    upgrade_database(settings.effective_database_url)
    app = Counter(create_app(settings))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
