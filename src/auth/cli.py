"""``python main.py create-admin --email E``: create an admin account from the command line.

The password is read from a prompt (typed twice) on a terminal, or from the first line of stdin
when piped, so it never appears in the shell history or the process list.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys

from pydantic import ValidationError

from src.auth import service as auth_service
from src.auth.exceptions import EmailTakenError
from src.auth.models import UserRole
from src.auth.password_policy import weakness
from src.auth.schemas import RegisterIn
from src.auth.state import AuthState
from src.config import Settings
from src.database import create_engine, create_sessionmaker, upgrade_database

logger = logging.getLogger("mosaic.create_admin")


def _read_password() -> str | None:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            logger.error("the passwords do not match")
            return None
        return password
    return sys.stdin.readline().rstrip("\r\n")


async def _create(settings: Settings, data: RegisterIn) -> None:
    state = AuthState.build(settings)
    engine = create_engine(settings.effective_database_url)
    try:
        # Hashed before a connection is opened, as everywhere else.
        password_hash = await state.passwords.hash(data.password)
        async with create_sessionmaker(engine)() as session:
            await auth_service.create_user(
                session,
                email=data.email,
                password_hash=password_hash,
                full_name=data.full_name,
                role=UserRole.ADMIN,
            )
            await session.commit()
    finally:
        await state.close()
        await engine.dispose()


def create_admin(settings: Settings, *, email: str) -> int:
    """Create the admin; 0 on success, 1 when refused (bad input, a weak password, email taken)."""
    password = _read_password()
    if password is None:
        return 1
    try:
        data = RegisterIn(email=email, password=password, full_name="Administrator")
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = ".".join(str(part) for part in error["loc"]) or "input"
            logger.error("%s: %s", field, error["msg"])
        return 1
    reason = weakness(data.password, email=data.email)
    if reason is not None:
        logger.error("password refused (%s): %s", reason, reason.message)
        return 1
    upgrade_database(settings.effective_database_url)
    try:
        asyncio.run(_create(settings, data))
    except EmailTakenError:
        logger.error("an account with the email %s already exists", data.email)
        return 1
    logger.info("admin %s created", data.email)
    return 0
