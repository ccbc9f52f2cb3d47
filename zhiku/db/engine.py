"""Engine and session factory, built from settings at the edge and passed in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from zhiku.config import Settings
from zhiku.db.embedded import redact, start_embedded, to_async_url


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    embedded: bool

    @property
    def display_url(self) -> str:
        return redact(self.url)

    async def dispose(self) -> None:
        await self.engine.dispose()


def resolve_database_url(settings: Settings) -> tuple[str, bool]:
    """The URL to use and whether it points at the embedded server (started here if so)."""
    if settings.database_url:
        return to_async_url(settings.database_url), False
    return start_embedded(settings.pg_data_dir), True


def open_database(settings: Settings) -> Database:
    url, embedded = resolve_database_url(settings)
    # hide_parameters: a failing statement's error (logged, sometimes shown) never carries the values of
    # its parameters: user text, key hashes and prefixes stay out of logs.
    engine = create_async_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size,
                                 pool_pre_ping=True, hide_parameters=True)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(url=url, engine=engine, sessions=sessions, embedded=embedded)
