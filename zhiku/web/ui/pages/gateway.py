"""The gateway console's dashboard and logs, and what every gateway page shares: who may enter, the
running gateway, and reading form fields into the admin services' schemas.

The pages call the gateway's admin services (``zhiku.gateway.admin``), as its admin API does, and
refresh the gateway's snapshot after a write the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from zhiku.errors import InvalidInput, NotFound
from zhiku.gateway.admin import channels, logs, tokens
from zhiku.gateway.domain import parse_model_list
from zhiku.gateway.runtime import Gateway
from zhiku.web.ui.charts import ERROR_COLOUR, bar_chart, column_chart
from zhiku.web.ui.deps import get_ui_admin, get_ui_principal
from zhiku.web.ui.forms import FormFields
from zhiku.web.ui.templating import render, translator

router = APIRouter(include_in_schema=False)

LOG_PAGE_SIZE = 50
MAX_RANGE_DAYS = 366
TOP_MODELS = 15


# ---- who may enter, and the gateway they manage -------------------------------------------------


@dataclass(frozen=True)
class ConsoleAdmin:
    """A root or admin in the console; tokens they create belong to ``gateway_user_id`` by default."""

    gateway_user_id: int


async def console_admin(request: Request) -> ConsoleAdmin:
    """Root or an admin. Inside ``zhiku serve``: the platform's login (its admins act as the gateway's
    root, as on the admin API); on a standalone gateway: the console's own login
    (:mod:`zhiku.web.ui.gateway_console`), which the app hands in as ``state.gateway_console_login``."""
    standalone_login = getattr(request.app.state, "gateway_console_login", None)
    if standalone_login is not None:
        return await standalone_login(request)
    platform = request.app.state.platform
    async with platform.db.sessions() as session:
        await get_ui_admin(await get_ui_principal(request, session))
    return ConsoleAdmin(gateway_user_id=running_gateway(request).root_id or 0)


def running_gateway(request: Request) -> Gateway:
    gateway: Gateway | None = getattr(request.app.state, "gateway", None)
    if gateway is None:
        raise NotFound("the gateway is switched off on this server (ZHIKU_GATEWAY_ENABLED)",
                       code="gateway_disabled")
    return gateway


AdminDep = Annotated[ConsoleAdmin, Depends(console_admin)]
GatewayDep = Annotated[Gateway, Depends(running_gateway)]


# ---- form fields --------------------------------------------------------------------------------


def names(text: str) -> list[str]:
    """Names from a field holding them comma- or line-separated."""
    return parse_model_list(text.replace("\n", ","))


def unreadable(field: str, message: str, code: str) -> InvalidInput:
    """A field the page could not read; ``detail.field`` tells the form which input it was
    (:meth:`zhiku.web.ui.forms.FormFields.error`)."""
    return InvalidInput(message, code=code, detail={"field": field})


def whole_number(form: Mapping[str, Any], field: str, default: int = 0) -> int:
    text = str(form.get(field) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise unreadable(field, f"{text!r} is not a whole number", "field_not_whole_number") from None


def utc_datetime(text: str, field: str) -> datetime | None:
    """A ``datetime-local`` or date field, read as UTC; empty → None."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise unreadable(field, f"{text!r} is not a date and time", "invalid_datetime") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def pager(request: Request, page: int, size: int, total: int) -> dict[str, Any]:
    """Links to the previous and next page, the other query parameters kept."""
    params = {k: v for k, v in request.query_params.items() if k != "page" and v != ""}

    def link(number: int) -> str:
        return request.url.path + "?" + urlencode({**params, "page": number})

    last = max(1, (total + size - 1) // size)
    return {"page": page, "last": last, "total": total,
            "previous": link(page - 1) if page > 1 else None, "next": link(page + 1) if page < last else None}


# ---- dashboard ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRange:
    first: date
    last: date  # inclusive

    @property
    def since(self) -> datetime:
        return datetime(self.first.year, self.first.month, self.first.day, tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return self.since + timedelta(days=(self.last - self.first).days + 1)

    def days(self) -> list[str]:
        return [(self.first + timedelta(days=i)).isoformat() for i in range((self.last - self.first).days + 1)]


def day_range(days: int, since: str, until: str, today: date) -> DayRange:
    """The chosen range: ``since``..``until`` (dates) when given, else the last ``days`` days to today."""
    first = _date(since, "since") if since else None
    last = _date(until, "until") if until else None
    last = last or today
    first = first or last - timedelta(days=max(1, min(days, MAX_RANGE_DAYS)) - 1)
    if first > last:
        raise InvalidInput("the range starts after it ends", code="invalid_range")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidInput(f"a range covers at most {MAX_RANGE_DAYS} days", code="invalid_range")
    return DayRange(first, last)


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise unreadable(field, f"{text!r} is not a date (YYYY-MM-DD)", "invalid_date") from None


def per_day(rows: list[dict[str, Any]], span: DayRange, value: str) -> list[tuple[str, float]]:
    """One point per day of the range, zero on days without requests (labels: MM-DD)."""
    found = {str(r["day"])[:10]: float(r[value]) for r in rows}
    return [(day[5:], found.get(day, 0.0)) for day in span.days()]


def per_model(rows: list[dict[str, Any]], value: str) -> list[tuple[str, float]]:
    ranked = sorted(rows, key=lambda r: (-r["requests"], str(r["model"])))[:TOP_MODELS]
    return [(str(r["model"]) or "—", float(r[value])) for r in ranked]


def with_tokens(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "tokens": r["prompt_tokens"] + r["completion_tokens"]} for r in rows]


def dashboard_charts(by_day: list[dict[str, Any]], by_model: list[dict[str, Any]], span: DayRange,
                     t: Any) -> dict[str, Any]:
    days, models = with_tokens(by_day), with_tokens(by_model)
    charts = {}
    for key, colour, unit in (("requests", None, ""), ("tokens", None, ""), ("errors", ERROR_COLOUR, ""),
                              ("avg_latency_ms", None, " ms")):
        title = t(f"gateway.chart.{key}")
        extra = {"colour": colour} if colour else {}
        charts[key] = {"title": title,
                       "day": column_chart(per_day(days, span, key), title=title, unit=unit, **extra),
                       "model": bar_chart(per_model(models, key), title=title, unit=unit, **extra)}
    requests = sum(r["requests"] for r in days)
    latency = (sum(r["avg_latency_ms"] * r["requests"] for r in days) / requests) if requests else 0.0
    totals = {"requests": requests, "errors": sum(r["errors"] for r in days),
              "tokens": sum(r["tokens"] for r in days), "avg_latency_ms": round(latency)}
    return {"charts": charts, "totals": totals}


DASHBOARD_FORM = FormFields(labels={"days": "gateway.range", "since": "gateway.from", "until": "gateway.to"},
                            codes={"invalid_range": "since"})


@router.get("/gateway", response_class=HTMLResponse)
async def dashboard(request: Request, admin: AdminDep, gateway: GatewayDep,
                    days: Annotated[int, Query(ge=1, le=MAX_RANGE_DAYS)] = 7, since: str = "",
                    until: str = "") -> HTMLResponse:
    try:
        span = day_range(days, since, until, datetime.now(UTC).date())
    except InvalidInput as exc:
        span, error = day_range(7, "", "", datetime.now(UTC).date()), DASHBOARD_FORM.error(exc)
    else:
        error = None
    await gateway.flush()  # count what just happened, not what the next flush would write
    where = logs.LogFilter(since=span.since, until=span.until)
    by_day = await logs.usage_stats(gateway.store, "day", where)
    by_model = await logs.usage_stats(gateway.store, "model", where)
    return render(request, "gateway/dashboard.html", span=span, days=days, since=since, until=until, form_error=error,
                  **dashboard_charts(by_day, by_model, span, translator(request)))


# ---- logs ---------------------------------------------------------------------------------------


LOGS_FORM = FormFields(labels={"token_id": "gateway.token", "model": "gateway.model", "channel_id": "gateway.channel",
                               "type": "gateway.type", "status": "gateway.http_status", "since": "gateway.from_utc",
                               "until": "gateway.to_utc"})


def log_filter(query: Mapping[str, str]) -> logs.LogFilter:
    def number(field: str) -> int | None:
        return whole_number(query, field) if (query.get(field) or "").strip() else None

    return logs.LogFilter(token_id=number("token_id"), channel_id=number("channel_id"),
                          model=(query.get("model") or "").strip() or None,
                          type=(query.get("type") or "").strip() or None, status=number("status"),
                          since=utc_datetime(query.get("since") or "", "since"),
                          until=utc_datetime(query.get("until") or "", "until"))


@router.get("/gateway/logs", response_class=HTMLResponse)
async def log_page(request: Request, admin: AdminDep, gateway: GatewayDep,
                   page: Annotated[int, Query(ge=1)] = 1) -> HTMLResponse:
    error = None
    try:
        where = log_filter(request.query_params)
    except InvalidInput as exc:
        where, error = logs.LogFilter(), LOGS_FORM.error(exc)
    await gateway.flush()
    items, total = await logs.list_logs(gateway.store, where, page=page, size=LOG_PAGE_SIZE)
    token_list, _ = await tokens.list_tokens(gateway.store, size=1000)
    channel_list, _ = await channels.list_channels(gateway.store, size=1000)
    models = sorted({m for c in channel_list for m in c.models if m != "*"})
    return render(request, "gateway/logs.html", items=items, form_error=error, filters=dict(request.query_params),
                  tokens=token_list, channels=channel_list, models=models,
                  pages=pager(request, page, LOG_PAGE_SIZE, total))
