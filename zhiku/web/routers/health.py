from __future__ import annotations

from fastapi import APIRouter

from zhiku import __version__
from zhiku.db.availability import DatabaseUnavailable
from zhiku.web.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(platform: PlatformDep) -> dict:
    """Public: load balancers and compose health checks call it without credentials. 503
    ``database_unavailable`` (the database's status in ``detail``) while the database cannot be reached."""
    facts = {"version": __version__, "embedded_db": platform.db.embedded}
    try:
        await platform.db.ping()
    except DatabaseUnavailable as exc:
        raise DatabaseUnavailable(exc.message, reason=exc.reason, detail={
            "status": "unavailable", **facts, **platform.db.availability.status()}) from exc
    return {"status": "ok", **facts, "database": "ok",
            "chat_model": platform.settings.chat_model if platform.chat_model else None}
