"""Apps: a system prompt, a model, datasets and search settings."""

from __future__ import annotations

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.schemas import AppCreate, AppPublic, AppUpdate, ChatConfig
from zhiku.auth.service import Principal
from zhiku.db.models import App, Dataset, app_datasets
from zhiku.errors import Conflict, NotFound
from zhiku.knowledge.datasets import load_dataset
from zhiku.knowledge.schemas import Page
from zhiku.retrieval.settings import SearchSettings


async def load_app(session: AsyncSession, principal: Principal, app_id: int) -> App:
    app = await session.get(App, app_id)
    if app is None or app.team_id != principal.team_id or (
            principal.app_id is not None and principal.app_id != app_id):
        raise NotFound(f"app {app_id} does not exist", code="app_not_found")
    return app


async def find_app_by_name(session: AsyncSession, principal: Principal, name: str) -> App:
    app = (await session.execute(
        select(App).where(App.team_id == principal.team_id, App.name == name))).scalar_one_or_none()
    if app is None:
        raise NotFound(f"app {name!r} does not exist", code="app_not_found")
    return app


async def app_datasets_of(session: AsyncSession, app_id: int) -> list[Dataset]:
    rows = await session.execute(select(Dataset).join(app_datasets, app_datasets.c.dataset_id == Dataset.id)
                                 .where(app_datasets.c.app_id == app_id).order_by(Dataset.id))
    return list(rows.scalars())


async def _public(session: AsyncSession, app: App) -> AppPublic:
    datasets = await app_datasets_of(session, app.id)
    return AppPublic(id=app.id, name=app.name, type=app.type, system_prompt=app.system_prompt, model=app.model,
                     temperature=app.temperature, max_tokens=app.max_tokens, dataset_ids=[d.id for d in datasets],
                     search=SearchSettings.from_dict(app.search, strict=False).to_dict(),
                     chat_config=ChatConfig.model_validate(app.chat_config or {}), created_at=app.created_at,
                     updated_at=app.updated_at)


async def _set_datasets(session: AsyncSession, principal: Principal, app_id: int, dataset_ids: list[int]) -> None:
    for dataset_id in dataset_ids:
        await load_dataset(session, principal, dataset_id)
    await session.execute(delete(app_datasets).where(app_datasets.c.app_id == app_id))
    if dataset_ids:
        await session.execute(insert(app_datasets), [{"app_id": app_id, "dataset_id": d}
                                                     for d in dict.fromkeys(dataset_ids)])


async def create_app(session: AsyncSession, principal: Principal, data: AppCreate) -> AppPublic:
    search = SearchSettings.from_dict(data.search).to_dict()  # validates every setting
    app = App(team_id=principal.team_id, name=data.name.strip(), type="simple", system_prompt=data.system_prompt,
              model=data.model, temperature=data.temperature, max_tokens=data.max_tokens, search=search,
              chat_config=data.chat_config.stored())
    session.add(app)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"an app named {data.name!r} already exists", code="app_exists") from None
    await _set_datasets(session, principal, app.id, data.dataset_ids)
    await session.commit()
    await session.refresh(app)
    return await _public(session, app)


async def update_app(session: AsyncSession, principal: Principal, app_id: int, data: AppUpdate) -> AppPublic:
    app = await load_app(session, principal, app_id)
    if data.system_prompt is not None:
        app.system_prompt = data.system_prompt
    for field in ("model", "temperature", "max_tokens"):  # nullable: an explicit null goes back to the default
        if field in data.model_fields_set:
            setattr(app, field, getattr(data, field))
    if data.name is not None:
        app.name = data.name.strip()
    if data.search is not None:
        app.search = SearchSettings.from_dict(data.search, base=SearchSettings.from_dict(app.search,
                                                                                   strict=False)).to_dict()
    if data.chat_config is not None:
        app.chat_config = data.chat_config.stored()
    if data.dataset_ids is not None:
        await _set_datasets(session, principal, app.id, data.dataset_ids)
    app.updated_at = func.now()
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise Conflict(f"an app named {data.name!r} already exists", code="app_exists") from None
    await session.refresh(app)
    return await _public(session, app)


async def list_apps(session: AsyncSession, principal: Principal) -> list[AppPublic]:
    rows = await session.execute(select(App).where(App.team_id == principal.team_id).order_by(App.id))
    return [await _public(session, a) for a in rows.scalars()]


async def list_apps_page(session: AsyncSession, principal: Principal, *, offset: int = 0, limit: int = 20) -> Page:
    """A page of the team's apps, newest first, with the total (the web UI's list)."""
    where = App.team_id == principal.team_id
    total = (await session.execute(select(func.count()).select_from(App).where(where))).scalar_one()
    rows = await session.execute(select(App).where(where).order_by(App.id.desc()).offset(offset).limit(limit))
    return Page(total=total, items=[await _public(session, a) for a in rows.scalars()])


async def get_app(session: AsyncSession, principal: Principal, app_id: int) -> AppPublic:
    return await _public(session, await load_app(session, principal, app_id))


async def delete_app(session: AsyncSession, principal: Principal, app_id: int) -> None:
    app = await load_app(session, principal, app_id)
    await session.delete(app)
    await session.commit()
