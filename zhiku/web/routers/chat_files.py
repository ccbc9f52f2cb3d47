"""FastGPT's chat file upload, ``POST /api/common/file/upload`` (multipart ``file``, ``bucketName=chat`` and
``metadata``, a JSON object that may name the ``appId``), and the uploaded file at its ``previewUrl``
(``GET /api/common/file/read/<name>?token=<fileId>``). A login or an API key uploads; the file is held to
``ZHIKU_UPLOAD_MAX_BYTES``. The URL goes in a chat message's ``file_url`` part, where readFiles reads it.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import Response

from zhiku.apps import chat_files
from zhiku.errors import InvalidInput
from zhiku.web.deps import CurrentPrincipal, PlatformDep, SessionDep
from zhiku.web.fastgpt_envelope import internal_id, ok
from zhiku.web.routers.collections import read_upload

router = APIRouter(tags=["FastGPT chat files"])

UPLOAD_PATH = "/api/common/file/upload"
MAX_METADATA_CHARS = 10_000


def _metadata(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", code="invalid_metadata")
    return value


@router.post(UPLOAD_PATH)
async def upload_chat_file(request: Request, file: UploadFile, session: SessionDep, principal: CurrentPrincipal,
                           platform: PlatformDep,
                           bucket_name: str = Form("chat", alias="bucketName", max_length=50),
                           metadata: str | None = Form(None, max_length=MAX_METADATA_CHARS)) -> dict:
    """``data``: ``{fileId, previewUrl, name, size}``; ``previewUrl`` is what a ``file_url`` part names."""
    if bucket_name != "chat":
        raise InvalidInput(f"bucketName {bucket_name!r} is not one this server keeps (only 'chat')",
                           code="invalid_bucket")
    app_ref = _metadata(metadata).get("appId")
    app_id = internal_id(str(app_ref), "app") if app_ref not in (None, "") else None
    limit = platform.settings.upload_max_bytes
    data = await read_upload(request, file, limit)
    uploaded = await chat_files.upload(session, principal, platform.blobs, name=file.filename or "",
                                       data=data, content_type=file.content_type or "", app_id=app_id,
                                       max_bytes=limit)
    return ok({"fileId": uploaded.file_key, "previewUrl": uploaded.url, "name": uploaded.name,
               "size": uploaded.size})


@router.get(chat_files.READ_PATH + "{filename}")
async def read_chat_file(filename: str, session: SessionDep, principal: CurrentPrincipal, platform: PlatformDep,
                         token: str = Query(max_length=64)) -> Response:
    found, data = await chat_files.read(session, principal, platform.blobs, token, app_id=None)
    return Response(data, media_type=found.content_type,
                    headers={"Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})
