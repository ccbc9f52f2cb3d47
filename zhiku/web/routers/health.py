from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from zhiku import __version__
from zhiku.web.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(platform: PlatformDep) -> dict:
    """Public: load balancers and compose health checks call it without credentials."""
    async with platform.db.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return {"status": "ok", "version": __version__, "embedded_db": platform.db.embedded,
            "chat_model": platform.settings.chat_model if platform.chat_model else None}
