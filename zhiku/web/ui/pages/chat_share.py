"""The share-link chat page, ``/chat/share/{shareId}``: the app's chat page (``chat/chat.html`` with
``static/chat.js``) for a visitor without a login. The page itself holds nothing of the visitor's: their id
lives in the browser (``static/chat_share.js``), which asks FastGPT's share-link API for the stream, the
visitor's history and records, with ``shareId`` + ``outLinkUid``. The link's limits are
:mod:`zhiku.apps.share_links`'s: an expired or revoked link gets a page that says so; usage and rate limits
are refused when a chat starts, and the page says so in the conversation.

The page may be framed by other sites (``zhiku.web.security_headers``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from zhiku.apps import share_links
from zhiku.apps.schemas import ChatConfig
from zhiku.errors import ZhikuError
from zhiku.web.deps import SessionDep
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/chat/share/{share_id}")
async def share_page(request: Request, share_id: str, session: SessionDep) -> HTMLResponse:
    try:
        shared = await share_links.shared_app(session, share_id)
    except ZhikuError as exc:  # unknown, revoked or expired: say which, in the visitor's language
        return render(request, "chat/share_closed.html", status_code=exc.status, code=exc.code)
    link = shared.link
    app = {"name": shared.app_name, "chat_config": ChatConfig.model_validate(shared.chat_config)}
    data = {"share": {"shareId": link.share_id, "responseDetail": link.response_detail,
                      "showRawSource": link.show_raw_source}}
    return render(request, "chat/chat.html", app=app, share=link, items=[], chat_data=data)
