"""Alembic environment of the gateway's own migration chain (version table ``gateway_alembic_version``).

Zhiku runs it itself (``zhiku.gateway.store.engine.migrate``) on a connection passed in
``config.attributes["connection"]``; the ``alembic`` CLI works too with ``-x url=...`` (a sync URL).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from zhiku.gateway.store.engine import VERSION_TABLE
from zhiku.gateway.store.tables import GatewayBase

config = context.config
target_metadata = GatewayBase.metadata


def run_on(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE,
                      compare_type=True, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as conn:
        run_on(conn)
