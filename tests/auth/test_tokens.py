"""Access tokens: encode/decode, and every forged or stale token answered 401 INVALID_TOKEN."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from src.auth.config import AuthConfig
from src.auth.exceptions import InvalidTokenError
from src.auth.jwt import decode_access_token, encode_access_token
from src.config import Settings
from tests.auth.conftest import make_config
from tests.auth.helpers import AUTH, assert_error
from tests.factories import auth_headers, create_user


def claims_for(user_id: uuid.UUID, config: AuthConfig, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": uuid.uuid4().hex,
        "iss": config.jwt_issuer,
        "aud": config.jwt_audience,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TestEncodeDecode:
    def test_round_trip_carries_every_claim(self) -> None:
        config = make_config()
        user_id = uuid.uuid4()
        token = encode_access_token(user_id=user_id, secret="s" * 40, config=config)
        assert decode_access_token(token, secret="s" * 40, config=config) == user_id
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert set(claims) == {"sub", "exp", "iat", "jti", "iss", "aud"}
        assert claims["exp"] - claims["iat"] == 15 * 60
        assert (claims["iss"], claims["aud"]) == ("mosaic", "mosaic-api")

    def test_every_token_has_its_own_jti(self) -> None:
        config = make_config()
        user_id = uuid.uuid4()
        first = encode_access_token(user_id=user_id, secret="s" * 40, config=config)
        second = encode_access_token(user_id=user_id, secret="s" * 40, config=config)
        jtis = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in (first, second)}
        assert len(jtis) == 2

    def test_configured_algorithm_and_lifetime(self) -> None:
        config = make_config(jwt_algorithm="HS512", access_token_minutes=5)
        token = encode_access_token(user_id=uuid.uuid4(), secret="s" * 64, config=config)
        assert jwt.get_unverified_header(token)["alg"] == "HS512"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 5 * 60
        decode_access_token(token, secret="s" * 64, config=config)

    def test_decoding_pins_the_configured_algorithm(self) -> None:
        token = encode_access_token(
            user_id=uuid.uuid4(), secret="s" * 64, config=make_config(jwt_algorithm="HS512")
        )
        with pytest.raises(InvalidTokenError):
            decode_access_token(token, secret="s" * 64, config=make_config())

    def test_expired_token_is_refused(self) -> None:
        config = make_config()
        token = encode_access_token(
            user_id=uuid.uuid4(),
            secret="s" * 40,
            config=config,
            now=datetime.now(UTC) - timedelta(minutes=16),
        )
        with pytest.raises(InvalidTokenError):
            decode_access_token(token, secret="s" * 40, config=config)


class TestForgedTokens:
    @pytest.fixture
    async def user_id(self, session: AsyncSession) -> uuid.UUID:
        return (await create_user(session)).id

    def forged(self, kind: str, user_id: uuid.UUID, secret: str) -> str:
        config = AuthConfig()
        claims = claims_for(user_id, config)
        if kind == "wrong signature":
            return jwt.encode(claims, "another-secret-" + "x" * 40, algorithm="HS256")
        if kind == "alg none":
            payload = {k: v for k, v in claims.items() if k not in ("iat", "exp")}
            payload |= {"iat": 0, "exp": 4102444800}
            return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
        if kind == "another algorithm":
            with warnings.catch_warnings():  # the test secret is short for HS512; irrelevant here
                warnings.simplefilter("ignore")
                return jwt.encode(claims, secret, algorithm="HS512")
        if kind == "wrong audience":
            return jwt.encode(claims_for(user_id, config, aud="other-api"), secret, "HS256")
        if kind == "wrong issuer":
            return jwt.encode(claims_for(user_id, config, iss="someone-else"), secret, "HS256")
        if kind == "expired":
            past = datetime.now(UTC) - timedelta(hours=1)
            expired = claims_for(user_id, config, iat=past, exp=past + timedelta(minutes=15))
            return jwt.encode(expired, secret, algorithm="HS256")
        if kind.startswith("missing "):
            claim = kind.removeprefix("missing ")
            return jwt.encode(claims_for(user_id, config, **{claim: None}), secret, "HS256")
        if kind == "subject not a uuid":
            return jwt.encode(claims_for(user_id, config, sub="admin"), secret, "HS256")
        if kind == "unknown user":
            return jwt.encode(claims_for(uuid.uuid4(), config), secret, "HS256")
        if kind == "garbage":
            return "not.a.jwt"
        raise AssertionError(kind)

    @pytest.mark.parametrize(
        "kind",
        [
            "wrong signature",
            "alg none",
            "another algorithm",
            "wrong audience",
            "wrong issuer",
            "expired",
            "missing sub",
            "missing exp",
            "missing iat",
            "missing jti",
            "missing iss",
            "missing aud",
            "subject not a uuid",
            "unknown user",
            "garbage",
        ],
    )
    async def test_is_401_invalid_token(
        self, client: httpx.AsyncClient, settings: Settings, user_id: uuid.UUID, kind: str
    ) -> None:
        token = self.forged(kind, user_id, settings.jwt_secret)
        response = await client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {token}"})
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize(
        "header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer", "Token abc"]
    )
    async def test_malformed_authorization_header_is_401(
        self, client: httpx.AsyncClient, header: str
    ) -> None:
        response = await client.get(f"{AUTH}/me", headers={"Authorization": header})
        assert_error(response, 401, "INVALID_TOKEN")
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_non_ascii_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.get(
            f"{AUTH}/me", headers={b"Authorization": "Bearer ünïcødé".encode()}
        )
        assert_error(response, 401, "INVALID_TOKEN")

    async def test_the_genuine_token_works(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        user_id: uuid.UUID,
        session: AsyncSession,
    ) -> None:
        from src.auth.models import User

        user = await session.get(User, user_id)
        assert user is not None
        response = await client.get(f"{AUTH}/me", headers=auth_headers(settings, user))
        assert response.status_code == 200

    async def test_token_of_a_deleted_user_stops_working(
        self, client: httpx.AsyncClient, settings: Settings, session: AsyncSession
    ) -> None:
        user = await create_user(session)
        headers = auth_headers(settings, user)
        assert (await client.get(f"{AUTH}/me", headers=headers)).status_code == 200
        await session.delete(user)
        await session.flush()
        assert_error(await client.get(f"{AUTH}/me", headers=headers), 401, "INVALID_TOKEN")
