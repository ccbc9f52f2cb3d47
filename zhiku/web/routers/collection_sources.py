"""A collection's source document (FastGPT's "read source"): the native download route, and FastGPT's
``POST /api/core/dataset/collection/read``, which answers a URL a browser can open.

The file is always sent as an attachment, under its own name, with ``nosniff`` and a sandboxing
``Content-Security-Policy``: an uploaded HTML or SVG file is a download, and even opened in place it runs
no script on Zhiku's origin. Who may open which source is :mod:`zhiku.knowledge.sources` and
:mod:`zhiku.apps.chat_sources`.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import AliasChoices, Field

from zhiku.apps import chat_sources, share_links
from zhiku.auth.service import SESSION_COOKIE
from zhiku.knowledge import sources
from zhiku.knowledge.sources import MAX_TOKEN_CHARS, CollectionSource
from zhiku.web.deps import (PlatformDep, SealerDep, SessionDep, SettingsDep, get_principal, get_team_principal,
                            hook_policy)
from zhiku.web.fastgpt_envelope import MAX_ID, IdRef, internal_id, ok
from zhiku.web.routers.fastgpt_chat import Caller

router = APIRouter(tags=["collections"])

# Whatever the file is, it runs nothing here: no script, no plugin, no form, no same-origin access.
SANDBOX_POLICY = "sandbox; default-src 'none'"


def download_headers(name: str) -> dict[str, str]:
    """An attachment named ``name``: an ASCII ``filename`` for old clients, RFC 5987 ``filename*`` (UTF-8) for
    the real name."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name) or "download"
    return {"Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX_POLICY,
            "Cache-Control": "private, no-store"}


def source_response(source: CollectionSource, platform: PlatformDep) -> Response:
    if source.kind == "url":
        assert source.url is not None
        return RedirectResponse(source.url, status_code=302)
    return FileResponse(sources.file_path(platform.blobs, source), media_type=source.content_type,
                        headers=download_headers(source.name))


@router.get("/api/collections/{collection_id}/source", response_class=Response,
            responses={200: {"description": "the stored file, as an attachment"},
                       302: {"description": "a link collection: its URL in Location"}})
async def read_source(request: Request, session: SessionDep, platform: PlatformDep, sealer: SealerDep,
                      collection_id: int = Path(ge=1, le=MAX_ID),
                      token: str | None = Query(None, max_length=MAX_TOKEN_CHARS)) -> Response:
    """The collection's source document, for a login or team-wide key of its team: a file collection (an
    upload, a Q&A table) answers its stored bytes as an attachment under the uploaded name; a link or website
    collection answers **302** to its URL (``Location``); pasted text and pushed-data collections have none
    (404 ``no_source_file``). With ``token`` (a source link from ``POST /api/core/dataset/collection/read``)
    no credentials are needed: it opens that file for a few minutes (then 403 ``source_link_expired``; an
    altered or foreign token: 403 ``source_link_invalid``)."""
    if token is not None:
        source = await sources.linked_source(session, sealer, collection_id, token)
    else:
        principal = await get_team_principal(await get_principal(request, session))
        source = await sources.team_source(session, principal, collection_id)
    return source_response(source, platform)


class ReadSourceBody(Caller):
    """FastGPT's body: ``collectionId``, and what its chat page adds (the chat and answer the quote is in, a
    share link's visitor). ``teamId``/``teamToken`` (team spaces) are not a Zhiku credential and are ignored."""

    collection_id: IdRef = Field(alias="collectionId")
    chat_id: str | None = Field(None, alias="chatId", max_length=200)
    chat_item_data_id: str | None = Field(None, validation_alias=AliasChoices("chatItemDataId", "chatItemId"),
                                          max_length=200)


@router.post("/api/core/dataset/collection/read")
async def read_source_url(body: ReadSourceBody, request: Request, session: SessionDep, settings: SettingsDep,
                          sealer: SealerDep) -> dict:
    """``data``: ``{type: "url", value}``, where ``value`` is a link collection's URL, or for a file a source
    link (``/api/collections/<id>/source?token=…``, relative to this server) that opens it for 30 minutes
    (5 for a share link's visitor). A share link's visitor (``shareId`` + ``outLinkUid``, no credentials)
    needs a link with ``showRawSource`` (else 403 ``share_link_raw_source_off``) and a collection the link's
    app searches (else 404 ``collection_not_found``)."""
    if not (request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE)) and body.share_id:
        principal = await share_links.visitor(session, body.share_id, body.out_link_uid or "", hook_policy(settings))
    else:
        principal = await get_principal(request, session)
    source = await chat_sources.readable_source(session, principal, internal_id(body.collection_id, "collection"))
    return ok({"type": "url", "value": sources.source_link(sealer, source,
                                                            seconds=chat_sources.link_seconds(principal))})
