"""Alembic environment. Zhiku runs migrations itself (``zhiku.db.migrate``) on a
connection it passes in ``config.attributes["connection"]``; the ``alembic`` CLI
works too with ``-x url=postgresql://…``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from zhiku.db.migrate import include_object
from zhiku.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      include_object=include_object, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url.replace("+asyncpg", "+psycopg") if url else url)
    with engine.connect() as conn:
        run_on(conn)
