"""The source document of a quote, for someone who reaches it through an app rather than its team's data:
a share link's visitor, or an API key bound to one app (FastGPT's "read source" from a chat).

Such a caller may open a collection's source only when the collection is in a dataset the app searches
(a simple app's datasets; a workflow app's dataset-search nodes); any other collection does not exist for
it (404 ``collection_not_found``). A share link must also allow it (``showRawSource``), else 403
``share_link_raw_source_off``: the setting is read from the link's row on every call, so turning it off
takes effect at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.nodes.dataset_search import dataset_ids
from zhiku.apps.service import load_app
from zhiku.apps.workflow.graph import parse_workflow
from zhiku.apps.workflow_apps import app_graph
from zhiku.auth.service import Principal
from zhiku.db.models import App, ShareLink
from zhiku.errors import Forbidden, NotFound, ZhikuError
from zhiku.knowledge import sources
from zhiku.knowledge.collections import load_collection
from zhiku.knowledge.sources import MEMBER_LINK_SECONDS, VISITOR_LINK_SECONDS, CollectionSource

SEARCH_NODE = "datasetSearchNode"


async def searched_datasets(session: AsyncSession, app: App) -> set[int]:
    """The datasets the app's searches read: every dataset-search node's datasets (a simple app compiles to
    one such node over its datasets)."""
    workflow = parse_workflow(await app_graph(session, app))
    found: set[int] = set()
    for node in workflow.nodes:
        if node.kind != SEARCH_NODE:
            continue
        try:
            found.update(dataset_ids(node.value("datasets")))
        except ZhikuError:  # a value that names no Zhiku dataset searches nothing
            continue
    return found


async def app_source(session: AsyncSession, principal: Principal, collection_id: int) -> CollectionSource:
    """The source of a collection the caller's app searches (``principal.app_id`` set: an app key or a share
    link's visitor), when the share link, if any, shows raw sources."""
    assert principal.app_id is not None
    if principal.share is not None:
        link = await session.get(ShareLink, principal.share.link_id)
        if link is None or not link.show_raw_source:
            raise Forbidden("this share link does not open source documents", code="share_link_raw_source_off")
    app = await load_app(session, principal, principal.app_id)
    collection = await load_collection(session, principal, collection_id)
    if collection.dataset_id not in await searched_datasets(session, app):
        raise NotFound(f"collection {collection_id} does not exist", code="collection_not_found")
    return sources.source_of(collection)


async def readable_source(session: AsyncSession, principal: Principal, collection_id: int) -> CollectionSource:
    """The source as the caller may open it: a team's login or key, any of the team's collections; an app key
    or a share link's visitor, as :func:`app_source` allows."""
    if principal.app_id is None:
        return await sources.team_source(session, principal, collection_id)
    return await app_source(session, principal, collection_id)


def link_seconds(principal: Principal) -> int:
    """How long a source link made for the caller opens its file (FastGPT: 5 minutes for a share link)."""
    return VISITOR_LINK_SECONDS if principal.share is not None else MEMBER_LINK_SECONDS
