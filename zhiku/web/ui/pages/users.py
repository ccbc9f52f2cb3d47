"""The users pages (root and admins): list, add, disable, enable, reset a password, over the same
services as ``/api/users``. Each action answers an htmx request with the refreshed panel (list, form
and the outcome); without htmx it answers with the whole page."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from zhiku.auth import users
from zhiku.auth.users import UserCreate
from zhiku.errors import ZhikuError
from zhiku.web.deps import SessionDep
from zhiku.web.ui.deps import UiAdmin
from zhiku.web.ui.forms import FormFields, form_error, validated
from zhiku.web.ui.templating import render

router = APIRouter(include_in_schema=False)

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
TextField = Annotated[str, Form(max_length=10_000)]
# The create form's inputs (users/_panel.html); a row's password reset form is the same form named by the
# user's id, its one input "password".
USER_FORM = FormFields(labels={"username": "users.username", "password": "users.password", "role": "users.role"},
                       codes={"invalid_username": "username", "username_taken": "username",
                              "invalid_password": "password", "password_too_common": "password"})


async def _panel(request: Request, session: SessionDep, principal: UiAdmin, *, status_code: int = 200,
                 **context: object) -> Response:
    listed = await users.list_users(session, principal)
    template = "users/_panel.html" if request.headers.get("hx-request") else "users/list.html"
    return render(request, template, status_code=status_code, users=listed, **context)


@router.get("/users")
async def users_page(request: Request, session: SessionDep, principal: UiAdmin) -> Response:
    return await _panel(request, session, principal)


@router.post("/users")
async def create_user(request: Request, session: SessionDep, principal: UiAdmin, username: TextField = "",
                      password: TextField = "", role: Annotated[Literal["admin", "member"], Form()] = "member",
                      ) -> Response:
    try:
        created = await users.create_user(session, principal, validated(
            UserCreate, {"username": username, "password": password, "role": role}, USER_FORM))
    except ZhikuError as error:  # the form comes back filled in (but the password), with the reason
        refused = form_error(error, USER_FORM)
        return await _panel(request, session, principal, status_code=refused.status, form_error=refused,
                            form={"username": username, "role": role})
    return await _panel(request, session, principal, notice=("users.created", created.username))


@router.post("/users/{user_id}/{action}")
async def change_user(request: Request, session: SessionDep, principal: UiAdmin, user_id: UserId,
                      action: Literal["disable", "enable", "password"], password: TextField = "") -> Response:
    try:
        if action == "password":
            changed = await users.reset_user_password(session, principal, user_id, password)
            notice = "users.password_reset"
        else:
            changed = await users.set_user_status(session, principal, user_id, active=action == "enable")
            notice = f"users.{action}d"
    except ZhikuError as error:
        refused = form_error(error, replace(USER_FORM, form=str(user_id)))
        return await _panel(request, session, principal, status_code=refused.status, form_error=refused)
    return await _panel(request, session, principal, notice=(notice, changed.username))
