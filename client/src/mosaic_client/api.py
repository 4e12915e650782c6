"""The HTTP side: one httpx client per command, bearer tokens refreshed when they expire, and
retries where a retry is safe.

Tokens come from ``MOSAIC_TOKEN`` (used as is: CI pipelines) or from the login stored by
``mosaic login``. A stored access token is refreshed shortly before it expires (its ``exp`` is read,
not verified) and whenever the server answers 401 ``INVALID_TOKEN``; the refresh runs under a
lock shared by threads and processes (see :class:`~mosaic_client.config.CredentialStore`).
Idempotent requests (GET, HEAD, OPTIONS) are retried on network errors and 502/503/504, honouring
``Retry-After``; everything else is retried by the caller that knows how (the tus layer asks the
server for its offset).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from mosaic_client import __version__
from mosaic_client.config import CredentialStore, Login

API = "/api/v1"
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
REFRESH_MARGIN_SECONDS = 30.0


class ClientError(Exception):
    """A failure the CLI reports as it is (exit code 1 unless ``exit_code`` says otherwise)."""

    exit_code = 1


class UsageError(ClientError):
    exit_code = 2


class NotLoggedInError(ClientError):
    def __init__(self, url: str) -> None:
        super().__init__(f"not logged in to {url}: run `mosaic login` (or set MOSAIC_TOKEN)")


class ApiError(ClientError):
    """The server's error envelope: ``{code, detail, request_id, errors?}``."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        self.body: dict[str, Any] = body
        self.code = str(body.get("code") or f"HTTP_{response.status_code}")
        self.detail = str(body.get("detail") or response.reason_phrase)
        self.errors: list[Any] = list(body.get("errors") or [])
        self.request_id = body.get("request_id") or response.headers.get("x-request-id")
        super().__init__(f"{self.detail} ({self.code}, HTTP {self.status_code})")


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, unverified (only to know when to refresh)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(claims["exp"])
    except (IndexError, KeyError, TypeError, ValueError):
        return None


class Session:
    """Who the client is on one server: a fixed token, a stored login, or nobody."""

    def __init__(self, url: str, store: CredentialStore, fixed_token: str | None) -> None:
        self.url = url
        self.store = store
        self.fixed_token = fixed_token
        self.login: Login | None = None if fixed_token else store.get(url)
        self._lock = threading.Lock()

    def token(self) -> str | None:
        if self.fixed_token:
            return self.fixed_token
        if self.login is None:
            return None
        expiry = token_expiry(self.login.access_token)
        if expiry is not None and expiry - time.time() < REFRESH_MARGIN_SECONDS:
            return self.refresh(self.login.access_token)
        return self.login.access_token

    def refresh(self, stale: str) -> str | None:
        """A fresh access token; ``stale`` is the one that failed, so a thread (or process)
        arriving second uses the first one's result instead of refreshing again."""
        if self.fixed_token or self.login is None:
            return None
        with self._lock, self.store.locked():
            current = self.store.get(self.url)
            if current is None:
                self.login = None
                return None
            if current.access_token != stale:
                self.login = current
                return current.access_token
            response = httpx.post(
                f"{self.url}{API}/auth/refresh",
                json={"refresh_token": current.refresh_token},
                timeout=30.0,
            )
            if response.status_code != 200:
                self.login = None
                raise NotLoggedInError(self.url)
            pair = response.json()
            self.login = Login(
                url=self.url,
                email=current.email,
                access_token=pair["access_token"],
                refresh_token=pair["refresh_token"],
            )
            self.store.put(self.login)
            return self.login.access_token


class Api:
    """Requests to one MOSAIC server."""

    def __init__(
        self,
        url: str,
        *,
        store: CredentialStore | None = None,
        token: str | None = None,
        retries: int = 5,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.session = Session(self.url, store or CredentialStore(), token)
        self.retries = retries
        self.client = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=15.0),
            headers={"User-Agent": f"mosaic-client/{__version__}"},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def require_login(self) -> None:
        if self.session.token() is None:
            raise NotLoggedInError(self.url)

    def send(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        headers: dict[str, str] | None = None,
        stream: bool = False,
        retry: bool | None = None,
        body: Callable[[], Iterator[bytes]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with the bearer token; refresh it once on 401 INVALID_TOKEN; retry idempotent
        requests on network errors and 502/503/504. ``body`` makes a fresh streamed body for each
        attempt (a refreshed token means sending again). Raises :class:`ApiError` for any status of
        400 or more not in ``ok``. With ``stream`` the caller closes the response."""
        retry = method in IDEMPOTENT if retry is None else retry
        attempts = self.retries + 1 if retry else 1
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            token = self.session.token()
            request_headers = dict(headers or {})
            if token:
                request_headers["Authorization"] = f"Bearer {token}"
            if body is not None:
                kwargs["content"] = body()
            request = self.client.build_request(method, path, headers=request_headers, **kwargs)
            try:
                response = self.client.send(request, stream=stream)
            except httpx.TransportError:
                if attempt >= attempts:
                    raise
                time.sleep(backoff(attempt))
                continue
            if (
                response.status_code == 401
                and token
                and not refreshed
                and _error_code(response) == "INVALID_TOKEN"
                and self.session.refresh(token)
            ):
                response.close()
                refreshed = True
                attempt -= 1
                continue
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                wait = retry_after(response) or backoff(attempt)
                response.close()
                time.sleep(wait)
                continue
            if response.status_code >= 400 and response.status_code not in ok:
                if stream:
                    response.read()
                    response.close()
                raise ApiError(response)
            return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.send(method, path, **kwargs).json()

    def pages(self, path: str, params: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Every item of a paged list. A total marked inexact (``total_exact: false``, a search
        that stopped counting) is a lower bound: the pages go on until one is short."""
        page = 1
        while True:
            body = self.json("GET", path, params={**(params or {}), "page": page, "page_size": 100})
            items = body.get("items", [])
            size = body.get("page_size", 100)
            yield from items
            if len(items) < size:
                return
            if body.get("total_exact", True) and page * size >= body.get("total", 0):
                return
            page += 1


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


def backoff(attempt: int) -> float:
    return float(min(30.0, 0.5 * 2 ** (attempt - 1)))


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return min(60.0, float(value)) if value.isdigit() else None
