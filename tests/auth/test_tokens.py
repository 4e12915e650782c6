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
from src.auth.jwt import (
    AccessClaims,
    VerifiedTokens,
    decode_access_token,
    encode_access_token,
)
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
        token = encode_access_token(user_id=user_id, secret="s" * 40, config=config, generation=7)
        assert decode_access_token(token, secret="s" * 40, config=config) == AccessClaims(
            user_id=user_id, generation=7
        )
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert header["alg"] == "HS256"
        assert set(claims) == {"sub", "exp", "iat", "jti", "iss", "aud", "gen"}
        assert claims["gen"] == 7
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


class TestVerifiedTokens:
    """A token is verified once, then known by its text until it expires."""

    @pytest.fixture
    def decodes(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """The tokens jwt.decode is given from here on, in order."""
        decoded: list[str] = []
        real_decode = jwt.decode

        def counting(*args: Any, **kwargs: Any) -> Any:
            decoded.append(args[0])
            return real_decode(*args, **kwargs)

        monkeypatch.setattr("src.auth.jwt.jwt.decode", counting)
        return decoded

    def test_a_token_is_verified_once(self, decodes: list[str]) -> None:
        config = make_config()
        user_id = uuid.uuid4()
        token = encode_access_token(user_id=user_id, secret="s" * 40, config=config, generation=3)
        tokens = VerifiedTokens()
        for _ in range(3):
            claims = tokens.claims(token, secret="s" * 40, config=config)
            assert claims == AccessClaims(user_id=user_id, generation=3)
        assert decodes == [token]

    def test_a_known_token_is_verified_again_once_it_expires(
        self, monkeypatch: pytest.MonkeyPatch, decodes: list[str]
    ) -> None:
        # Verified again, so refused as expired as any expired token is (tested above).
        config = make_config()
        token = encode_access_token(user_id=uuid.uuid4(), secret="s" * 40, config=config)
        expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
        decodes.clear()  # that read of the expiry is the test's own
        tokens = VerifiedTokens()
        tokens.claims(token, secret="s" * 40, config=config)
        monkeypatch.setattr("src.auth.jwt.time.time", lambda: expires_at)
        tokens.claims(token, secret="s" * 40, config=config)
        assert decodes == [token, token]

    def test_another_secret_or_configuration_verifies_again(self) -> None:
        config = make_config()
        token = encode_access_token(user_id=uuid.uuid4(), secret="s" * 40, config=config)
        tokens = VerifiedTokens()
        tokens.claims(token, secret="s" * 40, config=config)
        with pytest.raises(InvalidTokenError):
            tokens.claims(token, secret="t" * 40, config=config)
        with pytest.raises(InvalidTokenError):
            tokens.claims(token, secret="s" * 40, config=make_config(jwt_audience="other"))

    def test_invalid_tokens_are_not_kept_and_the_oldest_goes_first(self) -> None:
        config = make_config()
        tokens = VerifiedTokens(size=2)
        issued = [
            encode_access_token(user_id=uuid.uuid4(), secret="s" * 40, config=config)
            for _ in range(3)
        ]
        with pytest.raises(InvalidTokenError):
            tokens.claims("not.a.token", secret="s" * 40, config=config)
        for token in issued:
            tokens.claims(token, secret="s" * 40, config=config)
        assert list(tokens._verified) == issued[1:]


class TestGenerationClaim:
    """``gen``: the account's token generation at issue; tokens from before the claim are 0."""

    def test_a_token_without_the_claim_is_generation_0(self) -> None:
        config = make_config()
        user_id = uuid.uuid4()
        legacy = jwt.encode(claims_for(user_id, config), "s" * 40, algorithm="HS256")
        claims = decode_access_token(legacy, secret="s" * 40, config=config)
        assert claims == AccessClaims(user_id=user_id, generation=0)

    @pytest.mark.parametrize("generation", [-1, "1", 1.0, True, None, [1]])
    def test_a_claim_that_is_not_a_non_negative_integer_is_refused(self, generation: Any) -> None:
        config = make_config()
        claims = claims_for(uuid.uuid4(), config)
        claims["gen"] = generation
        token = jwt.encode(claims, "s" * 40, algorithm="HS256")
        with pytest.raises(InvalidTokenError):
            decode_access_token(token, secret="s" * 40, config=config)


# Forged kinds that differ from a genuine token of the account (at generation 1) in claims only.
CLAIM_CHANGES: dict[str, dict[str, Any]] = {
    "wrong audience": {"aud": "other-api"},
    "wrong issuer": {"iss": "someone-else"},
    "subject not a uuid": {"sub": "admin"},
    "generation older": {"gen": 0},
    "generation newer": {"gen": 2},
    "generation missing": {"gen": None},  # read as 0
}


class TestForgedTokens:
    @pytest.fixture
    async def user_id(self, session: AsyncSession) -> uuid.UUID:
        user = await create_user(session)
        user.token_generation = 1  # the account logged out once
        await session.flush()
        return user.id

    def forged(self, kind: str, user_id: uuid.UUID, secret: str) -> str:
        config = AuthConfig()

        def claims_of(subject: uuid.UUID, **changes: Any) -> dict[str, Any]:
            # The account is at generation 1: only the "generation" kinds get another one.
            return claims_for(subject, config, **{"gen": 1, **changes})

        claims = claims_of(user_id)
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
        if kind in CLAIM_CHANGES:
            return jwt.encode(claims_of(user_id, **CLAIM_CHANGES[kind]), secret, "HS256")
        if kind == "expired":
            past = datetime.now(UTC) - timedelta(hours=1)
            expired = claims_of(user_id, iat=past, exp=past + timedelta(minutes=15))
            return jwt.encode(expired, secret, algorithm="HS256")
        if kind.startswith("missing "):
            claim = kind.removeprefix("missing ")
            return jwt.encode(claims_of(user_id, **{claim: None}), secret, "HS256")
        if kind == "unknown user":
            return jwt.encode(claims_of(uuid.uuid4()), secret, "HS256")
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
            "generation older",
            "generation newer",
            "generation missing",
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
