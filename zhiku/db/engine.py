"""Engine and session factory, built from settings at the edge and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from zhiku.config import Settings
from zhiku.db.availability import Availability, DatabaseUnavailable, guard_connections, is_database_unavailable
from zhiku.db.embedded import EmbeddedServer, open_embedded, redact, to_async_url
from zhiku.db.supervisor import EmbeddedSupervisor


@dataclass
class Database:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    embedded: bool
    availability: Availability = field(default_factory=Availability)
    embedded_server: EmbeddedServer | None = None  # this process's hold on it, when embedded
    supervisor: EmbeddedSupervisor | None = None

    @property
    def display_url(self) -> str:
        return redact(self.url)

    def supervise(self, settings: Settings) -> None:
        """Watch the embedded server from now on and start it again if it dies (long-lived processes).
        Nothing to do on an external database: its own operators keep it up; the pool reconnects."""
        if self.embedded_server is not None and self.supervisor is None:
            self.supervisor = EmbeddedSupervisor(self.embedded_server, self.engine, self.availability,
                                                 restart_backoff_seconds=settings.db_restart_backoff_seconds)
            self.supervisor.start()

    async def ping(self) -> None:
        """One ``SELECT 1``; :class:`DatabaseUnavailable` when the database cannot be reached."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            self.availability.lost(f"the connection was lost ({type(exc).__name__})")
            raise DatabaseUnavailable(reason=str(exc)) from exc

    async def dispose(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.close()
            self.supervisor = None
        await self.engine.dispose()


def open_database(settings: Settings) -> Database:
    embedded_server = None if settings.database_url else open_embedded(settings.pg_data_dir)
    url = embedded_server.url if embedded_server is not None else to_async_url(settings.database_url)
    # hide_parameters: a failing statement's error (logged, sometimes shown) never carries the values of
    # its parameters: user text, key hashes and prefixes stay out of logs.
    engine = create_async_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_pool_size,
                                 pool_pre_ping=True, hide_parameters=True)
    availability = Availability()
    guard_connections(engine, availability)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    return Database(url=url, engine=engine, sessions=sessions, embedded=embedded_server is not None,
                    availability=availability, embedded_server=embedded_server)
