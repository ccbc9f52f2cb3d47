"""Turn what an operator writes for the gateway's database into an async SQLAlchemy URL.

Accepted spellings:

* OneAPI's ``SQL_DSN`` (Go's MySQL driver form): ``user:pass@tcp(host:3306)/oneapi?charset=utf8mb4``,
  ``user:pass@unix(/run/mysqld/mysqld.sock)/oneapi``; Go-only parameters (``parseTime``, ``loc``) are
  dropped;
* SQLAlchemy / libpq URLs: ``mysql://``, ``mariadb://``, ``mysql+pymysql://`` → aiomysql;
  ``postgres://``, ``postgresql://`` → asyncpg; ``sqlite:///path`` (or ``sqlite://`` in memory) → aiosqlite.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from sqlalchemy.engine import URL, make_url

from zhiku.errors import StartupError

_GO_DSN = re.compile(r"^(?:(?P<user>[^:@/]*)(?::(?P<password>.*))?@)?(?P<net>tcp|unix)\((?P<addr>[^)]*)\)"
                     r"/(?P<db>[^?]*)(?:\?(?P<params>.*))?$")
_GO_ONLY_PARAMS = {"parsetime", "loc", "timeout", "readtimeout", "writetimeout", "allownativepasswords",
                   "tls", "collation", "multistatements", "interpolateparams"}
_DRIVERS = {"mysql": "mysql+aiomysql", "mariadb": "mysql+aiomysql", "postgres": "postgresql+asyncpg",
            "postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


def gateway_database_url(dsn: str) -> str:
    """The async SQLAlchemy URL for ``dsn``, as a string with the password in it."""
    dsn = dsn.strip()
    if not dsn:
        raise StartupError("empty gateway database DSN")
    match = _GO_DSN.match(dsn)
    if match:
        return _from_go_dsn(match).render_as_string(hide_password=False)
    try:
        url = make_url(dsn)
    except Exception:
        raise StartupError(f"unrecognised gateway database DSN {redact_dsn(dsn)!r}: use e.g. "
                           "user:pass@tcp(host:3306)/oneapi, mysql://…, postgresql://… or sqlite:///path") from None
    backend = url.get_backend_name()
    driver = _DRIVERS.get(backend)
    if driver is None:
        raise StartupError(f"unsupported gateway database {backend!r}: use MySQL/MariaDB, PostgreSQL or SQLite")
    url = url.set(drivername=driver)
    if driver == "mysql+aiomysql" and "charset" not in url.query:
        url = url.update_query_dict({"charset": "utf8mb4"})
    return url.render_as_string(hide_password=False)


def _from_go_dsn(match: re.Match[str]) -> URL:
    query = {k: v for k, v in parse_qsl(match["params"] or "") if k.lower() not in _GO_ONLY_PARAMS}
    query.setdefault("charset", "utf8mb4")
    # Go's driver takes the user and password literally (no percent-decoding); so do we.
    user = match["user"] or None
    password = match["password"] or None
    host: str | None = None
    port: int | None = None
    if match["net"] == "unix":
        query["unix_socket"] = match["addr"]
    else:
        host, _, port_text = match["addr"].rpartition(":") if ":" in match["addr"] else (match["addr"], "", "")
        host = host or "127.0.0.1"
        port = int(port_text) if port_text else 3306
    return URL.create("mysql+aiomysql", username=user, password=password, host=host, port=port,
                      database=match["db"] or None, query=query)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password hidden, whatever its spelling."""
    match = _GO_DSN.match(dsn.strip())
    if match:
        return _from_go_dsn(match).render_as_string(hide_password=True)
    try:
        return make_url(dsn).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable DSN>"


def dialect_of(url: str) -> str:
    """``postgresql``, ``mysql`` or ``sqlite``."""
    return make_url(url).get_backend_name()
